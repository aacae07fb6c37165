"""The OIDC ``state`` and ``nonce`` issued at login initiation, and how state is bound to the
browser that started the login.

* ``state`` is a self-contained, HMAC-signed (``Settings.secret_key``) record of the login: the
  nonce, issuer, client id, target link URI, the deployment and hints the platform sent, and
  whether the platform offered platform storage. It expires after :data:`STATE_TTL_S`
  seconds. It is single use because the nonce it carries is (see :mod:`web.lti.nonces`).
* **Browser binding, cookie**: login sets ``hh_lti_<id>`` (one per login, so several
  embedded launches in one page do not clash) holding a MAC of the state, with
  ``Secure; HttpOnly; SameSite=None; Partitioned`` (CHIPS, so it still works as a third-party
  cookie in an iframe). The launch must present it.
* **Browser binding, platform storage** (1EdTech LTI postMessage storage): when the platform
  sent ``lti_storage_target``, the login page also stores a MAC of the state in the
  platform's storage (``lti.put_data``); when the cookie did not survive, the launch page reads
  it back (``lti.get_data``) and re-posts it. Caveat (inherent to the spec's design): this
  value is visible to whoever ran that login page, so it proves less than the cookie does.
* Fallback: with neither, the error page offers to open the tool in a new tab, where the
  cookie is first-party.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from aiohttp import web

from broker.tokens import same_secret
from web.lti.errors import BadState

STATE_TTL_S = 600
COOKIE_PREFIX = "hh_lti_"
COOKIE_PATH = "/lti/"
MAX_STATE_FIELD = 2048


@dataclass(frozen=True)
class LoginState:
    nonce: str
    issuer: str
    client_id: str
    target_link_uri: str
    login_hint: str
    lti_message_hint: str = ""
    deployment_id: str = ""
    storage_target: str = ""
    issued_at: int = 0

    @classmethod
    def new(cls, **fields: Any) -> LoginState:
        return cls(nonce=secrets.token_urlsafe(24), issued_at=int(time.time()), **fields)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateCodec:
    """Signs and opens ``state`` values; derives the cookie and platform-storage bindings."""

    def __init__(self, secret: str, ttl_s: int = STATE_TTL_S) -> None:
        self._secret = secret.encode()
        self.ttl_s = ttl_s

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}\x1f{text}".encode(), "sha256").digest())

    def encode(self, login: LoginState) -> str:
        body = _b64(orjson.dumps(asdict(login)))
        return f"{body}.{self._mac('state', body)}"

    def decode(self, state: object, now: float | None = None) -> LoginState:
        """The login behind a state value; :class:`BadState` if forged, garbled or too old."""
        if (not isinstance(state, str) or not state or not state.isascii()
                or len(state) > 8 * MAX_STATE_FIELD):  # the states made here are ASCII
            raise BadState("missing state")
        body, _, mac = state.partition(".")
        if not same_secret(mac, self._mac("state", body)):
            raise BadState("state signature does not match")
        try:
            login = LoginState(**orjson.loads(_unb64(body)))
        except (ValueError, TypeError) as exc:
            raise BadState("state unreadable") from exc
        now = time.time() if now is None else now
        if not (login.issued_at - 60 <= now <= login.issued_at + self.ttl_s):
            raise BadState("state expired")
        return login

    # -- cookie binding ------------------------------------------------------------------
    @staticmethod
    def cookie_name(state: str) -> str:
        return COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]

    def cookie_value(self, state: str) -> str:
        return self._mac("cookie", state)

    def cookie_header(self, state: str, *, clear: bool = False) -> str:
        """A ``Set-Cookie`` value; written by hand because ``http.cookies`` on Python < 3.14
        rejects the ``Partitioned`` attribute."""
        value = "" if clear else self.cookie_value(state)
        max_age = 0 if clear else self.ttl_s
        return (
            f"{self.cookie_name(state)}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; "
            "Secure; HttpOnly; SameSite=None; Partitioned"
        )

    def set_cookie(self, response: web.StreamResponse, state: str, *, clear: bool = False) -> None:
        response.headers.add("Set-Cookie", self.cookie_header(state, clear=clear))

    def cookie_matches(self, request: web.Request, state: str) -> bool:
        presented = request.cookies.get(self.cookie_name(state), "")
        return bool(presented) and same_secret(presented, self.cookie_value(state))

    # -- platform-storage binding ----------------------------------------------------------
    @staticmethod
    def storage_key(state: str) -> str:
        return "hh_lti_state_" + hashlib.sha256(state.encode()).hexdigest()[:16]

    def storage_value(self, state: str) -> str:
        return self._mac("storage", state)

    def storage_matches(self, state: str, presented: object) -> bool:
        return bool(presented) and same_secret(presented, self.storage_value(state))
