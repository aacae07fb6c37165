"""Signed, expiring identity tokens for socket.io connections and cookies.

A token is ``base64url(json payload) . base64url(HMAC-SHA256)`` keyed with the district's
secret. It proves who the caller is and in which role; it carries no personal data beyond
the ids the broker already uses (pseudonym, tutor id). Verification is constant-time.
What the claims mean, and the one place they are read, is :mod:`broker.identity`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson

from broker.errors import Unauthenticated
from broker.identity import ROLES, Identity

__all__ = ["DEFAULT_TTL_S", "BadSeal", "Identity", "issue", "seal", "unseal", "verify"]

DEFAULT_TTL_S = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def issue(secret: str, identity: Identity, ttl_s: float = DEFAULT_TTL_S) -> str:
    payload = {
        "r": identity.role,
        "s": identity.subject,
        "c": identity.claims,
        "exp": int(time.time() + ttl_s),
    }
    return seal(secret, payload)


def seal(secret: str, payload: object) -> str:
    """``payload`` as JSON, signed: the token format of this module (also used by
    :mod:`broker.scheduler.parent_links`)."""
    body = _b64(orjson.dumps(payload))
    return f"{body}.{_mac(secret, body)}"


class BadSeal(ValueError):
    """A sealed token that is malformed, over the size limit or not signed by us."""


def same_secret(given: object, expected: str) -> bool:
    """Whether ``given`` is ``expected`` (a token's signature, a configured secret), compared
    in constant time. Anything but an ASCII string is simply False, never an exception:
    :func:`hmac.compare_digest` refuses a non-ASCII ``str``, and a header's or cookie's
    undecodable bytes reach the app as lone surrogates, which cannot be encoded."""
    return (
        isinstance(given, str) and given.isascii()
        and hmac.compare_digest(given.encode(), expected.encode("utf-8", "surrogateescape"))
    )


def unseal(secret: str, token: object, limit: int = 8192) -> Any:
    """The JSON payload of a token made by :func:`seal` with ``secret`` (signature checked
    in constant time); :class:`BadSeal` otherwise. Expiry is the caller's to check."""
    if (not isinstance(token, str) or not token.isascii() or token.count(".") != 1
            or len(token) > limit):  # the tokens made here are ASCII (base64url)
        raise BadSeal("missing or malformed token")
    body, mac = token.split(".")
    if not same_secret(mac, _mac(secret, body)):
        raise BadSeal("bad token signature")
    try:
        return orjson.loads(_unb64(body))
    except ValueError as exc:
        raise BadSeal("malformed token") from exc


def verify(secret: str, token: object) -> Identity:
    """Return the identity in a valid, unexpired token; raise :class:`Unauthenticated`."""
    try:
        payload = unseal(secret, token)
    except BadSeal as exc:
        raise Unauthenticated(str(exc)) from exc
    try:
        role, subject, claims, exp = payload["r"], payload["s"], payload["c"], payload["exp"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated("malformed token") from exc
    if not isinstance(exp, int) or exp < time.time():
        raise Unauthenticated("token expired")
    if role not in ROLES or not isinstance(subject, str) or not isinstance(claims, dict):
        raise Unauthenticated("malformed token")
    return Identity(role=role, subject=subject, claims=claims)
