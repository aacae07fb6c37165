"""Which language a page is shown in: the one reading of a request's language hints."""

from __future__ import annotations

from aiohttp import web

from i18n import negotiate


def accept_language(request: web.Request) -> str | None:
    """The browser's most preferred language tag (``Accept-Language``), if any."""
    best: tuple[float, str] | None = None
    for index, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            score = (quality - index * 1e-6, tag)
            best = score if best is None or score > best else best
    return best[1] if best else None


def page_locale(request: web.Request, hint: str | None = None) -> str:
    """``?lang=``, else ``hint`` (the student's launch locale), else ``Accept-Language``."""
    asked = request.query.get("lang")
    if asked and len(asked) <= 35:
        return negotiate(asked)
    return negotiate(hint or accept_language(request))
