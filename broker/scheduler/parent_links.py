"""Parent links: signed, expiring, single-child enrolment links (no account).

A link's token is ``base64url(json {"k": "parent", "l": <secret>, "exp": <unix s>}) .
base64url(HMAC-SHA256)``, the project's token format (:func:`broker.tokens.seal`) keyed with
the district secret. The database keeps only the SHA-256 of ``<secret>`` as the link's
id, with the one student and offer it is for, so a leaked database gives no usable link.

Guarantees (:func:`verify`): a token whose signature does not match, that does not parse
or that is not a parent link raises :class:`~broker.scheduler.errors.ParentLinkInvalid`;
one past its expiry (by the caller's clock) raises
:class:`~broker.scheduler.errors.ParentLinkExpired`. Checking the link row (unknown,
used, revoked) is the service's, in the transaction that uses it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid
from broker.tokens import BadSeal, seal, unseal

KIND = "parent"
MAX_TOKEN = 512


def digest(secret_part: str) -> str:
    """The stored id of a link (SHA-256 hex of its secret part)."""
    return hashlib.sha256(secret_part.encode()).hexdigest()


def issue(secret: str, expires_at: datetime) -> tuple[str, str]:
    """A new link: ``(token, stored id)``."""
    part = secrets.token_urlsafe(24)
    token = seal(secret, {"k": KIND, "l": part, "exp": int(expires_at.timestamp())})
    return token, digest(part)


def verify(secret: str, token: object, now: datetime) -> str:
    """The stored id the token names, if it is a genuine, unexpired parent link."""
    try:
        payload = unseal(secret, token, MAX_TOKEN)
        kind, part, exp = payload["k"], payload["l"], payload["exp"]
    except (BadSeal, KeyError, TypeError) as exc:
        raise ParentLinkInvalid("this link is not valid") from exc
    if kind != KIND or not isinstance(part, str) or not isinstance(exp, int):
        raise ParentLinkInvalid("this link is not valid")
    if exp <= now.timestamp():
        raise ParentLinkExpired("this link has expired; ask the district for a new one")
    return digest(part)
