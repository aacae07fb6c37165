"""The one renderer of HTML: one Jinja environment per locale, one set of page headers.

Every page (widget, tutor console, staff dashboard, sign-in, LTI pages, the demo LMS)
extends ``base.html`` and is rendered by :func:`render_page`, so each carries the same
Content-Security-Policy (:func:`csp`: everything from the broker's own origin, no inline
script or style), ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer`` and
``X-Content-Type-Options: nosniff``. A page's configuration travels in a
``<script type="application/json" id="hh-config">`` block (data, never run), and its
behaviour in static scripts.

Strings are translated with gettext bound to the page's locale (``_``, ``gettext``,
``ngettext`` and ``{% trans %}``); a dynamic message (an error chosen by the handler) is
marked with ``N_`` where it is defined and translated with ``_(message)`` in the template.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from i18n import available_locales, babel_locale, direction, html_lang, negotiate, translator

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC_PREFIX = "/static"

VENDOR = {
    "socketio": f"{STATIC_PREFIX}/vendor/socket.io-client-4.8.3/socket.io.min.js",
    "uplot_js": f"{STATIC_PREFIX}/vendor/uplot-1.6.32/uPlot.iife.min.js",
    "uplot_css": f"{STATIC_PREFIX}/vendor/uplot-1.6.32/uPlot.min.css",
}


@lru_cache(maxsize=64)
def environment(locale: str) -> jinja2.Environment:
    """The Jinja2 environment of ``locale`` (gettext bound; built once per locale)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translator(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


def csp(frame_ancestors: str = "'none'") -> str:
    """The pages' Content-Security-Policy: nothing but the broker's own origin."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "media-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


@lru_cache(maxsize=1)
def _menu(shipped: frozenset[str]) -> tuple[tuple[str, str], ...]:
    items = []
    for name in shipped:
        own = babel_locale(name)
        label = own.get_display_name(own) or name
        items.append((html_lang(name), label[:1].upper() + label[1:]))
    return tuple(sorted(items, key=lambda item: (item[0] != "en", item[1].casefold())))


def language_menu() -> tuple[tuple[str, str], ...]:
    """Every shipped locale as (BCP 47 tag, its own name: "Español", "中文 (简体)"), for the
    pages' language menu; English first."""
    return _menu(available_locales())


def render_page(
    template: str,
    locale: str | None,
    *,
    status: int = 200,
    config: dict[str, Any] | None = None,
    frame_ancestors: str = "'none'",
    **context: Any,
) -> web.Response:
    """Render ``template`` in ``locale`` (negotiated against the shipped catalogs) with
    the pages' headers. ``config`` becomes the page's ``hh-config`` JSON block."""
    lang = negotiate(locale)
    tag = html_lang(lang)
    page_config = {"locale": tag, "i18n_url": f"/i18n/{tag}.json", **(config or {})}
    html = (
        environment(lang)
        .get_template(template)
        .render(lang=tag, dir=direction(lang), config=page_config, vendor=VENDOR,
                static=STATIC_PREFIX, locale_menu=language_menu(), **context)
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": csp(frame_ancestors),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        },
    )


def N_(text: str) -> str:
    """Mark a string for gettext extraction; the template translates it when shown."""
    return text
