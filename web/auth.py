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
* The sign-in policy (one generic failure message, throttles per username and per client
  address shared across processes) is :mod:`broker.sign_in`'s; a throttled attempt is a
  429 with ``Retry-After``.
* Guarded handlers (:func:`require`) re-check that the account still exists and is enabled
  on every call, so disabling an account ends its HTTP access at once; its socket.io
  tokens expire within ``SOCKET_TOKEN_TTL_S``.
* Who may do what is read from the caller's :class:`~broker.identity.Identity` (its typed
  ``scope``), never from raw claims.
* State-changing posts with a foreign ``Origin`` header are refused (403).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from urllib.parse import urlsplit

from aiohttp import web

from broker import tokens
from broker.accounts import Accounts
from broker.constants import SESSION_COOKIE_TTL_S, SOCKET_TOKEN_TTL_S
from broker.errors import InvalidPayload, NotAllowed, RateLimited, Unauthenticated
from broker.identity import Identity
from broker.settings import Settings
from broker.sign_in import SignIn
from broker.throttle import Throttles
from web import jsonlib
from web.forms import read_form
from web.keys import ACCOUNTS, BROKER, IDENTITY, SETTINGS, SIGN_IN
from web.negotiation import page_locale
from web.problems import answered_as_outage, problem, retry_later
from web.render import N_, render_page

log = logging.getLogger(__name__)

COOKIE = "hh_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- identity ------------------------------------------------------------------------------
def current_identity(request: web.Request) -> Identity:
    """The identity in the request's signed session cookie; raise :class:`Unauthenticated`."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthenticated("please sign in")
    return tokens.verify(request.app[SETTINGS].secret_key, token)


def bearer_identity(request: web.Request) -> Identity | None:
    """The identity of an ``Authorization: Bearer <token>`` header; ``None`` without one.

    A malformed, forged or expired token raises :class:`Unauthenticated`.
    """
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return tokens.verify(request.app[SETTINGS].secret_key, header[len("Bearer ") :])


async def authorise(
    request: web.Request, roles: Collection[str], scopes: Collection[str] | None = None
) -> Identity:
    """The caller's identity if it has one of ``roles`` (and, for staff and teachers, a
    scope of one of the kinds in ``scopes``) and, when it comes from an account, that
    account is still enabled."""
    identity = current_identity(request)
    if identity.role not in roles:
        raise NotAllowed(f"a {identity.role} cannot use this")
    await request.app[SIGN_IN].still_active(identity)
    if scopes is not None and identity.is_staff:
        scope = identity.require_scope()
        if scope.kind not in scopes:
            raise NotAllowed(f"{scope.kind} staff cannot use this")
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


async def signed_in_staff(request: web.Request) -> Identity:
    """The session cookie's staff member or teacher (disabled accounts refused)."""
    return await authorise(request, ("staff", "teacher"))


async def staff_caller(request: web.Request) -> Identity:
    """Who calls a staff API: a bearer socket token (the dashboard already holds one; it
    lives five minutes) or else the signed-in session cookie (which re-checks the account)."""
    return bearer_identity(request) or await signed_in_staff(request)


# -- cookies -------------------------------------------------------------------------------
def is_secure(request: web.Request) -> bool:
    """Whether the browser reached us over https (or ``HH_PUBLIC_URL`` says it does)."""
    public = request.app[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, identity: Identity
) -> None:
    """Sign ``identity`` into the session cookie (also for LTI teacher/staff launches)."""
    response.set_cookie(
        COOKIE,
        tokens.issue(request.app[SETTINGS].secret_key, identity, SESSION_COOKIE_TTL_S),
        max_age=SESSION_COOKIE_TTL_S,
        path="/",
        httponly=True,
        secure=is_secure(request),
        samesite="Lax",
    )


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(COOKIE, path="/", secure=is_secure(request), samesite="Lax")


def _same_origin(request: web.Request) -> None:
    """Refuse a post from another site. Our pages' ``Referrer-Policy: no-referrer`` makes a
    browser send ``Origin: null`` with their own form posts (the sign-in form), so a
    ``null`` origin passes only with the browser's ``Sec-Fetch-Site: same-origin`` (a
    header no page script can set)."""
    origin = request.headers.get("Origin")
    if origin == "null":
        if request.headers.get("Sec-Fetch-Site") != "same-origin":
            raise NotAllowed("cross-site request refused")
    elif origin and urlsplit(origin).netloc != request.host:
        raise NotAllowed("cross-site request refused")


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


