"""Programme set-up: offers, schools' bell schedules and calendars, tutors and their
published availability.

Guarantees: each call is one transaction and validates its whole input before writing
(an import with one bad row writes nothing); a calendar change that makes a day a
holiday, break or no-school day cancels the school-based occurrences on it in the same
transaction (:func:`broker.scheduler.booking.cancel_for_calendar`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.errors import InvalidPayload, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.scheduler import inputs, policy, rules, store
from broker.scheduler.booking import HOME_BASED, SCHOOL_BASED, cancel_for_calendar
from broker.scheduler.calendar_import import (
    CalendarImportError,
    parse_calendar_csv,
    parse_calendar_ics,
)
from broker.scheduler.errors import CalendarRejected, refuse
from broker.scheduler.service import Scheduler

SUBJECTS = frozenset({"math", "ela"})
PROGRAMMES = frozenset({SCHOOL_BASED, HOME_BASED})
MAX_GROUP = 30
MAX_IMPORT_ROWS = 20_000
Exception_ = tuple[date, bool, int | None, int | None]


# -- offers ------------------------------------------------------------------------------------
def _grade(spec: Mapping[str, Any], name: str) -> int:
    value = spec.get(name)
    if value in ("K", "k"):
        return 0
    return inputs.integer(spec, name, 0, 12)


async def create_offer(ctx: Scheduler, actor: Identity, spec: Mapping[str, Any]
                       ) -> dict[str, Any]:
    """A programme offer (district staff): ``programme``, ``vendor``, ``subjects``,
    ``low_grade``/``high_grade``, ``languages``, ``group_limit``, ``session_minutes``,
    ``min_sessions_per_week``, ``term_start``/``term_end``."""
    policy.district(actor)
    programme = inputs.text(spec, "programme", 16)
    if programme not in PROGRAMMES:
        raise InvalidPayload("programme must be school_based or home_based", field="programme")
    low, high = _grade(spec, "low_grade"), _grade(spec, "high_grade")
    term_start, term_end = inputs.day(spec, "term_start"), inputs.day(spec, "term_end")
    if low > high:
        raise InvalidPayload("low_grade is above high_grade", field="low_grade")
    if term_start > term_end:
        raise InvalidPayload("the term ends before it starts", field="term_end")
    values = {
        "id": new_id(), "programme": programme, "vendor": inputs.ident(spec, "vendor"),
        "subjects": ",".join(inputs.codes(spec, "subjects", SUBJECTS)),
        "low_grade": low, "high_grade": high,
        "languages": ",".join(inputs.languages(spec)),
        "group_limit": inputs.integer(spec, "group_limit", 1, MAX_GROUP),
        "session_minutes": inputs.integer(spec, "session_minutes", 5, rules.MAX_SESSION_MIN),
        "min_sessions_per_week": inputs.integer(spec, "min_sessions_per_week", 0, 7),
        "term_start": term_start, "term_end": term_end,
        "created_by": actor.subject, "created_at": ctx.now(),
    }
    if programme == HOME_BASED and values["group_limit"] != 1:
        raise InvalidPayload("home-based tutoring is one student at a time",
                             field="group_limit")
    async with ctx.engine.begin() as conn:
        await store.insert_offer(conn, values)
    return offer_view(values)


def offer_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "programme": row["programme"], "vendor": row["vendor"],
        "subjects": store.split(row["subjects"]), "low_grade": row["low_grade"],
        "high_grade": row["high_grade"], "languages": store.split(row["languages"]),
        "group_limit": row["group_limit"], "session_minutes": row["session_minutes"],
        "min_sessions_per_week": row["min_sessions_per_week"],
        "term_start": row["term_start"].isoformat(), "term_end": row["term_end"].isoformat(),
    }


async def list_offers(ctx: Scheduler, actor: Identity) -> list[dict[str, Any]]:
    """Offers any staff member may see (a vendor manager: their vendor's)."""
    scope = policy.staff_scope(actor)
    async with ctx.engine.connect() as conn:
        rows = await store.offers(conn, vendor=scope.vendor)
    return [offer_view(r) for r in rows]


# -- schools -----------------------------------------------------------------------------------
async def set_school_schedule(ctx: Scheduler, actor: Identity, school_id: str,
                              spec: Mapping[str, Any]) -> dict[str, Any]:
    """A school's ``timezone``, ``after_school_end`` (HH:MM, default 18:00) and ``bells``:
    ``{"mon": {"dismissal": "15:00", "minimum_dismissal": "12:30"}, ...}``; a weekday not
    listed has no school. District staff or the school's own staff. Refused with the bell
    rule's code when the school's booked future sessions would break it."""
    policy.school(actor, school_id)
    zone = inputs.zone(spec)
    after = inputs.minute(spec, "after_school_end", "18:00")
    raw = spec.get("bells")
    if not isinstance(raw, Mapping) or len(raw) > 7:
        raise InvalidPayload("bells must map weekdays to dismissal times", field="bells")
    bells: dict[int, rules.Bell] = {}
    for key, value in raw.items():
        day = inputs.weekday(key, "bells")
        if not isinstance(value, Mapping):
            raise InvalidPayload("each bell is {dismissal, minimum_dismissal}", field="bells")
        dismissal = inputs.minute(value, "dismissal")
        minimum = (inputs.minute(value, "minimum_dismissal")
                   if value.get("minimum_dismissal") is not None else None)
        if dismissal >= after or (minimum is not None and minimum > dismissal):
            raise InvalidPayload("dismissal must come before after_school_end, and a minimum "
                                 "day's dismissal before the regular one", field="bells")
        bells[day] = rules.Bell(dismissal, minimum)
    async with ctx.engine.begin() as conn:
        if not await store.school_exists(conn, school_id):
            raise NotFound("no such school", field="school")
        await store.replace_bells(conn, school_id, zone, after, bells)
        await _still_inside_bells(conn, school_id, ctx.now())
    return {"school": school_id, "timezone": zone, "after_school_end": rules.hhmm(after),
            "bells": {rules.WEEKDAYS[d].lower(): {
                "dismissal": rules.hhmm(b.dismissal),
                "minimum_dismissal": rules.hhmm(b.minimum_dismissal)
                if b.minimum_dismissal is not None else None,
            } for d, b in sorted(bells.items())}}


async def _still_inside_bells(conn: AsyncConnection, school_id: str, now: datetime) -> None:
    """Refuse a bell schedule that the school's booked future sessions would break (the
    bell rule's code and dates); the caller's transaction then writes nothing."""
    booked = await store.scheduled_of(conn, school_id, SCHOOL_BASED, after=now)
    school = await store.school_rules(conn, school_id)
    if not booked or school is None:
        return
    tz = rules.zone_of(school.zone)
    slots = []
    for occ in booked:
        local = occ["starts_at"].astimezone(tz)
        slots.append(rules.Slot(local.date(), local.hour * 60 + local.minute,
                                int((occ["ends_at"] - occ["starts_at"]).total_seconds() // 60),
                                occ["starts_at"], occ["ends_at"]))
    refuse(rules.check_school_window(slots, school))


def parse_calendar(fmt: str, data: bytes) -> list[tuple[date, str, str]]:
    """``(day, kind, label)`` from a CSV or iCalendar file, whole or refused
    (:class:`CalendarRejected` with the parser's ``reason`` and ``line``)."""
    try:
        if fmt == "csv":
            days = parse_calendar_csv(data.decode("utf-8-sig"))
        elif fmt == "ics":
            days = parse_calendar_ics(data)
        else:
            raise InvalidPayload("format must be csv or ics", field="format")
    except UnicodeDecodeError as exc:
        raise CalendarRejected("the calendar is not UTF-8 text", reason="bad_csv") from exc
    except CalendarImportError as exc:
        raise CalendarRejected(exc.message, reason=exc.code, line=exc.line) from exc
    return [(d.date, d.kind, d.label) for d in days]


async def import_calendar(ctx: Scheduler, actor: Identity, school_id: str, fmt: str,
                          data: bytes) -> dict[str, Any]:
    """Import (insert or replace) dated calendar entries for a school; the school-based
    occurrences on days that became holidays, breaks or no-school days are cancelled."""
    policy.school(actor, school_id)
    days = parse_calendar(fmt, data)
    return await _apply_calendar(ctx, actor, school_id, days)


async def add_calendar_days(ctx: Scheduler, actor: Identity, school_id: str,
                            spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"days": [{"date", "kind", "label"}]}`` as JSON: the same as an import."""
    policy.school(actor, school_id)
    days: list[tuple[date, str, str]] = []
    for i, item in enumerate(inputs.items(spec, "days")):
        kind = inputs.text(item, "kind", 16)
        if kind not in (*rules.CALENDAR_KINDS, "school_day"):
            raise InvalidPayload(f"days[{i}].kind is not a calendar kind", field="days")
        days.append((inputs.day(item, "date"), kind, inputs.text(item, "label", 200, "")))
    return await _apply_calendar(ctx, actor, school_id, days)


async def _apply_calendar(ctx: Scheduler, actor: Identity, school_id: str,
                          days: Sequence[tuple[date, str, str]]) -> dict[str, Any]:
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        if not await store.school_exists(conn, school_id):
            raise NotFound("no such school", field="school")
        await store.put_calendar_days(conn, school_id, days)
        cancelled = await cancel_for_calendar(
            conn, school_id, {d: k for d, k, _ in days}, actor.subject, now)
    return {"school": school_id, "days": len(days), "cancelled_occurrences": cancelled}


async def school_calendar(ctx: Scheduler, actor: Identity, school_id: str
                          ) -> list[dict[str, Any]]:
    policy.school(actor, school_id)
    async with ctx.engine.connect() as conn:
        rows = await store.calendar(conn, school_id)
    return [{"date": r["day"].isoformat(), "kind": r["kind"], "label": r["label"]}
            for r in rows]


# -- tutors and availability ----------------------------------------------------------------
async def set_tutor(ctx: Scheduler, actor: Identity, tutor_id: str,
                    spec: Mapping[str, Any]) -> dict[str, Any]:
    """A tutor's profile: ``vendor``, ``languages``, ``accommodations`` (asl,
    enlarged_print, braille), ``timezone``, ``display_name``. District staff or the
    vendor's manager (who may not move a tutor from another vendor). Dropping an
    accommodation that a student of the tutor's booked series needs is refused
    (``accommodation_missing``)."""
    if not inputs.ID.match(tutor_id):
        raise InvalidPayload("not a tutor id", field="tutor")
    vendor = inputs.ident(spec, "vendor")
    policy.vendor(actor, vendor)
    values = {
        "tutor_id": tutor_id, "vendor": vendor,
        "display_name": inputs.text(spec, "display_name", 100, ""),
        "languages": ",".join(inputs.languages(spec)),
        "accommodations": ",".join(inputs.codes(spec, "accommodations", rules.ACCOMMODATIONS,
                                                required=False)),
        "timezone": inputs.zone(spec),
    }
    async with ctx.engine.begin() as conn:
        found = await store.tutor(conn, tutor_id)
        if found is not None:
            policy.vendor(actor, found["vendor"])
            refuse(rules.check_accommodations(
                await store.needs_taught_by(conn, tutor_id, ctx.now()),
                store.split(values["accommodations"])))
        await store.put_tutor(conn, values)
    return tutor_view(values)


def tutor_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["tutor_id"], "vendor": row["vendor"],
            "display_name": row["display_name"], "languages": store.split(row["languages"]),
            "accommodations": store.split(row["accommodations"]), "timezone": row["timezone"]}


def parse_availability(spec: Mapping[str, Any]
                       ) -> tuple[list[tuple[int, int, int]], list[Exception_]]:
    """``{"weekly": [{"weekday", "start", "end"}], "exceptions": [{"date", "available",
    "start"?, "end"?}]}`` -> rows; :class:`InvalidPayload` for any bad entry."""
    weekly = []
    for item in inputs.items(spec, "weekly"):
        opens, closes = inputs.minute(item, "start"), inputs.minute(item, "end")
        if closes <= opens:
            raise InvalidPayload("a window ends after it starts", field="weekly")
        weekly.append((inputs.weekday(item.get("weekday")), opens, closes))
    exceptions: list[Exception_] = []
    for item in inputs.items(spec, "exceptions"):
        has_span = item.get("start") is not None or item.get("end") is not None
        start = inputs.minute(item, "start") if has_span else None
        end = inputs.minute(item, "end") if has_span else None
        available = inputs.flag(item, "available")
        if (start is not None and end is not None and end <= start) or (
                available and start is None):
            raise InvalidPayload("an extra window needs start < end", field="exceptions")
        exceptions.append((inputs.day(item, "date"), available, start, end))
    return weekly, exceptions


async def publish_availability(ctx: Scheduler, actor: Identity, tutor_id: str,
                               spec: Mapping[str, Any]) -> dict[str, Any]:
    """Replace one tutor's published availability (see :func:`parse_availability`)."""
    return await _publish(ctx, actor, {tutor_id: parse_availability(spec)})


async def import_availability(ctx: Scheduler, actor: Identity, fmt: str,
                              data: bytes) -> dict[str, Any]:
    """Availability of many tutors, whole or nothing. JSON: ``{"tutors": {"<id>": {weekly,
    exceptions}}}``. CSV columns ``tutor``, ``weekday``, ``start``, ``end`` for weekly
    windows, or ``tutor``, ``date``, ``available`` (yes/no), ``start``, ``end`` for
    exceptions. Each listed tutor's availability is replaced."""
    if len(data) > 2_000_000:
        raise InvalidPayload("the file is too large", field="file")
    try:
        if fmt == "json":
            raw = orjson.loads(data)
            tutors = raw.get("tutors") if isinstance(raw, dict) else None
            if not isinstance(tutors, dict):
                raise InvalidPayload("expected {\"tutors\": {...}}", field="tutors")
            parsed = {str(t): parse_availability(inputs.body(s)) for t, s in tutors.items()}
        elif fmt == "csv":
            parsed = _availability_csv(data.decode("utf-8-sig"))
        else:
            raise InvalidPayload("format must be csv or json", field="format")
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload("the file does not read as " + fmt, field="file") from exc
    return await _publish(ctx, actor, parsed)


def _availability_csv(text: str) -> dict[str, tuple[list[tuple[int, int, int]],
                                                   list[Exception_]]]:
    """Rows of a CSV availability file, per tutor; the first bad row refuses the file with
    ``invalid_payload`` naming its ``line`` (the header is line 1) and ``tutor``."""
    reader = csv.DictReader(io.StringIO(text))
    if not {"tutor", "start", "end"} <= set(reader.fieldnames or ()):
        raise InvalidPayload("line 1: the header needs tutor, start and end (and weekday, "
                             "or date and available)", field="file", line=1)
    rows = list(reader)
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidPayload("too many rows", field="file")
    out: dict[str, tuple[list[tuple[int, int, int]], list[Exception_]]] = {}
    for n, row in enumerate(rows, start=2):
        cells = {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()
                 if k}
        tutor = cells.get("tutor", "")
        if not inputs.ID.match(tutor):
            raise InvalidPayload(f"line {n}: tutor is not an id", field="file", line=n)
        if cells.get("date"):
            spec: dict[str, Any] = {"exceptions": [{
                "date": cells["date"], "available": cells.get("available", "").lower() in
                ("yes", "true", "1"), "start": cells.get("start") or None,
                "end": cells.get("end") or None,
            }]}
        else:
            spec = {"weekly": [{"weekday": cells.get("weekday", ""),
                                "start": cells.get("start"), "end": cells.get("end")}]}
        try:
            weekly, exceptions = parse_availability(spec)
        except InvalidPayload as exc:
            raise InvalidPayload(f"line {n} (tutor {tutor}): {exc.message}", field="file",
                                 line=n, tutor=tutor) from exc
        windows, away = out.setdefault(tutor, ([], []))
        windows += weekly
        away += exceptions
    return out


async def _publish(ctx: Scheduler, actor: Identity,
                   parsed: Mapping[str, tuple[list[tuple[int, int, int]], list[Exception_]]],
                   ) -> dict[str, Any]:
    async with ctx.engine.begin() as conn:
        for tutor_id in sorted(parsed):
            found = await store.tutor(conn, tutor_id)
            if found is None:
                raise NotFound(f"no such tutor {tutor_id}", field="tutor")
            policy.vendor(actor, found["vendor"])
        for tutor_id, (weekly, exceptions) in sorted(parsed.items()):
            await store.replace_availability(conn, tutor_id, weekly, exceptions)
    return {"tutors": sorted(parsed),
            "windows": sum(len(w) for w, _ in parsed.values()),
            "exceptions": sum(len(x) for _, x in parsed.values())}
