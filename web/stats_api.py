"""``GET /api/stats/*``: the staff statistics of :mod:`broker.stats` as JSON or CSV.

Endpoints: ``summary``, ``waits``, ``service-level``, ``heatmap``, ``unmet``, ``groups``,
``vendors``, ``trends`` (per day or week, :mod:`broker.stats_trends`), ``filters`` (what
the dashboard's filters may offer the caller, :mod:`broker.stats_options`), and
``scheduled`` (the booked tutoring programmes: dosage against target, attendance,
no-shows, groups below target, per school, offer and week; audited, see
:func:`broker.scheduler.reports.district`). Each takes the query parameters ``from``,
``to`` (ISO dates in district time, ``to`` exclusive, or ISO datetimes), ``school``,
``region``, ``vendor``, ``language``, ``grade``, ``t`` (service-level seconds) and
``format`` (``json`` or ``csv``). A bad parameter is a 400 problem body whose
``parameter`` names it.

Who may look: staff and teachers with a usable :class:`~broker.identity.Scope` (a teacher
is held to their own school). ``district`` sees everything; ``school`` is held to its own
school and ``vendor`` to its own vendor (:meth:`~broker.identity.Scope.narrow`). The
caller's identity comes from an injected ``identify`` callable (by default
``web.auth``'s signed-in staff).
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDict

from broker import stats, stats_options, stats_trends
from broker.csv_export import to_csv
from broker.db.engine import Engine
from broker.errors import InvalidPayload, NotAllowed, Unauthenticated
from broker.identity import Identity, Scope
from broker.scheduler import reports
from routing.catalog import Catalog
from routing.errors import UnknownGradeError
from routing.grades import parse_grade
from web.auth import signed_in_staff
from web.keys import BROKER

EngineGetter = Callable[[], Engine]
Identify = Callable[[web.Request], "Identity | Awaitable[Identity | None] | None"]

PREFIX = "/api/stats"
PARAMS = frozenset(
    {"from", "to", "school", "region", "vendor", "language", "grade", "t", "format", "_"}
)
MAX_TEXT = 64
MAX_T_S = 86_400.0


# -- who is asking ------------------------------------------------------------------------
async def _caller(request: web.Request, identify: Identify) -> tuple[Identity, Scope]:
    """The caller and their scope; 401 for no one, 403 for anyone who is not scoped staff."""
    found = identify(request)
    identity = await found if inspect.isawaitable(found) else found
    if identity is None:
        raise Unauthenticated("sign in as district, school or vendor staff")
    if not isinstance(identity, Identity) or not identity.is_staff:
        raise NotAllowed("statistics are for staff")
    return identity, identity.require_scope()  # a teacher is held to their own school


# -- parameters ------------------------------------------------------------------------------
def _bad(name: str, why: str) -> InvalidPayload:
    return InvalidPayload(f"bad parameter {name!r}: {why}", parameter=name)


def _when(name: str, text: str, tz: ZoneInfo) -> dt.datetime:
    """An ISO date (local midnight) or datetime (naive = district local time), as UTC."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            value = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
        else:
            value = dt.datetime.fromisoformat(text)
            if value.tzinfo is None:
                value = value.replace(tzinfo=tz)
    except ValueError as exc:
        raise _bad(name, "use an ISO date (YYYY-MM-DD) or date-time") from exc
    return value.astimezone(dt.UTC)


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    value = value.strip()
    if not value or len(value) > MAX_TEXT or not value.isprintable():
        raise _bad(name, f"at most {MAX_TEXT} printable characters")
    return value


def parse_params(
    query: Mapping[str, str], tz: ZoneInfo = stats.DISTRICT_TZ
) -> tuple[stats.Filters, float, str]:
    """(filters, service-level seconds, format) from a query string; 400 on any bad one."""
    for name in query:
        if name not in PARAMS:
            raise _bad(name, "unknown parameter")
    getall = getattr(query, "getall", None)
    if getall is not None:
        for name in PARAMS:
            if len(getall(name, [])) > 1:
                raise _bad(name, "given more than once")
    start = _when("from", query["from"], tz) if query.get("from") else None
    end = _when("to", query["to"], tz) if query.get("to") else None
    if start is not None and end is not None and end <= start:
        raise _bad("to", "must be after 'from'")
    grade: int | None = None
    if query.get("grade"):
        try:
            grade = parse_grade(query["grade"])
        except UnknownGradeError as exc:
            raise _bad("grade", "use PK, TK, K, or 1-12") from exc
    threshold = 60.0
    if query.get("t"):
        try:
            threshold = float(query["t"])
        except ValueError as exc:
            raise _bad("t", "a number of seconds") from exc
        if not math.isfinite(threshold) or not 0 < threshold <= MAX_T_S:
            raise _bad("t", f"between 0 and {int(MAX_T_S)} seconds")
    fmt = query.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise _bad("format", "json or csv")
    filters = stats.Filters(
        start=start,
        end=end,
        school_id=_text(query, "school"),
        region=_text(query, "region"),
        vendor=_text(query, "vendor"),
        language=_text(query, "language"),
        grade=grade,
    )
    return filters, threshold, fmt


