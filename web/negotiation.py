"""Which language a page is shown in: the one reading of a request's language hints.

In order (issue 13): the person's explicit choice (the pages' language menu, ``?lang=``,
kept across visits in the ``hh_lang`` cookie), the LTI launch's
``launch_presentation.locale`` (the student's token), the browser's ``Accept-Language``
(each of its tags in preference order, so ``fr-CA, en`` finds French), then the district's
default (``HH_DEFAULT_LOCALE``, English unless set). Regional tags fall back sensibly
(:func:`i18n.match`: ``es-MX`` -> ``es``, ``zh-TW`` -> ``zh-Hant``, ``fil`` -> ``tl``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from i18n import DEFAULT_LOCALE, html_lang, match
from web.keys import SETTINGS

LANG_COOKIE = "hh_lang"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


def accept_languages(request: web.Request) -> list[str]:
    """The browser's language tags (``Accept-Language``), most preferred first."""
    scored: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            scored.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(scored)]


def accept_language(request: web.Request) -> str | None:
    """The browser's most preferred language tag (``Accept-Language``), if any."""
    tags = accept_languages(request)
    return tags[0] if tags else None


def chosen(request: web.Request) -> str | None:
    """The shipped locale the person chose (``?lang=``, else their ``hh_lang`` cookie)."""
    asked = request.query.get("lang")
    if asked and len(asked) <= 35 and (found := match(asked)):
        return found
    kept = request.cookies.get(LANG_COOKIE)
    return match(kept) if kept and len(kept) <= 35 else None


def page_locale(request: web.Request, hint: str | None = None) -> str:
    """The shipped locale of a page (see the module's order); ``hint`` is the student's
    launch locale, and a launch passes it along as ``?launch_lang=`` when the page cannot
    read the student's cookie."""
    for candidate in (
        chosen(request),
        match(hint),
        match(request.query.get("launch_lang", "")[:35]),
        *(match(tag) for tag in accept_languages(request)),
    ):
        if candidate:
            return candidate
    settings = request.app.get(SETTINGS)
    return (match(settings.default_locale) if settings else None) or DEFAULT_LOCALE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def remember_language(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep an explicit ``?lang=`` choice in the ``hh_lang`` cookie (a year), so the next
    visit opens in it; partitioned and cross-site over https, so it works inside the LMS's
    iframe too."""
    response = await handler(request)
    asked = request.query.get("lang")
    found = match(asked) if asked and len(asked) <= 35 else None
    if found and response.content_type == "text/html" and not response.prepared:
        secure = request.secure or str(request.headers.get("X-Forwarded-Proto")) == "https"
        attributes = f"Max-Age={LANG_COOKIE_MAX_AGE_S}; Path=/; " + (
            "Secure; SameSite=None; Partitioned" if secure else "SameSite=Lax"
        )
        response.headers.add("Set-Cookie", f"{LANG_COOKIE}={html_lang(found)}; {attributes}")
    return response
