"""``/api/capacity/*``: vendors' shift plans and coverage over HTTP.

=====  ==========================================  ===========================================
GET    ``/api/capacity/plans[?vendor=]``            the queues the caller may read, published?
GET    ``/api/capacity/plans/{vendor}/{language}``  one queue's plan, in the district's zone
PUT    ``/api/capacity/plans/{vendor}/{language}``  replace it: ``{weekly, exceptions}``
POST   ``/api/capacity/plans/import?format=``       many queues' plans, CSV or JSON, whole
GET    ``/api/capacity/coverage``                   scheduled / observed / needed per queue and
                                                    half-hour (``format=csv`` too)
=====  ==========================================  ===========================================

Coverage parameters: ``week`` (any day of the local week, default this week) or ``from``
and ``to`` (ISO dates, local midnight, ``to`` exclusive; at most 31 days), ``vendor``,
``language``, ``target`` (the fraction) and ``t`` (the target wait in seconds; both
default to the district's ``HH_SERVICE_TARGET`` / ``HH_SERVICE_TARGET_WAIT_S``, else 80%
within 60 s), ``format`` (``json`` or ``csv``). A bad parameter is a 400 problem body naming
it (``parameter``); a bad plan one naming the entry (``field``, ``part``, ``index``).

Who may do what is decided in :mod:`broker.capacity.shifts` (district staff: every queue;
vendor managers: their own vendor's, 403 for another). This module parses and renders.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from broker.capacity import coverage, shifts
from broker.db.engine import Engine
from broker.errors import InvalidPayload, Unauthenticated
from broker.identity import Identity
from routing.catalog import Catalog
from web import jsonlib
from web.keys import SETTINGS
from web.responses import NO_STORE, no_store_json

EngineGetter = Callable[[], Engine]
CatalogGetter = Callable[[], Catalog]
Identify = Callable[[web.Request], "Identity | Awaitable[Identity | None] | None"]
Clock = Callable[[], dt.datetime]
P = "/api/capacity"
COVERAGE_PARAMS = frozenset({"week", "from", "to", "vendor", "language", "target", "t",
                             "format", "_"})
ENGINE_KEY: web.AppKey[EngineGetter] = web.AppKey("capacity_engine")
CATALOG_KEY: web.AppKey[CatalogGetter] = web.AppKey("capacity_catalog")
IDENTIFY_KEY: web.AppKey[Identify] = web.AppKey("capacity_identify")
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("capacity_clock")


async def _who(request: web.Request) -> Identity:
    found = request.app[IDENTIFY_KEY](request)
    identity = await found if inspect.isawaitable(found) else found
    if not isinstance(identity, Identity):
        raise Unauthenticated("sign in as district staff or a vendor manager")
    return identity


_json = no_store_json


def _bad(name: str, why: str) -> InvalidPayload:
    return InvalidPayload(f"bad parameter {name!r}: {why}", parameter=name)


def _date(query: Mapping[str, str], name: str) -> dt.date | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise _bad(name, "use an ISO date (YYYY-MM-DD)") from exc


def _number(query: Mapping[str, str], name: str, low: float, high: float, default: float) -> float:
    text = query.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise _bad(name, "a number") from exc
    if not math.isfinite(value) or not low < value <= high:
        raise _bad(name, f"above {low:g} and at most {high:g}")
    return value


def _period(
    query: Mapping[str, str], catalog: Catalog, today: dt.date
) -> tuple[dt.datetime, dt.datetime]:
    tz = catalog.timezone
    start, end, week = _date(query, "from"), _date(query, "to"), _date(query, "week")
    if start is None and end is None:
        return shifts.week_bounds(week or today, tz)
    if week is not None or start is None or end is None:
        raise _bad("from", "give both 'from' and 'to', or 'week'")
    return (dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC),
            dt.datetime.combine(end, dt.time(), tzinfo=tz).astimezone(dt.UTC))


def _district_target(app: web.Application) -> coverage.Target:
    """The district's service target (``HH_SERVICE_TARGET``, ``HH_SERVICE_TARGET_WAIT_S``)
    when the app has settings that name one, else 80% within 60 s."""
    settings = app.get(SETTINGS)
    return coverage.Target(
        fraction=float(getattr(settings, "service_target", 0.8)),
        wait_s=float(getattr(settings, "service_target_wait_s", 60.0)),
    )


async def list_plans(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    vendor = request.query.get("vendor") or None
    plans = await shifts.list_plans(request.app[ENGINE_KEY](), who, request.app[CATALOG_KEY](),
                                    vendor)
    return _json({"timezone": request.app[CATALOG_KEY]().timezone_name, "plans": plans})


async def get_plan(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    info = request.match_info
    plan = await shifts.read_plan(request.app[ENGINE_KEY](), who, request.app[CATALOG_KEY](),
                                  info["vendor"], info["language"])
    return _json(plan)


async def put_plan(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    catalog, engine = request.app[CATALOG_KEY](), request.app[ENGINE_KEY]()
    vendor, language = request.match_info["vendor"], request.match_info["language"]
    shifts.readable_vendor(who, vendor)  # 403 before reading a body that is not theirs
    queue = shifts.queue_of(catalog, vendor, language)
    body = await jsonlib.request_json(request)
    plan = shifts.parse_plan(body, catalog.timezone)
    await shifts.replace_plans(engine, who, catalog, {queue: plan},
                               f"PUT {request.path}"[:200], request.app[CLOCK_KEY]())
    return _json(await shifts.read_plan(engine, who, catalog, vendor, language))


async def import_plans(request: web.Request) -> web.StreamResponse:
    """Many queues' plans from a CSV or JSON body (``?format=``), all or nothing."""
    who = await _who(request)
    catalog = request.app[CATALOG_KEY]()
    fmt = request.query.get("format") or "csv"
    try:
        text = (await request.read()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidPayload("the file must be UTF-8 text") from exc
    plans = shifts.parse_import(text, fmt, catalog.timezone, catalog)
    await shifts.replace_plans(request.app[ENGINE_KEY](), who, catalog, plans,
                               f"POST {request.path}", request.app[CLOCK_KEY]())
    return _json({"queues": [f"{v}:{lang}" for v, lang in plans]})


async def get_coverage(request: web.Request) -> web.StreamResponse:
    who = await _who(request)
    query = request.query
    for name in query:
        if name not in COVERAGE_PARAMS:
            raise _bad(name, "unknown parameter")
    catalog = request.app[CATALOG_KEY]()
    now = request.app[CLOCK_KEY]()
    start, end = _period(query, catalog, now.astimezone(catalog.timezone).date())
    fmt = query.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise _bad("format", "json or csv")
    default = _district_target(request.app)
    target = coverage.Target(
        fraction=_number(query, "target", 0.0, 0.999, default.fraction),
        wait_s=_number(query, "t", 0.0, 86_400.0, default.wait_s),
    )
    report = await coverage.coverage(
        request.app[ENGINE_KEY](), who, catalog, start, end,
        vendor=query.get("vendor") or None, language=query.get("language") or None,
        target=target, now=now,
    )
    if fmt == "csv":
        return web.Response(
            text=coverage.to_csv(report), content_type="text/csv", charset="utf-8",
            headers={**NO_STORE, "Content-Disposition": 'attachment; filename="coverage.csv"'},
        )
    return _json(report)


def setup_capacity_api(
    app: web.Application, engine: EngineGetter, catalog: CatalogGetter, identify: Identify,
    clock: Clock | None = None,
) -> None:
    """Mount the routes; ``identify`` finds the caller (``None``: 401)."""
    app[ENGINE_KEY] = engine
    app[CATALOG_KEY] = catalog
    app[IDENTIFY_KEY] = identify
    app[CLOCK_KEY] = clock or (lambda: dt.datetime.now(dt.UTC))
    app.router.add_get(f"{P}/plans", list_plans)
    app.router.add_post(f"{P}/plans/import", import_plans)
    app.router.add_get(f"{P}/plans/{{vendor}}/{{language}}", get_plan)
    app.router.add_put(f"{P}/plans/{{vendor}}/{{language}}", put_plan)
    app.router.add_get(f"{P}/coverage", get_coverage)
