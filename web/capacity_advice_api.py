"""``/api/capacity/advice`` and ``/api/capacity/what-if``: staffing advice over HTTP.

=====  ==========================  ===========================================================
GET    ``/api/capacity/advice``    per queue and half-hour of the week: arrivals/h, handle
                                   time, tutors needed and what they give, the published plan
POST   ``/api/capacity/what-if``   a target and/or changed headcounts -> expected service
                                   level, mean wait, abandonment, tutor-hours per queue, total
=====  ==========================  ===========================================================

Parameters (query for GET, JSON body for POST): ``from`` and ``to`` (ISO local dates, ``to``
exclusive, at most 400 days; default the 28 days before today), ``vendor``, ``language``,
``target`` (fraction, above 0 and below 1) and ``target_wait_s`` (0 to 86,400; both default
to the district's ``HH_SERVICE_TARGET``/``HH_SERVICE_TARGET_WAIT_S``); the what-if body also
takes ``changes`` (see :func:`broker.capacity.views.parse_changes`). A bad one is a 400
problem body naming it. Who may ask is decided in :mod:`broker.capacity.views`; this module
parses and renders, every answer ``Cache-Control: no-store``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from broker.capacity import views
from broker.capacity.advice import Target
from broker.db.engine import Engine
from broker.errors import InvalidPayload, Unauthenticated
from broker.identity import Identity
from routing.catalog import Catalog
from web import jsonlib
from web.keys import SETTINGS
from web.responses import no_store_json

EngineGetter = Callable[[], Engine]
CatalogGetter = Callable[[], Catalog]
Identify = Callable[[web.Request], "Identity | Awaitable[Identity | None] | None"]
Clock = Callable[[], dt.datetime]
MAX_DAYS = 400
DEFAULT_DAYS = 28
PARAMS = frozenset({"from", "to", "vendor", "language", "target", "target_wait_s", "_"})


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the routes find the database, the catalog, the caller and the time."""

    engine: EngineGetter
    catalog: CatalogGetter
    identify: Identify
    clock: Clock

    async def caller(self, request: web.Request) -> Identity:
        """The signed-in caller; nobody is :class:`Unauthenticated` (401)."""
        found = self.identify(request)
        identity = await found if inspect.isawaitable(found) else found
        if isinstance(identity, Identity):
            return identity
        raise Unauthenticated("sign in as district staff or a vendor manager")


SOURCES: web.AppKey[Sources] = web.AppKey("capacity_advice_sources")


def _wrong(name: str, why: str) -> InvalidPayload:
    return InvalidPayload(f"bad parameter {name!r}: {why}", parameter=name)


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _wrong(name, "a string")
    return value


def _local_day(params: Mapping[str, Any], name: str) -> dt.date | None:
    text = _text(params, name)
    try:
        return None if text is None else dt.date.fromisoformat(text)
    except ValueError as exc:
        raise _wrong(name, "an ISO date (YYYY-MM-DD)") from exc


def _float(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise _wrong(name, "a number")
    return number


def _target(app: web.Application, params: Mapping[str, Any]) -> Target:
    settings = app.get(SETTINGS)
    default = Target.from_settings(settings) if settings is not None else Target()
    fraction = _float(params, "target")
    wait_s = _float(params, "target_wait_s")
    if fraction is not None and not 0 < fraction < 1:
        raise _wrong("target", "a fraction above 0 and below 1")
    if wait_s is not None and not 0 <= wait_s <= 86_400:
        raise _wrong("target_wait_s", "seconds from 0 to 86400")
    return Target(default.fraction if fraction is None else fraction,
                  default.wait_s if wait_s is None else wait_s)


def _period(request: web.Request, params: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """``[from, to)`` as UTC instants of the district's local midnights."""
    tz = request.app[SOURCES].catalog().timezone
    start, end = _local_day(params, "from"), _local_day(params, "to")
    if start is None and end is None:
        end = request.app[SOURCES].clock().astimezone(tz).date()
        start = end - dt.timedelta(days=DEFAULT_DAYS)
    elif start is None or end is None:
        raise _wrong("from", "give both 'from' and 'to'")
    if not 0 < (end - start).days <= MAX_DAYS:
        raise _wrong("to", f"after 'from', at most {MAX_DAYS} days")
    return (dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC),
            dt.datetime.combine(end, dt.time(), tzinfo=tz).astimezone(dt.UTC))


def _known(params: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _wrong(name, "unknown parameter")


async def get_advice(request: web.Request) -> web.StreamResponse:
    who = await request.app[SOURCES].caller(request)
    params = request.query
    _known(params, PARAMS)
    start, end = _period(request, params)
    report = await views.advice(
        request.app[SOURCES].engine(), who, request.app[SOURCES].catalog(), start, end,
        vendor=_text(params, "vendor"), language=_text(params, "language"),
        target=_target(request.app, params),
    )
    return no_store_json(report)


async def post_what_if(request: web.Request) -> web.StreamResponse:
    who = await request.app[SOURCES].caller(request)
    body = await jsonlib.request_json(request)
    if not isinstance(body, dict):
        raise InvalidPayload("the body must be a JSON object")
    _known(body, PARAMS | {"changes"})
    catalog = request.app[SOURCES].catalog()
    changes = views.parse_changes(body.get("changes"), who, catalog)
    start, end = _period(request, body)
    report = await views.what_if(
        request.app[SOURCES].engine(), who, catalog, start, end,
        vendor=_text(body, "vendor"), language=_text(body, "language"),
        target=_target(request.app, body), changes=changes,
    )
    return no_store_json(report)


def setup_capacity_advice_api(
    app: web.Application, engine: EngineGetter, catalog: CatalogGetter, identify: Identify,
    clock: Clock | None = None,
) -> None:
    """Mount the two routes; ``identify`` finds the caller (``None``: 401)."""
    app[SOURCES] = Sources(engine, catalog, identify,
                           clock or (lambda: dt.datetime.now(dt.UTC)))
    app.router.add_get("/api/capacity/advice", get_advice)
    app.router.add_post("/api/capacity/what-if", post_what_if)
