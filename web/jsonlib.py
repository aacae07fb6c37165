"""The app's one JSON codec, orjson: python-socketio's ``json=`` hook (several times faster
on every emit) and the decoder of every HTTP request's JSON body. orjson refuses what the
rest of the app could not store or hash: a lone UTF-16 surrogate (``"\\ud800"``), ``NaN``
and ``Infinity``; so a body holding one is refused as not JSON, as the same event is."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from broker.errors import InvalidPayload


def dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(data: str | bytes, **_: Any) -> Any:
    return orjson.loads(data)


async def request_json(request: web.Request) -> Any:
    """The request's JSON body; :class:`InvalidPayload` if it is not JSON (as orjson reads
    it: no lone surrogates, no ``NaN``)."""
    try:
        return await request.json(loads=loads)
    except ValueError as exc:
        raise InvalidPayload("the body must be JSON") from exc
