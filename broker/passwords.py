"""Password hashing for tutor and staff accounts (students never have a password).

Guarantees:

* **Memory-hard KDF**: ``hashlib.scrypt`` with n=2**15, r=8, p=1 (32 MiB and about 0.1 s
  per guess on one core), a fresh 16-byte random salt per hash, a 32-byte key.
* **Self-describing encoding** ``scrypt$n$r$p$salt$hash`` (salt and hash base64url), so the
  cost can be raised later: :func:`needs_rehash` says when a stored hash is weaker than now.
* **Constant-time verification**: the derived key is compared with
  :func:`hmac.compare_digest`; a malformed stored value verifies as ``False`` (never raises),
  and :func:`verify_dummy` spends the same time when there is no account at all, so the
  response time does not reveal which usernames exist.
* **Policy**: at least :data:`MIN_LENGTH` characters, at most :data:`MAX_LENGTH` (a bound on
  the work an attacker can make one request cost), not all one character.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from broker.errors import InvalidPayload

SCHEME = "scrypt"
N = 2**15
R = 8
P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12
MAX_LENGTH = 1024
# scrypt needs 128 * n * r bytes (32 MiB here); OpenSSL's default ceiling is exactly that, so
# give it room. Stored hashes with a larger n are refused rather than allowed to exhaust memory.
_MAX_N = 2**17
_MAXMEM = 128 * _MAX_N * R * 2


class WeakPassword(InvalidPayload):
    """The password does not meet the policy (the message says which rule)."""

    code = "weak_password"


def check_policy(password: str) -> None:
    """Raise :class:`WeakPassword` unless ``password`` meets the policy."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters")
    if len(set(password)) < 2:
        raise WeakPassword("a password cannot be one character repeated")


def generate_password() -> str:
    """A random password that meets the policy (about 120 bits, URL-safe characters)."""
    return secrets.token_urlsafe(15)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    """Hash ``password`` (after :func:`check_policy`) into ``scrypt$n$r$p$salt$hash``."""
    check_policy(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= R and 1 <= p <= 4):
        return None
    if len(salt) < 8 or len(key) != KEY_BYTES:
        return None
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """True iff ``password`` matches ``encoded``; the key comparison is constant-time.

    Over-long passwords and malformed or unknown encodings verify as ``False``.
    """
    parsed = _parse(encoded)
    if parsed is None or len(password) > MAX_LENGTH:
        verify_dummy(password)
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, n, r, p), key)


_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)


def verify_dummy(password: str) -> None:
    """Spend the time of one verification when there is nothing to verify against."""
    _derive(password[:MAX_LENGTH], _DUMMY_SALT, N, R, P)


def needs_rehash(encoded: str) -> bool:
    """True when ``encoded`` was made with weaker parameters than the current ones."""
    parsed = _parse(encoded)
    return parsed is None or parsed[:3] != (N, R, P)
