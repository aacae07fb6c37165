"""The body of a form post (``application/x-www-form-urlencoded`` or ``multipart/form-data``),
read once for every route that takes one (the sign-in form, the LTI login and launch)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from broker.errors import InvalidPayload


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted fields; :class:`InvalidPayload` (400) for a body that cannot be read as the
    form its content type announces (a multipart body without its boundary, say), which
    aiohttp raises as ``ValueError``."""
    try:
        return await request.post()
    except ValueError as exc:
        raise InvalidPayload("the form could not be read") from exc
