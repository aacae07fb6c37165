"""Vendors' shift plans: headcount per queue (vendor + language) per half-hour of the week,
plus dated exceptions; entered and shown in the district's time zone, stored so that
daylight-saving weeks come out right (see :mod:`broker.db.capacity_models`).

A plan as entered (JSON, the HTTP API and ``homework-help import-shifts``)::

    {"weekly": [{"day": "mon", "start": "16:00", "end": "20:00", "headcount": 3}, ...],
     "exceptions": [{"date": "2024-03-10", "start": "00:00", "end": "24:00",
                     "headcount": 0, "note": "spring break"}, ...]}

Guarantees:

* :func:`parse_plan` is total: bad input raises :class:`~broker.errors.InvalidPayload`
  naming the field (``detail.field``, and ``detail.index`` of the entry), never anything
  else. Times are ``HH:MM`` on a half-hour (``24:00`` ends a day); ``end`` is after
  ``start``; a headcount is an integer 0..:data:`MAX_HEADCOUNT`; weekly ranges of one day
  and a queue's exceptions must not overlap; an exception's local times must exist on its
  date (a spring-forward gap is refused); an ambiguous fall-back time means its first
  occurrence.
* Who: a vendor manager (``vendor`` scope) reads and writes only their own vendor's
  queues; district staff read and write every queue; anyone else is refused
  (:class:`~broker.errors.NotAllowed`, 403). A queue that is not an on-demand vendor's
  language in the catalog is :class:`~broker.errors.NotFound`.
* A write replaces the queue's whole plan (pattern and exceptions) in **one transaction**
  with its audit entry (``capacity.plan_replace``); an import replaces many queues'
  plans in one transaction, all or nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import audit
from broker.db.capacity_models import ShiftExceptionRow, ShiftPlanRow, ShiftSlotRow
from broker.db.models import metadata
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.ids import new_id
from routing.catalog import Catalog

UTC = dt.UTC
SLOTS_PER_DAY = 48
HALF_HOUR = dt.timedelta(minutes=30)
MAX_HEADCOUNT = 10_000
MAX_ENTRIES = 2_000  # weekly ranges or exceptions in one plan
MAX_NOTE = 200
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
_CLOCK = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")

plans_t = metadata.tables[ShiftPlanRow.__tablename__]
slots_t = metadata.tables[ShiftSlotRow.__tablename__]
exceptions_t = metadata.tables[ShiftExceptionRow.__tablename__]

Queue = tuple[str, str]  # (vendor, language)


@dataclass(frozen=True, slots=True)
class ShiftException:
    """A dated exception: ``[start, end)`` in UTC, its headcount replacing the pattern's."""

    start: dt.datetime
    end: dt.datetime
    headcount: int
    note: str = ""


