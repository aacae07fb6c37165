"""Tutor and staff sign-in: a form and a JSON variant, a signed cookie, socket.io tokens.

Routes added by :func:`setup_auth`:

=======  ===============  ==================================================================
GET      ``/login``       the sign-in form (translated: ``?lang=`` or ``Accept-Language``)
POST     ``/login``       form sign-in; 303 to ``next`` (a local path) or ``/``
POST     ``/api/login``   JSON ``{username, password}`` sign-in -> ``{"identity": ...}``
POST     ``/logout``      clears the cookie (204 for JSON clients, else 303 to ``/login``)
GET      ``/api/me``      who the cookie says is signed in
GET      ``/api/token``   ``{token, expires_in}``: a short-lived socket.io token for the
                          signed-in tutor or staff member, built from the account as it is now
=======  ===============  ==================================================================

Guarantees:

* The cookie ``hh_session`` holds ``tokens.issue(secret_key, identity, 8 h)``: signed, not
  encrypted (it carries ids and scope, no personal data); ``HttpOnly``, ``SameSite=Lax``,
  ``Path=/``, and ``Secure`` whenever the request came over https (or ``HH_PUBLIC_URL`` is
  https). Socket.io tokens from ``/api/token`` carry the same :class:`Identity`.
* Failures answer one generic message ("incorrect username or password") for an unknown
  user, a wrong password and a disabled account, after one scrypt derivation each.
* Rate limit: after :data:`USER_FAILURES` failed attempts for one username, or
  :data:`IP_FAILURES` from one client address, within :data:`WINDOW_S`, further attempts
  are refused with 429 (``Retry-After``) without checking the password. Counters live in
  Redis when ``REDIS_URL`` is set (shared by every process), else in the process.
* Guarded handlers (:func:`require`) re-check that the account still exists and is enabled
  on every call, so disabling an account ends its HTTP access at once; its socket.io
  tokens expire within :data:`SOCKET_TOKEN_TTL_S`.
* State-changing posts with a foreign ``Origin`` header are refused (403).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from broker import tokens
from broker.accounts import ACCOUNT_SOURCE, Accounts
from broker.errors import InvalidPayload, NotAllowed, RateLimited, Unauthenticated
from i18n import gettext_for, negotiate
from web.problems import problem

log = logging.getLogger(__name__)

COOKIE = "hh_session"
SESSION_TTL_S = 8 * 3600
SOCKET_TOKEN_TTL_S = 300
USER_FAILURES = 5
IP_FAILURES = 20  # schools and offices share addresses behind NAT
WINDOW_S = 15 * 60
GENERIC_FAILURE = "incorrect username or password"
TEMPLATES = Path(__file__).parent / "templates"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts", Accounts)
IDENTITY: web.RequestKey[tokens.Identity] = web.RequestKey("identity", tokens.Identity)


# -- rate limiting -------------------------------------------------------------------------
class LoginThrottle:
    """Counts failed sign-ins per key in a sliding window (Redis sorted sets, or memory)."""

    def __init__(
        self, limit: int, window_s: float, redis: Any = None, prefix: str = "hh",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._memory: dict[str, collections.deque[float]] = {}

    def _key(self, key: str) -> str:
        return f"{self.prefix}:login:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    async def retry_after(self, key: str) -> float:
        """Seconds until another attempt is allowed for ``key`` (0: allowed now)."""
        now = self.clock()
        if self.redis is not None:
            k = self._key(key)
            await self.redis.zremrangebyscore(k, "-inf", now - self.window_s)
            if await self.redis.zcard(k) < self.limit:
                return 0.0
            oldest = await self.redis.zrange(k, 0, 0, withscores=True)
            first = float(oldest[0][1]) if oldest else now
        else:
            times = self._prune(key, now)
            if len(times) < self.limit:
                return 0.0
            first = times[0]
        return max(first + self.window_s - now, 1.0)

    async def failed(self, key: str) -> None:
        now = self.clock()
        if self.redis is not None:
            k = self._key(key)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(k, {f"{now}:{uuid.uuid4().hex[:8]}": now})
                pipe.expire(k, int(self.window_s) + 1)
                await pipe.execute()
            return
        self._prune(key, now).append(now)
        if len(self._memory) > 50_000:  # bound memory under a spray of usernames
            horizon = now - self.window_s
            for stale in [k for k, v in self._memory.items() if not v or v[-1] < horizon]:
                del self._memory[stale]

    async def clear(self, key: str) -> None:
        if self.redis is not None:
            await self.redis.delete(self._key(key))
        else:
            self._memory.pop(key, None)

    def _prune(self, key: str, now: float) -> collections.deque[float]:
        times = self._memory.setdefault(key, collections.deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times


THROTTLES: web.AppKey[tuple[LoginThrottle, LoginThrottle]] = web.AppKey("login_throttles", tuple)


# -- identity helpers ----------------------------------------------------------------------
def _settings(app: web.Application) -> Any:
    from web.app import SETTINGS

    return app[SETTINGS]


def current_identity(request: web.Request) -> tokens.Identity:
    """The identity in the request's signed session cookie; raise :class:`Unauthenticated`."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthenticated("please sign in")
    return tokens.verify(_settings(request.app).secret_key, token)


