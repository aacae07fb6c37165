"""The tool's own RSA signing key and the public key set served at ``/lti/jwks.json``.

Source, in order: ``HH_LTI_PRIVATE_KEY`` (a PEM private key; production), else a key generated
once and persisted (mode 0600) at ``./var/lti_tool_key.pem`` so it survives restarts in
development. Several processes starting at once on a fresh checkout agree on one key: each
writes its candidate whole to a file of its own and links it into place, which fails if
another got there first, and then reads that one; the file is never seen half-written.
The key id is the RFC 7638 thumbprint, so it changes only when the key does.
The launch flow does not sign anything yet; the key set is what a platform expects to find
for later services (deep-linking responses, grade passback).
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

from broker.errors import ConfigError

log = logging.getLogger("web.lti")

ENV_VAR = "HH_LTI_PRIVATE_KEY"
DEFAULT_KEY_PATH = Path("var") / "lti_tool_key.pem"


class ToolKeys:
    """The tool's private key (never served) and its public JWKS."""

    def __init__(self, key: RSAKey) -> None:
        if not key.is_private:
            raise ConfigError("the LTI tool key must be a private RSA key")
        self.kid = key.thumbprint()
        self.key = RSAKey.import_key(
            key.as_pem(private=True), {"kid": self.kid, "use": "sig", "alg": "RS256"}
        )

    def public_jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [public]}


def _generate_pem() -> bytes:
    key = RSAKey.generate_key(2048, private=True)
    return key.as_pem(private=True)


def load_tool_keys(
    env: Mapping[str, str] | None = None, path: Path | None = None
) -> ToolKeys:
    """Load the tool key from the environment, else from (or into) the persisted dev file."""
    env = os.environ if env is None else env
    pem = env.get(ENV_VAR, "").strip()
    if pem:
        try:
            return _keys_from_pem(pem.replace("\\n", "\n").encode())
        except Exception as exc:
            raise ConfigError(f"{ENV_VAR} is not a PEM RSA private key") from exc
    path = path or DEFAULT_KEY_PATH
    if path.is_file():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _generate_pem()
    if not _link_new(path, data):
        return _read(path)  # another process's key got there first: everyone uses that one
    log.warning("generated a development LTI tool key at %s; set %s in production", path, ENV_VAR)
    return ToolKeys(RSAKey.import_key(data))


def _link_new(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` whole (mode 0600) unless something is there already.

    Written to a temporary file beside it and hard-linked into place, so a reader sees either
    no file or the complete one; False when another process's file was there first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _read(path: Path) -> ToolKeys:
    try:
        return _keys_from_pem(path.read_bytes())
    except Exception as exc:
        raise ConfigError(f"{path} is not a PEM RSA private key") from exc


@functools.lru_cache(maxsize=4)
def _keys_from_pem(data: bytes) -> ToolKeys:
    """The keys of a PEM, kept per process by its bytes (importing and checking an RSA key
    twice costs ~60 ms, paid by every app built in one process: the test suite builds
    hundreds). The keys are only read once made; a different PEM is imported afresh."""
    return ToolKeys(RSAKey.import_key(data))


def public_pem(keys: ToolKeys) -> str:
    """The public key as PEM, for platforms that ask for a pasted key instead of a JWKS URL."""
    return keys.key.as_pem(private=False).decode()