@dataclass(slots=True)
class Plan:
    """A queue's plan: ``weekly[day][slot]`` (district wall clock) and its exceptions,
    sorted by start."""

    weekly: list[list[int]] = field(
        default_factory=lambda: [[0] * SLOTS_PER_DAY for _ in range(7)]
    )
    exceptions: list[ShiftException] = field(default_factory=list)

    def headcount_at(self, instant: dt.datetime, tz: ZoneInfo) -> int:
        """The headcount of the half-hour starting at ``instant`` (aware)."""
        for exc in self.exceptions:
            if exc.start <= instant < exc.end:
                return exc.headcount
        local = instant.astimezone(tz)
        return self.weekly[local.weekday()][(local.hour * 60 + local.minute) // 30]


# -- parsing (pure) --------------------------------------------------------------------------
def _bad(message: str, field_: str, index: int | None = None) -> InvalidPayload:
    detail: dict[str, Any] = {"field": field_}
    if index is not None:
        detail["index"] = index
    return InvalidPayload(message, **detail)


def parse_half_hour(value: object, field_: str, index: int | None = None) -> int:
    """``HH:MM`` on a half-hour (``00:00``..``24:00``) as the slot number it starts (0..48)."""
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise _bad(f"{field_} must be a time HH:MM", field_, index)
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes not in (0, 30) or (hours == 24 and minutes):
        raise _bad(f"{field_} must be on a half-hour (:00 or :30)", field_, index)
    return hours * 2 + minutes // 30


def _headcount(value: object, index: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("headcount must be a whole number", "headcount", index)
    if not 0 <= value <= MAX_HEADCOUNT:
        raise _bad(f"headcount must be between 0 and {MAX_HEADCOUNT}", "headcount", index)
    return value


def _day(value: object, index: int) -> int:
    text = value.strip().lower() if isinstance(value, str) else ""
    for i, day in enumerate(DAYS):
        if text in (day, DAY_NAMES[i]):
            return i
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise _bad("day must be mon..sun, monday..sunday or 0..6 (0 = Monday)", "day", index)


def _range(entry: Mapping[str, Any], index: int) -> tuple[int, int]:
    start = parse_half_hour(entry.get("start"), "start", index)
    end = parse_half_hour(entry.get("end"), "end", index)
    if end <= start:
        raise _bad("end must be after start", "end", index)
    return start, end


def _entries(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise _bad(f"{key} must be a list of at most {MAX_ENTRIES} objects", key)
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise _bad(f"{key} entries must be objects", key, i)
    return value


def local_instant(day: dt.date, slot: int, tz: ZoneInfo, field_: str, index: int) -> dt.datetime:
    """The UTC instant of local ``day`` + ``slot`` half-hours (48 = the next midnight).

    A wall-clock time that does not exist that day (a spring-forward gap) is refused; an
    ambiguous one (fall-back) is its first occurrence (``fold=0``)."""
    naive = dt.datetime.combine(day, dt.time()) + slot * HALF_HOUR
    aware = naive.replace(tzinfo=tz)
    instant = aware.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != naive:
        raise _bad(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks go forward)",
            field_, index,
        )
    return instant


def parse_plan(data: object, tz: ZoneInfo) -> Plan:
    """A plan as entered (module docstring) read in ``tz``; :class:`InvalidPayload` if bad."""
    if not isinstance(data, dict):
        raise _bad("the plan must be an object with weekly and exceptions", "plan")
    unknown = set(data) - {"weekly", "exceptions"}
    if unknown:
        raise _bad(f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    plan = Plan()
    set_by: dict[tuple[int, int], int] = {}
    for i, entry in enumerate(_entries(data, "weekly")):
        try:
            _weekly_entry(plan, set_by, entry, i)
        except InvalidPayload as exc:
            exc.detail.setdefault("part", "weekly")
            raise
    for i, entry in enumerate(_entries(data, "exceptions")):
        try:
            plan.exceptions.append(_exception_entry(entry, i, tz))
        except InvalidPayload as exc:
            exc.detail.setdefault("part", "exceptions")
            raise
    check_exceptions(plan.exceptions)
    return plan


def _weekly_entry(
    plan: Plan, set_by: dict[tuple[int, int], int], entry: Mapping[str, Any], i: int
) -> None:
    day = _day(entry.get("day"), i)
    start, end = _range(entry, i)
    count = _headcount(entry.get("headcount"), i)
    for slot in range(start, end):
        if (day, slot) in set_by:
            raise _bad(
                f"weekly ranges {set_by[(day, slot)]} and {i} overlap on {DAYS[day]}",
                "weekly", i,
            )
        set_by[(day, slot)] = i
        plan.weekly[day][slot] = count


def _exception_entry(entry: Mapping[str, Any], i: int, tz: ZoneInfo) -> ShiftException:
    try:
        day = dt.date.fromisoformat(str(entry.get("date")))
    except ValueError as exc:
        raise _bad("date must be YYYY-MM-DD", "date", i) from exc
    start, end = _range(entry, i)
    note = entry.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE or not note.isprintable():
        raise _bad(f"note must be at most {MAX_NOTE} printable characters", "note", i)
    return ShiftException(
        local_instant(day, start, tz, "start", i),
        local_instant(day, end, tz, "end", i),
        _headcount(entry.get("headcount"), i),
        note,
    )


def check_exceptions(exceptions: list[ShiftException]) -> None:
    """Sort ``exceptions`` by start; refuse two that overlap."""
    exceptions.sort(key=lambda e: e.start)
    for before, after in itertools.pairwise(exceptions):
        if after.start < before.end:
            raise InvalidPayload(
                f"exceptions overlap: {before.start.isoformat()} to {before.end.isoformat()} "
                f"and one from {after.start.isoformat()}",
                field="exceptions",
            )


# -- rendering (pure) -------------------------------------------------------------------------
def _clock(slot: int) -> str:
    return f"{slot // 2:02d}:{30 * (slot % 2):02d}"


def weekly_ranges(weekly: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """The pattern as the fewest ``{day, start, end, headcount}`` ranges (non-zero only)."""
    out: list[dict[str, Any]] = []
    for day, slots in enumerate(weekly):
        slot = 0
        while slot < SLOTS_PER_DAY:
            count, end = slots[slot], slot + 1
            while end < SLOTS_PER_DAY and slots[end] == count:
                end += 1
            if count:
                out.append({"day": DAYS[day], "start": _clock(slot), "end": _clock(end),
                            "headcount": count})
            slot = end
    return out


def render_exception(exc: ShiftException, tz: ZoneInfo) -> dict[str, Any]:
    """An exception as entered (local date and times) and as stored (UTC)."""
    start, end = exc.start.astimezone(tz), exc.end.astimezone(tz)
    end_clock = "24:00" if end.date() > start.date() else f"{end:%H:%M}"
    return {
        "date": start.date().isoformat(), "start": f"{start:%H:%M}", "end": end_clock,
        "headcount": exc.headcount, "note": exc.note,
        "starts_at": exc.start.isoformat(), "ends_at": exc.end.isoformat(),
    }


def render_plan(plan: Plan, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "timezone": tz.key,
        "weekly": weekly_ranges(plan.weekly),
        "exceptions": [render_exception(e, tz) for e in plan.exceptions],
    }


# -- concrete weeks -----------------------------------------------------------------------------
def week_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """UTC ``[start, end)`` of the local Monday-to-Monday week holding ``day``."""
    monday = day - dt.timedelta(days=day.weekday())
    start = dt.datetime.combine(monday, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def half_hours(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The UTC half-hour instants in ``[start, end)`` (``start`` on a half-hour)."""
    out = []
    at = start.astimezone(UTC)
    while at < end:
        out.append(at)
        at += HALF_HOUR
    return out


def expand(plan: Plan, tz: ZoneInfo, instants: Iterable[dt.datetime]) -> list[int]:
    """The scheduled headcount of each half-hour starting at ``instants``."""
    return [plan.headcount_at(at, tz) for at in instants]


# -- who may ----------------------------------------------------------------------------------
def readable_vendor(actor: Identity, vendor: str | None) -> str | None:
    """The vendor ``actor`` may read plans of: their own (vendor managers; asking for another
    is 403), whatever was asked (district staff). Anyone else is refused."""
    scope = actor.require_scope() if actor.role == "staff" else None
    if scope is None or scope.kind not in ("district", "vendor"):
        raise NotAllowed("shift plans are for district staff and vendor managers")
    return scope.held_to("vendor", vendor)


def queue_of(catalog: Catalog, vendor: str, language: str) -> Queue:
    """``(vendor, language)`` if it is an on-demand queue of the catalog, else 404."""
    found = catalog.vendor(vendor)
    if found is None or not found.is_on_demand or language not in found.language_set:
        raise NotFound(f"no queue {vendor}:{language} in the catalog", queue=f"{vendor}:{language}")
    return vendor, language


def queues(catalog: Catalog, vendor: str | None = None) -> list[Queue]:
    """Every on-demand queue of the catalog (one vendor's if given), in catalog order."""
    return [
        (v.id, lang) for v in catalog.on_demand_vendors if vendor in (None, v.id)
        for lang in v.languages
    ]


# -- store --------------------------------------------------------------------------------------
async def _write(conn: AsyncConnection, queue: Queue, plan: Plan, tz: ZoneInfo,
                 actor: Identity, now: dt.datetime) -> None:
    vendor, language = queue
    for table in (plans_t, slots_t, exceptions_t):
        await conn.execute(
            table.delete().where(table.c.vendor == vendor, table.c.language == language)
        )
    await conn.execute(plans_t.insert().values(
        vendor=vendor, language=language, timezone=tz.key, updated_by=actor.subject[:64],
        updated_at=now,
    ))
    slot_rows = [
        {"vendor": vendor, "language": language, "weekday": d, "slot": s, "headcount": n}
        for d, day in enumerate(plan.weekly) for s, n in enumerate(day) if n
    ]
    if slot_rows:
        await conn.execute(slots_t.insert(), slot_rows)
    exc_rows = [
        {"id": new_id(), "vendor": vendor, "language": language, "starts_at": e.start,
         "ends_at": e.end, "headcount": e.headcount, "note": e.note}
        for e in plan.exceptions
    ]
    if exc_rows:
        await conn.execute(exceptions_t.insert(), exc_rows)


async def replace_plans(
    engine: AsyncEngine, actor: Identity, catalog: Catalog,
    plans: Mapping[Queue, Plan], endpoint: str, now: dt.datetime | None = None,
) -> None:
    """Replace each queue's plan, all in one transaction with one audit entry per queue."""
    now = now or dt.datetime.now(UTC)
    for vendor, language in plans:
        readable_vendor(actor, vendor)
        queue_of(catalog, vendor, language)
    async with engine.begin() as conn:
        for queue, plan in plans.items():
            await _write(conn, queue, plan, catalog.timezone, actor, now)
            slots = sum(1 for day in plan.weekly for n in day if n)
            await audit.record(
                conn, actor, "capacity.plan_replace", None, endpoint,
                f"queue={queue[0]}:{queue[1]} slots={slots} exceptions={len(plan.exceptions)}",
                at=now,
            )


async def load_plans(
    conn: AsyncConnection, wanted: Sequence[Queue], since: dt.datetime | None = None,
    until: dt.datetime | None = None, *, with_exceptions: bool = True,
) -> dict[Queue, Plan]:
    """The plans of ``wanted`` queues (an empty plan for a queue without one); exceptions
    limited to those meeting ``[since, until)`` when given, none without
    ``with_exceptions``."""
    out: dict[Queue, Plan] = {q: Plan() for q in wanted}
    vendors = sorted({v for v, _ in wanted})
    if not vendors:
        return out
    rows = await conn.execute(
        sa.select(slots_t.c.vendor, slots_t.c.language, slots_t.c.weekday, slots_t.c.slot,
                  slots_t.c.headcount).where(slots_t.c.vendor.in_(vendors))
    )
    for vendor, language, weekday, slot, count in rows:
        plan = out.get((vendor, language))
        if plan is not None:
            plan.weekly[int(weekday)][int(slot)] = int(count)
    if not with_exceptions:
        return out
    query = sa.select(exceptions_t).where(exceptions_t.c.vendor.in_(vendors))
    if since is not None:
        query = query.where(exceptions_t.c.ends_at > since)
    if until is not None:
        query = query.where(exceptions_t.c.starts_at < until)
    for row in (await conn.execute(query.order_by(exceptions_t.c.starts_at))).mappings():
        plan = out.get((row["vendor"], row["language"]))
        if plan is not None:
            plan.exceptions.append(
                ShiftException(row["starts_at"], row["ends_at"], int(row["headcount"]), row["note"])
            )
    return out


async def read_plan(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, vendor: str, language: str
) -> dict[str, Any]:
    """One queue's plan as entered, in the district's zone, with who published it when."""
    readable_vendor(actor, vendor)
    queue = queue_of(catalog, vendor, language)
    async with engine.connect() as conn:
        plan = (await load_plans(conn, [queue]))[queue]
        meta = (await conn.execute(
            sa.select(plans_t.c.updated_by, plans_t.c.updated_at)
            .where(plans_t.c.vendor == vendor, plans_t.c.language == language)
        )).first()
    body = {"vendor": vendor, "language": language, "published": meta is not None,
            "updated_by": meta[0] if meta else None,
            "updated_at": meta[1].isoformat() if meta else None}
    body.update(render_plan(plan, catalog.timezone))
    return body


async def list_plans(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, vendor: str | None = None
) -> list[dict[str, Any]]:
    """Every queue the caller may read, with whether a plan is published and its weekly
    tutor-hours (the pattern's, without exceptions)."""
    vendor = readable_vendor(actor, vendor)
    wanted = queues(catalog, vendor)
    async with engine.connect() as conn:
        plans = await load_plans(conn, wanted, with_exceptions=False)
        published = {
            (v, lang): at for v, lang, at in await conn.execute(
                sa.select(plans_t.c.vendor, plans_t.c.language, plans_t.c.updated_at)
            )
        }
    return [
        {"vendor": v, "language": lang, "published": (v, lang) in published,
         "updated_at": published[(v, lang)].isoformat() if (v, lang) in published else None,
         "weekly_tutor_hours": sum(map(sum, plans[(v, lang)].weekly)) / 2}
        for v, lang in wanted
    ]


async def weekly_headcounts(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, vendor: str | None = None
) -> dict[Queue, list[int]]:
    """The published weekly patterns the caller may read, each as 336 headcounts indexed
    ``weekday * 48 + slot`` (district wall clock): the ``headcounts`` that
    :func:`broker.capacity.advice.advise` takes for the expected service level of a plan.
    Dated exceptions are left out (they belong to concrete weeks: see coverage)."""
    vendor = readable_vendor(actor, vendor)
    wanted = queues(catalog, vendor)
    async with engine.connect() as conn:
        plans = await load_plans(conn, wanted, with_exceptions=False)
        rows = await conn.execute(sa.select(plans_t.c.vendor, plans_t.c.language))
        published = {(str(v), str(lang)) for v, lang in rows}
    return {q: [n for day in plans[q].weekly for n in day] for q in wanted if q in published}


# -- files: many queues at once (``homework-help import-shifts``) -----------------------------
CSV_FIELDS = ("vendor", "language", "day", "date", "start", "end", "headcount", "note")


Entered = dict[Queue, dict[str, list[Any]]]


def _csv_plans(text: str) -> tuple[Entered, dict[tuple[Queue, str, int], int]]:
    """CSV rows grouped per queue as entered plans, and each entry's line number."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    missing = {"vendor", "language", "start", "end", "headcount"} - set(reader.fieldnames or ())
    if missing:
        raise InvalidPayload(f"missing column {sorted(missing)[0]!r}", line=1)
    grouped: dict[Queue, dict[str, list[Any]]] = {}
    lines: dict[tuple[Queue, str, int], int] = {}
    for row in reader:
        line = reader.line_num
        queue = ((row.get("vendor") or "").strip(), (row.get("language") or "").strip())
        plan = grouped.setdefault(queue, {"weekly": [], "exceptions": []})
        key = "exceptions" if (row.get("date") or "").strip() else "weekly"
        try:
            count: object = int((row.get("headcount") or "").strip())
        except ValueError:
            count = row.get("headcount")
        entry: dict[str, Any] = {"start": (row.get("start") or "").strip(),
                                 "end": (row.get("end") or "").strip(), "headcount": count}
        if key == "weekly":
            entry["day"] = (row.get("day") or "").strip()
        else:
            entry["date"] = (row.get("date") or "").strip()
            entry["note"] = (row.get("note") or "").strip()
        lines[(queue, key, len(plan[key]))] = line
        plan[key].append(entry)
    return grouped, lines


def parse_import(text: str, fmt: str, tz: ZoneInfo, catalog: Catalog) -> dict[Queue, Plan]:
    """Plans of many queues from a CSV (columns :data:`CSV_FIELDS`: a row with ``day`` is a
    weekly range, one with ``date`` an exception) or JSON file (``{"plans": [{vendor,
    language, weekly, exceptions}]}``). Whole or nothing: the first bad entry is
    :class:`InvalidPayload` naming its ``queue`` and, for CSV, its ``line``."""
    lines: dict[tuple[Queue, str, int], int] = {}
    if fmt == "csv":
        grouped, lines = _csv_plans(text)
    elif fmt == "json":
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidPayload("the file is not JSON") from exc
        items = data.get("plans") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise InvalidPayload("the file must be {\"plans\": [...]}", field="plans")
        grouped = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _bad("plans entries must be objects", "plans", i)
            queue = (str(item.get("vendor", "")), str(item.get("language", "")))
            if queue in grouped:
                raise _bad(f"queue {queue[0]}:{queue[1]} appears twice", "plans", i)
            grouped[queue] = {k: v for k, v in item.items() if k not in ("vendor", "language")}
    else:
        raise InvalidPayload("format must be csv or json", field="format")
    plans: dict[Queue, Plan] = {}
    for queue, entered in grouped.items():
        name = f"{queue[0]}:{queue[1]}"
        try:
            queue_of(catalog, *queue)
            plans[queue] = parse_plan(entered, tz)
        except (InvalidPayload, NotFound) as exc:
            detail = dict(exc.detail, queue=name)
            line = lines.get((queue, str(exc.detail.get("part")), exc.detail.get("index", -1)))
            if line is not None:
                detail["line"] = line
            raise InvalidPayload(f"{name}: {exc.message}", **detail) from exc
    return plans