# -- sign in -------------------------------------------------------------------------------
def _rate_limited(exc: RateLimited) -> web.Response:
    response = problem(exc.http_status, exc.code, exc.message, **exc.detail)
    response.headers["Retry-After"] = str(exc.detail.get("retry_after", 60))
    return response


async def api_login(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    if request.content_type != "application/json":
        raise InvalidPayload("send JSON")
    data = await jsonlib.request_json(request)
    username = data.get("username") if isinstance(data, dict) else None
    password = data.get("password") if isinstance(data, dict) else None
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidPayload("username and password are required")
    try:
        identity = await request.app[SIGN_IN].attempt(username, password, _client_ip(request))
    except RateLimited as exc:
        return _rate_limited(exc)
    response = web.json_response({"identity": identity.view()})
    set_session_cookie(response, request, identity)
    return response


def _locale(request: web.Request) -> str | None:
    return page_locale(request)


def _safe_next(value: object) -> str:
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text or len(text) > 500:
        return "/"
    return text


def _render_login(
    request: web.Request, *, error: str | None = None, status: int = 200, next_url: str = "/",
    username: str = "",
) -> web.Response:
    return render_page(
        "auth/login.html", _locale(request), status=status,
        error=error, next_url=next_url, username=username,
    )


async def login_page(request: web.Request) -> web.StreamResponse:
    return _render_login(request, next_url=_safe_next(request.query.get("next")))


FORM_FAILED = N_("Incorrect username or password.")
FORM_THROTTLED = N_("Too many sign-in attempts. Please wait a few minutes and try again.")
FORM_UNAVAILABLE = N_("Sign-in is briefly unavailable. Please wait a minute and try again.")


async def login_form(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    form = await read_form(request)
    username, password = form.get("username"), form.get("password")
    next_url = _safe_next(form.get("next"))
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return _render_login(request, error=FORM_FAILED, status=400, next_url=next_url)
    try:
        identity = await request.app[SIGN_IN].attempt(username, password, _client_ip(request))
    except RateLimited as exc:
        response = _render_login(
            request, error=FORM_THROTTLED, status=429, next_url=next_url, username=username[:64]
        )
        response.headers["Retry-After"] = str(exc.detail.get("retry_after", 60))
        return response
    except Unauthenticated:
        return _render_login(
            request, error=FORM_FAILED, status=401, next_url=next_url, username=username[:64]
        )
    except Exception as exc:
        if not answered_as_outage(request, exc):
            raise
        return retry_later(_render_login(
            request, error=FORM_UNAVAILABLE, status=503, next_url=next_url,
            username=username[:64],
        ))
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
    response = web.json_response({"identity": request[IDENTITY].view()})
    response.headers["Cache-Control"] = "no-store"
    return response


@require("tutor", "staff", "teacher")
async def socket_token(request: web.Request) -> web.StreamResponse:
    """A short-lived socket.io token with the session's identity, refreshed from the account."""
    identity = await request.app[SIGN_IN].refreshed(request[IDENTITY])
    token = tokens.issue(request.app[SETTINGS].secret_key, identity, SOCKET_TOKEN_TTL_S)
    response = web.json_response({"token": token, "expires_in": SOCKET_TOKEN_TTL_S})
    response.headers["Cache-Control"] = "no-store"
    return response


# -- wiring --------------------------------------------------------------------------------
def auth_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Start-up context: accounts (on the broker's engine) and the sign-in throttles."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        broker = app[BROKER]
        throttles = Throttles(settings.redis_url, settings.redis_prefix)
        app[ACCOUNTS] = accounts = Accounts(broker.store.engine, broker.catalog)
        app[SIGN_IN] = SignIn(accounts, throttles)
        yield
        await throttles.close()

    return ctx


def setup_auth(app: web.Application, settings: Settings) -> None:
    """Mount the sign-in routes and their start-up context. Add it after the broker's
    context (it needs the broker's engine)."""
    app.cleanup_ctx.append(auth_ctx(settings))
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/token", socket_token)