# -- CSV -----------------------------------------------------------------------------------
Table = tuple[list[str], list[list[Any]]]


def _metrics(data: Mapping[str, Any], prefix: str = "") -> list[list[Any]]:
    rows: list[list[Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            rows.extend(_metrics(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            rows.append([f"{prefix}{key}", value])
    return rows


def _waits_table(d: dict[str, Any]) -> Table:
    rows: list[list[Any]] = [["accepted", k, d[k]] for k in stats.describe([])]
    rows += [["histogram", b["bucket"], b["count"]] for b in d["histogram"]]
    for status in stats.GAVE_UP_STATUSES:
        rows += [[status, k, v] for k, v in d["gave_up"][status].items()]
    rows.append(["still_waiting", "count", d["still_waiting"]])
    return ["section", "metric", "value"], rows


def _heatmap_table(d: dict[str, Any]) -> Table:
    header = ["day", *(f"{h:02d}:00" for h in d["hours"])]
    return header, [[day, *row] for day, row in zip(d["days"], d["cells"], strict=True)]


def _unmet_table(d: dict[str, Any]) -> Table:
    rows: list[list[Any]] = []
    for dim in ("by_reason", "by_language", "by_grade"):
        rows += [["unmet", dim[3:], item["key"], "", item["count"]] for item in d[dim]]
    rows += [["unmet", "school", i["key"], i["name"], i["count"]] for i in d["by_school"]]
    rows += [["unmet", "hour", h, "", n] for h, n in enumerate(d["by_hour"])]
    ov = d["overflow"]
    for dim in ("by_first_choice_reason", "by_language", "by_vendor"):
        rows += [["overflow", dim[3:], item["key"], "", item["count"]] for item in ov[dim]]
    return ["kind", "dimension", "key", "name", "count"], rows


def _trends_table(d: dict[str, Any]) -> Table:
    header = ["start", "requests", "sessions", "unmet", "accepted", "p90_wait_s"]
    return ["bucket", *header], [[d["bucket"], *(p[k] for k in header)] for p in d["points"]]


def _rows_table(items: list[dict[str, Any]]) -> Table:
    header = list(items[0]) if items else []
    return header, [[item[k] for k in header] for item in items]


TABLES: dict[str, Callable[[dict[str, Any]], Table]] = {
    "summary": lambda d: (["metric", "value"], _metrics(d)),
    "waits": _waits_table,
    "service-level": lambda d: (["metric", "value"], _metrics(d)),
    "heatmap": _heatmap_table,
    "unmet": _unmet_table,
    "groups": lambda d: _rows_table(d["groups"]),
    "vendors": lambda d: _rows_table(d["vendors"]),
    "trends": _trends_table,
    "scheduled": reports.district_table,
}


# -- endpoints -------------------------------------------------------------------------------
Query = Callable[[Engine, stats.Filters, float, ZoneInfo], Awaitable[dict[str, Any]]]

QUERIES: dict[str, Query] = {
    "summary": lambda e, f, t, tz: stats.summary(e, f),
    "waits": lambda e, f, t, tz: stats.waits(e, f),
    "service-level": lambda e, f, t, tz: stats.service_level(e, f, t),
    "heatmap": lambda e, f, t, tz: stats.heatmap(e, f, tz),
    "unmet": lambda e, f, t, tz: stats.unmet(e, f, tz),
    "groups": lambda e, f, t, tz: stats.group_usage(e, f),
    "vendors": lambda e, f, t, tz: stats.vendor_capacity(e, f),
    "trends": lambda e, f, t, tz: stats_trends.trends(e, f, tz),
}


def _filters_view(f: stats.Filters) -> dict[str, Any]:
    return {
        "from": f.start.isoformat() if f.start else None,
        "to": f.end.isoformat() if f.end else None,
        "school": f.school_id,
        "region": f.region,
        "vendor": f.vendor,
        "language": f.language,
        "grade": f.grade,
    }


def _filename(name: str, query: Mapping[str, str]) -> str:
    parts = [f"stats-{name}"]
    for key in ("from", "to"):
        value = query.get(key, "")
        if value:
            parts.append("".join(c for c in value[:10] if c.isdigit() or c == "-"))
    return "_".join(parts) + ".csv"


def _respond(name: str, request: web.Request, data: dict[str, Any], filters: stats.Filters,
             fmt: str) -> web.Response:
    """``data`` as JSON (with the filters applied) or as the endpoint's CSV table."""
    headers = {"Cache-Control": "private, no-store"}
    if fmt == "csv":
        header, rows = TABLES[name](data)
        headers["Content-Disposition"] = (
            f'attachment; filename="{_filename(name, request.query)}"'
        )
        return web.Response(
            text=to_csv(header, rows),
            content_type="text/csv",
            charset="utf-8",
            headers=headers,
        )
    data["filters"] = _filters_view(filters)
    return web.json_response(data, headers=headers)


def make_handler(
    name: str, engine_getter: EngineGetter, identify: Identify, tz: ZoneInfo
) -> Callable[[web.Request], Awaitable[web.Response]]:
    query_fn = QUERIES[name]

    async def handler(request: web.Request) -> web.Response:
        _, scope = await _caller(request, identify)
        filters, threshold, fmt = parse_params(request.query, tz)
        filters = scope.narrow(filters)
        data = await query_fn(engine_getter(), filters, threshold, tz)
        return _respond(name, request, data, filters, fmt)

    handler.__name__ = f"stats_{name.replace('-', '_')}"
    return handler


def make_scheduled_handler(
    engine_getter: EngineGetter, identify: Identify, tz: ZoneInfo
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``scheduled``: the scheduler's booked tutoring (:func:`broker.scheduler.reports.
    district`), with the same parameters and scopes (``t`` is accepted and ignored), plus
    ``students=yes`` for the per-student rows of one school (district and school staff);
    audited."""

    async def stats_scheduled(request: web.Request) -> web.Response:
        identity, scope = await _caller(request, identify)
        query = MultiDict(request.query)
        asked = query.popall("students", [])
        if asked not in ([], ["yes"], ["no"]):
            raise _bad("students", "yes or no, once")
        filters, _, fmt = parse_params(query, tz)
        filters = scope.narrow(filters)
        data = await reports.district(engine_getter(), identity, scope, filters,
                                      f"GET {request.path}"[:200], students=asked == ["yes"])
        return _respond("scheduled", request, data, filters, fmt)

    return stats_scheduled


CatalogGetter = Callable[[web.Application], "Catalog | None"]


def broker_catalog(app: web.Application) -> Catalog | None:
    """The running broker's vendor catalog (``None`` before it started)."""
    broker = app.get(BROKER)
    return broker.catalog if broker is not None else None


def make_filters_handler(
    engine_getter: EngineGetter, identify: Identify, catalog_of: CatalogGetter
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``filters``: the schools, regions, vendors, languages and grades the caller's scope
    lets the dashboard offer (:func:`broker.stats_options.filter_options`); no parameters."""

    async def stats_filters(request: web.Request) -> web.Response:
        _, scope = await _caller(request, identify)
        for name in request.query:
            if name != "_":
                raise _bad(name, "unknown parameter")
        catalog = catalog_of(request.app)
        data = await stats_options.filter_options(engine_getter(), scope, catalog)
        return web.json_response(data, headers={"Cache-Control": "private, no-store"})

    return stats_filters


def setup_stats_api(
    app: web.Application,
    engine_getter: EngineGetter,
    identify: Identify = signed_in_staff,
    *,
    tz: ZoneInfo = stats.DISTRICT_TZ,
    prefix: str = PREFIX,
    catalog_of: CatalogGetter = broker_catalog,
) -> None:
    """Add ``GET {prefix}/{summary,waits,service-level,heatmap,unmet,groups,vendors,trends}``,
    ``GET {prefix}/filters`` and ``GET {prefix}/scheduled``.

    ``engine_getter()`` returns the broker's :class:`Engine` at request time (so it
    may be created later, in a cleanup context). ``identify(request)`` returns the caller's
    :class:`~broker.tokens.Identity` or ``None`` (sync or async), or raises
    :class:`~broker.errors.BrokerError`; by default the signed-in staff member or teacher
    of ``web.auth`` (disabled accounts refused). ``catalog_of(app)`` gives the vendor catalog
    the ``filters`` endpoint offers vendors and languages from (the running broker's by
    default). Errors are raised as
    :class:`~broker.errors.BrokerError`, so the app's problem middleware must be installed.
    """
    for name in QUERIES:
        app.router.add_get(f"{prefix}/{name}", make_handler(name, engine_getter, identify, tz))
    app.router.add_get(f"{prefix}/scheduled", make_scheduled_handler(engine_getter, identify, tz))
    filters = make_filters_handler(engine_getter, identify, catalog_of)
    app.router.add_get(f"{prefix}/filters", filters)