def bearer_identity(request: web.Request) -> tokens.Identity | None:
    """The identity of an ``Authorization: Bearer <token>`` header; ``None`` without one.

    A malformed, forged or expired token raises :class:`Unauthenticated`.
    """
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return tokens.verify(_settings(request.app).secret_key, header[len("Bearer ") :])


def scope_of(identity: tokens.Identity) -> tuple[str | None, str | None]:
    """(scope, scope id) for staff and teachers: a teacher is school-scoped to their school."""
    claims = identity.claims
    if identity.role == "staff":
        scope = claims.get("scope")
        return (str(scope) if scope else None, str(claims["scope_id"]) if claims.get("scope_id")
                else None)
    if identity.role == "teacher":
        school = claims.get("scope_id") or claims.get("school_id")
        return "school", str(school) if school else None
    return None, None


async def authorise(
    request: web.Request, roles: Collection[str], scopes: Collection[str] | None = None
) -> tokens.Identity:
    """The caller's identity if it has one of ``roles`` (and, for staff/teachers, one of
    ``scopes``) and, when it comes from an account, that account is still enabled."""
    identity = current_identity(request)
    if identity.role not in roles:
        raise NotAllowed(f"a {identity.role} cannot use this")
    if identity.claims.get("source") == ACCOUNT_SOURCE and not await request.app[
        ACCOUNTS
    ].is_active(identity.subject):
        raise Unauthenticated("please sign in")
    if scopes is not None and identity.role in ("staff", "teacher"):
        scope, _ = scope_of(identity)
        if scope not in scopes:
            raise NotAllowed(f"{scope or 'unscoped'} staff cannot use this")
    return identity


def require(
    *roles: str, scopes: Collection[str] | None = None
) -> Callable[[Handler], Handler]:
    """Guard a handler: ``@require("staff", "teacher", scopes={"district", "school"})``.

    The handler finds the caller in ``request[IDENTITY]``.
    """

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            request[IDENTITY] = await authorise(request, roles, scopes)
            return await handler(request)

        return guarded

    return wrap


def _secure(request: web.Request) -> bool:
    public = _settings(request.app).public_url or ""
    return request.secure or public.startswith("https://")


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, identity: tokens.Identity
) -> None:
    """Sign ``identity`` into the session cookie (also for LTI teacher/staff launches)."""
    response.set_cookie(
        COOKIE,
        tokens.issue(_settings(request.app).secret_key, identity, SESSION_TTL_S),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
    )


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(COOKIE, path="/", secure=_secure(request), samesite="Lax")


def identity_view(identity: tokens.Identity) -> dict[str, Any]:
    c = identity.claims
    view: dict[str, Any] = {"role": identity.role, "id": identity.subject,
                            "display_name": c.get("display_name")}
    if identity.role == "tutor":
        view.update(vendor=c.get("vendor"), languages=c.get("languages", []))
    elif identity.role in ("staff", "teacher"):
        scope, scope_id = scope_of(identity)
        view.update(scope=scope, scope_id=scope_id)
    return view


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise NotAllowed("cross-site request refused")
    if origin == "null":
        raise NotAllowed("cross-site request refused")


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


# -- sign in -------------------------------------------------------------------------------
async def _sign_in(request: web.Request, username: str, password: str) -> tokens.Identity:
    """Check throttles, then the password; raise RateLimited or Unauthenticated."""
    by_user, by_ip = request.app[THROTTLES]
    user_key, ip_key = f"u:{username.strip().lower()}", f"ip:{_client_ip(request)}"
    wait = max(await by_user.retry_after(user_key), await by_ip.retry_after(ip_key))
    if wait > 0:
        log.warning("sign-in throttled for %s", _client_ip(request))
        raise RateLimited("too many sign-in attempts; try again later", retry_after=int(wait))
    account = await request.app[ACCOUNTS].authenticate(username, password)
    if account is None:
        await by_user.failed(user_key)
        await by_ip.failed(ip_key)
        log.info("sign-in failed from %s", _client_ip(request))
        raise Unauthenticated(GENERIC_FAILURE)
    await by_user.clear(user_key)
    log.info("signed in %s %s", account.role, account.id)
    return account.identity()


