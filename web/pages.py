"""The pages people use: the front door, the student widget, the tutor console, the staff
dashboard.

Routes added by :func:`setup_pages`:

=======  =======================  ===========================================================
GET      ``/``                    the front door: what the product is, who goes in where
GET      ``/widget``              student chat widget (framed by Schoology after the launch)
GET      ``/tutor``               tutor console
GET      ``/staff``               staff dashboard
GET      ``/static/...``          CSS, the pages' scripts and the vendored libraries
GET      ``/i18n/{locale}.json``  a locale's messages for the scripts (:mod:`web.i18n_js`)
=======  =======================  ===========================================================

Every page is a Jinja2 template translated through :mod:`i18n` (``?lang=``, then the
student's launch locale, then ``Accept-Language``), with its configuration in a
``<script type="application/json" id="hh-config">`` block (no inline script) and a strict
Content-Security-Policy: everything from the broker's own origin, socket.io included.

How a student's socket.io token reaches the widget (see ``docs/frontend.md``): the LTI
launch handler calls :func:`student_launch_response`, which signs the student's
:class:`~broker.tokens.Identity` into the ``hh_student`` cookie *and* puts it in the
redirect's fragment (``/widget#token=...``), because a cookie set inside a cross-site
iframe may be refused by the browser. The widget page renders the cookie's token into its
configuration when the cookie came back; otherwise its script takes the fragment (and
removes it from the address bar). Tutors and staff get short-lived tokens from
``GET /api/token`` (their sign-in cookie) or, in demo mode, from ``POST /demo/token``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from broker import tokens
from broker.errors import Unauthenticated
from broker.identity import Identity
from broker.stats import DISTRICT_TZ
from i18n import html_lang, negotiate
from routing.catalog import Catalog
from web.auth import is_secure
from web.i18n_js import setup_i18n_js
from web.keys import BROKER, SETTINGS
from web.negotiation import page_locale
from web.render import HERE, STATIC_PREFIX, render_page

STATIC = HERE / "static"

STUDENT_COOKIE = "hh_student"
STUDENT_COOKIE_TTL_S = 4 * 3600

AXE_JS = STATIC / "vendor" / "axe-core-4.11.1" / "axe.min.js"  # for the browser tests


def _catalog(app: web.Application) -> Catalog | None:
    broker = app.get(BROKER)
    return broker.catalog if broker is not None else None


def subjects_of(app: web.Application) -> list[dict[str, str]]:
    catalog = _catalog(app)
    if catalog is None:
        return []
    return [{"id": sid, "label": label} for sid, label in catalog.subjects]


def vendors_of(app: web.Application) -> list[dict[str, Any]]:
    catalog = _catalog(app)
    if catalog is None:
        return []
    return [
        {"id": v.id, "name": v.name, "languages": list(v.languages)}
        for v in catalog.on_demand_vendors
    ]


def district_languages(app: web.Application) -> list[str]:
    """Every language the district offers to ask for help in (the catalog's)."""
    catalog = _catalog(app)
    return catalog.district_languages if catalog is not None else []


def all_vendor_names(app: web.Application) -> dict[str, str]:
    """Vendor id -> name for every vendor of the catalog (on-demand and scheduled)."""
    catalog = _catalog(app)
    return {v.id: v.name for v in catalog.vendors} if catalog is not None else {}


# -- the student widget ----------------------------------------------------------------------
def student_from_cookie(request: web.Request) -> tuple[str, Identity] | None:
    """(token, identity) from a valid ``hh_student`` cookie with a student token."""
    raw = request.cookies.get(STUDENT_COOKIE)
    if not raw:
        return None
    try:
        identity = tokens.verify(request.app[SETTINGS].secret_key, raw)
    except Unauthenticated:
        return None
    if identity.learner is None:
        return None
    return raw, identity


async def widget(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    found = student_from_cookie(request)
    config: dict[str, Any] = {
        "token": None,
        "given_name": "",
        "catalog_url": "/api/catalog",
        "subjects": subjects_of(request.app),
        "languages": district_languages(request.app),
        "max_chars": settings.chat_max_chars,
    }
    hint = None
    if found is not None:
        token, identity = found
        assert identity.learner is not None
        config["token"] = token
        config["given_name"] = identity.learner.given_name[:60]
        hint = identity.learner.locale
    return render_page(
        "widget.html", page_locale(request, hint), config=config,
        frame_ancestors=settings.frame_ancestors,
    )


def student_launch_response(
    request: web.Request,
    identity: Identity,
    locale: str | None = None,
    ttl_s: float = STUDENT_COOKIE_TTL_S,
) -> web.HTTPSeeOther:
    """What the LTI launch answers for a student: a 303 to the widget carrying their token.

    The token travels twice: in the ``hh_student`` cookie (``HttpOnly``, ``Path=/widget``;
    ``SameSite=None; Secure; Partitioned`` over https, so it survives inside Schoology's
    iframe where the browser allows partitioned cookies) and in the URL fragment, which the
    browser never sends to a server and the widget's script erases from the address bar.
    Return (not raise) the result from the launch handler.
    """
    settings = request.app[SETTINGS]
    token = tokens.issue(settings.secret_key, identity, ttl_s)
    location = "/widget"
    if locale:  # a hint (below an explicit choice), for when the cookie cannot be read
        location += "?launch_lang=" + quote(html_lang(negotiate(locale)))
    response = web.HTTPSeeOther(location + "#token=" + quote(token, safe=""))
    secure = is_secure(request)
    # Written by hand: http.cookies on Python < 3.14 rejects the Partitioned attribute
    # (aiohttp's set_cookie raises even for partitioned=False).
    attributes = f"Max-Age={int(ttl_s)}; Path=/widget; HttpOnly; " + (
        "Secure; SameSite=None; Partitioned" if secure else "SameSite=Lax"
    )
    response.headers.add("Set-Cookie", f"{STUDENT_COOKIE}={token}; {attributes}")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# -- the front door --------------------------------------------------------------------------
async def front_door(request: web.Request) -> web.Response:
    """``/``: what Homework Help is and where each person goes in (students from their
    course, tutors and staff by signing in; the demo LMS in demo mode)."""
    settings = request.app[SETTINGS]
    return render_page(
        "index.html", page_locale(request), config={},
        demo_url="/demo/lms" if settings.demo else None,
    )


# -- tutor console and staff dashboard -------------------------------------------------------
def signin_config(request: web.Request, page: str) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {
        "demo": bool(settings.demo),
        "token_url": "/api/token",
        "demo_token_url": "/demo/token" if settings.demo else None,
        "login_url": "/login?next=" + quote(page, safe="/"),
        "vendors": vendors_of(request.app),
        # every vendor's name, scheduled programmes' included (for names, not choices)
        "vendor_names": all_vendor_names(request.app),
        "subjects": subjects_of(request.app),
    }


async def tutor(request: web.Request) -> web.Response:
    config = signin_config(request, "/tutor")
    config["upcoming_url"] = "/api/scheduler/me/upcoming"
    config["join_url"] = "/api/scheduler/occurrences/{occurrence}/join"
    return render_page("tutor.html", page_locale(request), config=config)


async def staff(request: web.Request) -> web.Response:
    config = signin_config(request, "/staff")
    config["stats_url"] = "/api/stats"
    config["timezone"] = DISTRICT_TZ.key  # the statistics' days and hours are the district's
    return render_page("staff.html", page_locale(request), config=config)


MAX_STATIC_PATH = 512  # longer than any file we ship; the filesystem refuses past 255 a part


@web.middleware
async def static_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Middleware: a ``/static/`` path longer than any we serve is a plain 404 (the
    filesystem would otherwise fail it with "file name too long")."""
    if request.path.startswith(STATIC_PREFIX + "/") and (
        len(request.path) > MAX_STATIC_PATH or any(len(p) > 255 for p in request.path.split("/"))
    ):
        raise web.HTTPNotFound()
    return await handler(request)


def setup_pages(app: web.Application) -> None:
    """Mount the pages, their static files and the scripts' translation endpoint."""
    app.router.add_get("/", front_door)
    app.router.add_get("/widget", widget)
    app.router.add_get("/tutor", tutor)
    app.router.add_get("/staff", staff)
    app.router.add_static(STATIC_PREFIX, STATIC, follow_symlinks=False)
    setup_i18n_js(app)
