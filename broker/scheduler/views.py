"""Read models for staff: a school's week, a student's schedule, a series' history, the
school's groups. Each answered read of students' data is audit-logged (who, which
endpoint, which student or school) before it is returned; school staff see only their
school, vendor managers no students' data.

Times are returned twice: ``starts_at`` in UTC and ``local`` (ISO with offset) in the
series' zone, so a 15:30 session reads 15:30 on both sides of a daylight-saving change.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from broker import audit
from broker.errors import NotAllowed, NotFound
from broker.identity import Identity
from broker.scheduler import policy, rules, store
from broker.scheduler.enrolment import group_view
from broker.scheduler.service import Scheduler


def _held(actor: Identity, school_id: str) -> None:
    held_to = policy.reader_school(actor)
    if held_to is not None and held_to != school_id:
        raise NotAllowed("this account may only see its own school", parameter="school")


def occurrence_view(row: dict[str, Any]) -> dict[str, Any]:
    zone = row.get("timezone") or "UTC"
    local = row["starts_at"].astimezone(rules.zone_of(zone))
    out = {
        "id": row["id"], "series": row["series_id"], "status": row["status"],
        "starts_at": row["starts_at"].isoformat(), "ends_at": row["ends_at"].isoformat(),
        "local": local.isoformat(), "timezone": zone, "tutor": row["tutor_id"],
        "cancel_reason": row["cancel_reason"], "tutor_status": row["tutor_status"],
    }
    for key in ("group_id", "subject", "students"):
        if key in row:
            out[key.removesuffix("_id")] = row[key]
    return out


async def school_week(ctx: Scheduler, actor: Identity, school_id: str, monday: date,
                      endpoint: str) -> dict[str, Any]:
    """The school's occurrences in the local week starting ``monday`` (any day: its
    week's Monday is used)."""
    _held(actor, school_id)
    monday -= timedelta(days=monday.weekday())
    async with ctx.engine.connect() as conn:
        zone = rules.zone_of(await store.school_zone(conn, school_id) or "UTC")
        start = datetime.combine(monday, time(), tzinfo=zone)
        rows = await store.school_occurrences(
            conn, school_id, start, datetime.combine(monday + timedelta(days=7), time(),
                                                     tzinfo=zone))
    await audit.record(ctx.engine, actor, "scheduler.school_week", None, endpoint,
                       f"school={school_id} week={monday.isoformat()}", at=ctx.now())
    return {"school": school_id, "week": monday.isoformat(), "timezone": zone.key,
            "occurrences": [occurrence_view(r) for r in rows]}


async def student_schedule(ctx: Scheduler, actor: Identity, student_id: str,
                           endpoint: str) -> dict[str, Any]:
    """Every occurrence booked for one student (the term view)."""
    async with ctx.engine.connect() as conn:
        found = (await store.students_by_id(conn, [student_id])).get(student_id)
        if found is None:
            raise NotFound("no such student", field="student")
        _held(actor, found["school_id"])
        rows = await store.student_occurrences(conn, student_id)
    await audit.record(ctx.engine, actor, "scheduler.student_schedule", student_id, endpoint,
                       at=ctx.now())
    return {"student": student_id, "occurrences": [occurrence_view(r) for r in rows]}


async def series_history(ctx: Scheduler, actor: Identity, series_id: str,
                         endpoint: str) -> dict[str, Any]:
    """A series, its occurrences and its change history."""
    async with ctx.engine.connect() as conn:
        ser = await store.series(conn, series_id)
        if ser is None:
            raise NotFound("no such series", field="series")
        _held(actor, ser["school_id"])
        occurrences = await store.occurrences_of(conn, series_id)
        history = await store.changes(conn, series_id)
    await audit.record(ctx.engine, actor, "scheduler.series", None, endpoint,
                       f"series={series_id}", at=ctx.now())
    return {
        "series": {"id": ser["id"], "offer": ser["offer_id"], "school": ser["school_id"],
                   "group": ser["group_id"], "tutor": ser["tutor_id"], "rrule": ser["rrule"],
                   "start": rules.hhmm(ser["start_min"]), "minutes": ser["minutes"],
                   "timezone": ser["timezone"], "students": ser["students"]},
        "occurrences": [occurrence_view({**o, "timezone": ser["timezone"]})
                        for o in occurrences],
        "history": [{"action": h["action"], "actor": h["actor"], "at": h["at"].isoformat(),
                     "reason": h["reason"], "occurrence": h["occurrence_id"],
                     "detail": h["detail"]} for h in history],
    }


async def school_groups(ctx: Scheduler, actor: Identity, school_id: str,
                        offer_id: str | None, endpoint: str) -> list[dict[str, Any]]:
    _held(actor, school_id)
    async with ctx.engine.connect() as conn:
        rows = await store.groups_of(conn, school_id, offer_id)
    await audit.record(ctx.engine, actor, "scheduler.groups", None, endpoint,
                       f"school={school_id}", at=ctx.now())
    return [group_view(r) for r in rows]


UPCOMING_DAYS = 14


async def tutor_upcoming(ctx: Scheduler, actor: Identity) -> dict[str, Any]:
    """A tutor's own sessions from an hour ago to two weeks ahead (cancelled ones too, so
    the console shows the cancellation), with ``starts_in_s`` for the countdown."""
    tutor_id = actor.tutor_profile
    if actor.role != "tutor" or tutor_id is None:
        raise NotAllowed("this is a tutor's own schedule")
    now = ctx.now()
    async with ctx.engine.connect() as conn:
        rows = await store.tutor_occurrences(conn, tutor_id, now - timedelta(hours=1),
                                             now + timedelta(days=UPCOMING_DAYS))
    return {"tutor": tutor_id, "now": now.isoformat(), "occurrences": [
        {**occurrence_view(r), "starts_in_s": int((r["starts_at"] - now).total_seconds())}
        for r in rows
    ]}
