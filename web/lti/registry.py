"""Platform registrations: which LMS instances the tool trusts, read from settings.

``HH_LTI_PLATFORMS`` (``Settings.lti_platforms``) is JSON text or a path to a JSON file
holding a list of registrations (or ``{"platforms": [...]}``). Schoology's real endpoints::

    [{"name": "Schoology",
      "issuer": "https://schoology.schoology.com",
      "client_id": "7654321",
      "deployment_ids": ["7654321-1234-abcdef"],
      "auth_login_url": "https://lti-service.svc.schoology.com/lti-service/authorize-redirect",
      "jwks_url": "https://lti-service.svc.schoology.com/lti-service/.well-known/jwks"}]

Several registrations may share an issuer (one per client id); a launch is matched on the
exact ``(issuer, client_id)`` pair. ``deployment_ids`` must list every deployment the district
installed; an unlisted deployment is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.errors import ConfigError
from web.lti.errors import UnknownClient, UnknownIssuer

SCHOOLOGY_ISSUER = "https://schoology.schoology.com"
SCHOOLOGY_AUTH_URL = "https://lti-service.svc.schoology.com/lti-service/authorize-redirect"
SCHOOLOGY_JWKS_URL = "https://lti-service.svc.schoology.com/lti-service/.well-known/jwks"


@dataclass(frozen=True)
class PlatformRegistration:
    """One trusted platform + client id. ``trusted_audiences`` are extra ``aud`` values allowed
    beside ``client_id`` (empty by default: any other audience is refused)."""

    issuer: str
    client_id: str
    deployment_ids: frozenset[str]
    auth_login_url: str
    jwks_url: str
    name: str = ""
    trusted_audiences: frozenset[str] = field(default_factory=frozenset)

    @property
    def auth_origin(self) -> str:
        """Origin of the OIDC auth endpoint: the target origin for platform-storage messages."""
        parts = urlsplit(self.auth_login_url)
        return f"{parts.scheme}://{parts.netloc}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "deployment_ids": sorted(self.deployment_ids),
            "auth_login_url": self.auth_login_url,
            "jwks_url": self.jwks_url,
        }
        if self.name:
            body["name"] = self.name
        if self.trusted_audiences:
            body["trusted_audiences"] = sorted(self.trusted_audiences)
        return body

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlatformRegistration:
        def text(key: str, *, url: bool = False) -> str:
            value = raw.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"LTI platform registration needs a non-empty {key!r}")
            value = value.strip()
            if url and urlsplit(value).scheme not in {"https", "http"}:
                raise ConfigError(f"LTI platform {key!r} must be an http(s) URL, got {value!r}")
            return value

        def texts(key: str, *, required: bool) -> frozenset[str]:
            value = raw.get(key, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"LTI platform {key!r} must be a list of strings")
            if required and not value:
                raise ConfigError(f"LTI platform registration needs at least one of {key!r}")
            return frozenset(value)

        name = raw.get("name", "")
        return cls(
            issuer=text("issuer"),
            client_id=text("client_id"),
            deployment_ids=texts("deployment_ids", required=True),
            auth_login_url=text("auth_login_url", url=True),
            jwks_url=text("jwks_url", url=True),
            name=name if isinstance(name, str) else "",
            trusted_audiences=texts("trusted_audiences", required=False),
        )


def parse_platforms(value: str | None) -> list[PlatformRegistration]:
    """Registrations from ``Settings.lti_platforms``: JSON text, or a path to a JSON file."""
    if value is None or not value.strip():
        return []
    text = value.strip()
    if not text.startswith(("[", "{")):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"HH_LTI_PLATFORMS: cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"HH_LTI_PLATFORMS is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("platforms", [data] if "issuer" in data else None)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ConfigError("HH_LTI_PLATFORMS must be a list of platform registrations")
    return [PlatformRegistration.from_json(item) for item in data]


class Registry:
    """The trusted registrations, looked up by exact issuer and client id."""

    def __init__(self, registrations: Iterable[PlatformRegistration] = ()) -> None:
        self._by_key: dict[tuple[str, str], PlatformRegistration] = {}
        for registration in registrations:
            self.add(registration)

    def add(self, registration: PlatformRegistration) -> None:
        key = (registration.issuer, registration.client_id)
        if key in self._by_key and self._by_key[key] != registration:
            raise ConfigError(
                f"two LTI registrations for issuer {registration.issuer!r} "
                f"and client id {registration.client_id!r}"
            )
        self._by_key[key] = registration

    def __iter__(self) -> Iterator[PlatformRegistration]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def knows_issuer(self, issuer: str) -> bool:
        return any(iss == issuer for iss, _ in self._by_key)

    def find(self, issuer: str, client_id: str | None = None) -> PlatformRegistration:
        """The registration for ``issuer`` (exact match) and ``client_id``.

        Without a client id the issuer must have exactly one registration.
        """
        if client_id:
            found = self._by_key.get((issuer, client_id))
            if found is not None:
                return found
            if self.knows_issuer(issuer):
                raise UnknownClient("client id not registered for this issuer")
            raise UnknownIssuer("issuer not registered")
        matches = [reg for (iss, _), reg in self._by_key.items() if iss == issuer]
        if not matches:
            raise UnknownIssuer("issuer not registered")
        if len(matches) > 1:
            raise UnknownClient("several registrations for this issuer and no client_id given")
        return matches[0]
