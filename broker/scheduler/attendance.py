"""Running booked sessions: attendance, closing past occurrences, reminders.

Guarantees:

* A student who joins by ``starts_at + grace`` is ``present``, later (before the end)
  ``late``; a join never downgrades a mark already made (``present`` stays ``present``).
  The booked (or substitute) tutor or the school's staff may set marks by hand.
* :func:`close_ended` (a worker job) marks every student without a mark ``absent`` once an
  occurrence has ended, marks a tutor who never joined ``absent`` and alerts the school's
  designees and the vendor's managers through the outbox, and sets the occurrence
  ``held``; each occurrence is closed in its own transaction, so a crash loses at most the
  one being closed, and running it again closes only what is still open.
* :func:`queue_reminders` (a worker job) writes one reminder per person for each
  scheduled occurrence starting within the lead time; the ``dedupe_key`` names the
  occurrence and its start, so running it again writes nothing new, and a moved occurrence
  gets a fresh reminder (the old one was withdrawn when it moved).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from broker import outbox
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.scheduler import policy, rules, store
from broker.scheduler.booking import recipients
from broker.scheduler.notices import Recipient, notice
from broker.scheduler.service import Scheduler

STATUSES = frozenset({"present", "late", "absent"})
RANK = {"absent": 0, "late": 1, "present": 2}


async def record_join(ctx: Scheduler, occurrence_id: str, side: str, person: str,
                      at: datetime | None = None) -> str:
    """``person`` joined the room of an occurrence at ``at`` (default now): ``side`` is
    ``tutor`` (the occurrence's tutor: its booked one or the substitute) or ``student`` (a
    roster id the series is booked for; the caller maps a launch to the roster student).
    Returns the attendance status it gave them; anyone else is :class:`NotAllowed`."""
    at = at or ctx.now()
    async with ctx.engine.begin() as conn:
        occ = await store.occurrence(conn, occurrence_id)
        if occ is None or occ["status"] == "cancelled":
            raise NotFound("no such session", field="occurrence")
        status = rules.attendance_status(occ["starts_at"], occ["ends_at"], at, ctx.grace)
        if side == "tutor" and person == occ["tutor_id"]:
            if occ["tutor_status"] is None or RANK[status] > RANK[occ["tutor_status"]]:
                await store.move_occurrence(conn, occurrence_id, {"tutor_status": status})
            return status
        if side != "student" or person not in await store.series_students(
                conn, occ["series_id"]):
            raise NotAllowed("this session is for its booked tutor and students")
        before = (await store.attendance_of(conn, occurrence_id)).get(person)
        if before is None or RANK[status] > RANK[before]:
            await store.put_attendance(conn, occurrence_id, {person: status}, "join", at)
        return status if before is None else max(status, before, key=RANK.__getitem__)


async def mark(ctx: Scheduler, actor: Identity, occurrence_id: str,
               spec: Mapping[str, Any]) -> dict[str, str]:
    """``{"marks": {"<student>": "present" | "late" | "absent"}}`` by the occurrence's tutor
    or the school's staff."""
    marks = spec.get("marks")
    if not isinstance(marks, Mapping) or not marks or not all(
            isinstance(v, str) and v in STATUSES for v in marks.values()):
        raise InvalidPayload("marks must map students to present, late or absent",
                             field="marks")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        occ = await store.occurrence(conn, occurrence_id)
        if occ is None or occ["status"] == "cancelled":
            raise NotFound("no such session", field="occurrence")
        if not (actor.role == "tutor" and actor.tutor_profile == occ["tutor_id"]):
            policy.school(actor, occ["school_id"])
        booked = set(await store.series_students(conn, occ["series_id"]))
        strangers = sorted(set(marks) - booked)
        if strangers:
            raise InvalidPayload("not booked in this session", field="marks",
                                 students=strangers)
        await store.put_attendance(conn, occurrence_id, dict(marks), actor.subject, now)
        return await store.attendance_of(conn, occurrence_id)


async def close_ended(ctx: Scheduler, limit: int = 500) -> dict[str, int]:
    """Close the attendance of occurrences that have ended (see the module docstring)."""
    now = ctx.now()
    async with ctx.engine.connect() as conn:
        due = await store.ended_unclosed(conn, now, limit)
    closed = no_shows = 0
    for occ in due:
        async with ctx.engine.begin() as conn:
            fresh = await store.occurrence(conn, occ["id"])
            if fresh is None or fresh["status"] != "scheduled":
                continue  # closed or cancelled meanwhile
            students = await store.series_students(conn, occ["series_id"])
            marked = await store.attendance_of(conn, occ["id"])
            await store.put_attendance(conn, occ["id"], {
                s: "absent" for s in students if s not in marked}, "close", now)
            changes: dict[str, Any] = {"status": "held"}
            if fresh["tutor_status"] is None:
                changes["tutor_status"] = "absent"
                await _alert_no_show(conn, fresh, now)
                no_shows += 1
            await store.move_occurrence(conn, occ["id"], changes)
            closed += 1
    return {"closed": closed, "tutor_no_shows": no_shows}


async def _alert_no_show(conn: Any, occ: Mapping[str, Any], now: datetime) -> None:
    ser = await store.series(conn, occ["series_id"])
    offer = await store.offer(conn, ser["offer_id"]) if ser else None
    if ser is None or offer is None:
        return
    staff = await store.staff_to_alert(conn, occ["school_id"], offer["vendor"])
    await outbox.enqueue(conn, [
        notice("tutor_no_show", Recipient("staff", s["id"]), key=occ["id"], now=now,
               due_at=now, when=occ["starts_at"], zone=ser["timezone"])
        for s in staff
    ])


async def queue_reminders(ctx: Scheduler, limit: int = 5000) -> int:
    """Write the reminders of occurrences starting within ``ctx.reminder_lead``; returns
    how many occurrences were considered."""
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        soon = await store.starting_between(conn, now, now + ctx.reminder_lead, limit)
        for occ in soon:
            stamp = occ["starts_at"].strftime("%Y%m%dT%H%M")
            locales = {s: lang for s, lang in zip(occ["students"], occ["languages"],
                                                  strict=True)}
            await outbox.enqueue(conn, [
                notice("reminder", to, key=f"{occ['id']}@{stamp}", now=now,
                       due_at=max(now, occ["starts_at"] - ctx.reminder_lead),
                       when=occ["starts_at"], zone=occ["timezone"])
                for to in recipients(occ["students"], locales, occ["tutor_id"])
            ], revive=True)
    return len(soon)