def _rate_limited(exc: RateLimited) -> web.Response:
    response = problem(exc.http_status, exc.code, exc.message, **exc.detail)
    response.headers["Retry-After"] = str(exc.detail.get("retry_after", WINDOW_S))
    return response


async def api_login(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    if request.content_type != "application/json":
        raise InvalidPayload("send JSON")
    try:
        data = await request.json()
    except ValueError as exc:
        raise InvalidPayload("body must be JSON") from exc
    username = data.get("username") if isinstance(data, dict) else None
    password = data.get("password") if isinstance(data, dict) else None
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidPayload("username and password are required")
    try:
        identity = await _sign_in(request, username[:200], password)
    except RateLimited as exc:
        return _rate_limited(exc)
    response = web.json_response({"identity": identity_view(identity)})
    set_session_cookie(response, request, identity)
    return response


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def _locale(request: web.Request) -> str:
    lang = request.query.get("lang")
    if not lang:
        header = request.headers.get("Accept-Language", "")
        lang = header.split(",", 1)[0].split(";", 1)[0].strip()
    return negotiate(lang or None)


def _safe_next(value: object) -> str:
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text or len(text) > 500:
        return "/"
    return text


def _render_login(
    request: web.Request, *, error: str | None = None, status: int = 200, next_url: str = "/",
    username: str = "",
) -> web.Response:
    locale = _locale(request)
    html = _env.get_template("auth/login.html").render(
        _=gettext_for(locale), lang=locale, error=error, next_url=next_url, username=username
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    return _render_login(request, next_url=_safe_next(request.query.get("next")))



def N_(text: str) -> str:
    """Mark a string for gettext extraction; the template translates it when shown."""
    return text


FORM_FAILED = N_("Incorrect username or password.")
FORM_THROTTLED = N_("Too many sign-in attempts. Please wait a few minutes and try again.")


async def login_form(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    next_url = _safe_next(form.get("next"))
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return _render_login(request, error=FORM_FAILED, status=400, next_url=next_url)
    try:
        identity = await _sign_in(request, username[:200], password)
    except RateLimited as exc:
        response = _render_login(
            request, error=FORM_THROTTLED, status=429, next_url=next_url, username=username[:64]
        )
        response.headers["Retry-After"] = str(exc.detail.get("retry_after", WINDOW_S))
        return response
    except Unauthenticated:
        return _render_login(
            request, error=FORM_FAILED, status=401, next_url=next_url, username=username[:64]
        )
    response = web.Response(status=303, headers={"Location": next_url})
    set_session_cookie(response, request, identity)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    response: web.StreamResponse
    if "application/json" in request.headers.get("Accept", ""):
        response = web.Response(status=204)
    else:
        response = web.Response(status=303, headers={"Location": "/login"})
    clear_session_cookie(response, request)
    return response


@require("tutor", "staff", "teacher")
async def me(request: web.Request) -> web.StreamResponse:
    response = web.json_response({"identity": identity_view(request[IDENTITY])})
    response.headers["Cache-Control"] = "no-store"
    return response


@require("tutor", "staff", "teacher")
async def socket_token(request: web.Request) -> web.StreamResponse:
    """A short-lived socket.io token with the session's identity, refreshed from the account."""
    identity: tokens.Identity = request[IDENTITY]
    if identity.claims.get("source") == ACCOUNT_SOURCE:
        account = await request.app[ACCOUNTS].by_id(identity.subject)
        if account is None:
            raise Unauthenticated("please sign in")
        identity = account.identity()
    token = tokens.issue(_settings(request.app).secret_key, identity, SOCKET_TOKEN_TTL_S)
    response = web.json_response({"token": token, "expires_in": SOCKET_TOKEN_TTL_S})
    response.headers["Cache-Control"] = "no-store"
    return response


# -- wiring --------------------------------------------------------------------------------
async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    from web.app import BROKER

    settings = _settings(app)
    broker = app[BROKER]
    app[ACCOUNTS] = Accounts(broker.store.engine, broker.catalog)
    redis = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url)
    app[THROTTLES] = (
        LoginThrottle(USER_FAILURES, WINDOW_S, redis, settings.redis_prefix),
        LoginThrottle(IP_FAILURES, WINDOW_S, redis, settings.redis_prefix),
    )
    yield
    if redis is not None:
        await redis.aclose()


_WIRED: web.AppKey[bool] = web.AppKey("auth_wired", bool)


def ensure_auth_state(app: web.Application) -> None:
    """Add the accounts/throttle start-up context once (``setup_auth`` and the staff API)."""
    if not app.get(_WIRED):
        app[_WIRED] = True
        app.cleanup_ctx.append(_auth_ctx)


def setup_auth(app: web.Application) -> None:
    """Mount the sign-in routes. Call after ``init_app`` (it needs the broker's engine)."""
    ensure_auth_state(app)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/token", socket_token)
