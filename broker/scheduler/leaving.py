"""A student leaving booked tutoring: removed from a group (from a date on), or their
enrolment in an offer withdrawn.

Guarantees:

* **One transaction, whole or nothing.** The membership, the sessions, the history rows,
  the notices, the withdrawn reminders (and the enrolment's withdrawal) commit together; a
  refusal writes nothing.
* **The past stays.** Sessions that started before the cut (the start of the ``from``
  day in the school's zone, or now if later), their students and their attendance are
  untouched: reports and the student's own calendar keep them.
* **The rest goes on without them.** A series' occurrences from the cut on move, with
  their ids, to a *continuation* series (same group, tutor, rule, zone) booked for the
  students who stay; the old series keeps the past with everyone who was in it. History:
  ``remove_student`` on the old series (naming the continuation), ``continues`` on the
  new one. The student gets a ``cancelled_rest`` notice and their unsent reminders of
  those sessions are withdrawn; the others' reminders stay. A series left with no student
  has its sessions from the cut on cancelled in place (reason ``group_empty``), and its
  tutors are told.
* **A withdrawal** ends every group membership and every series of the student in that
  offer the same way, from now on (including a group's sessions they still had before an
  earlier removal's date; a home-based series, the student's alone, is cancelled: reason
  ``withdrawn``, history ``withdraw``), and marks the enrolment withdrawn (who, when,
  why). The row stays as history; enrolling again adds a new one.
* A session moved across the cut (or held after it) refuses the cut (``conflict`` naming
  the occurrences): move it back or cancel it first, so each side stays one run of the
  series' rule in the calendar feeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker import audit, outbox
from broker.errors import Conflict, InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.scheduler import booking, continuation, inputs, policy, rules, store
from broker.scheduler.enrolment import group_view
from broker.scheduler.errors import must
from broker.scheduler.notices import Recipient, notice
from broker.scheduler.service import Scheduler

REMOVED, WITHDRAWN, GROUP_EMPTY = "removed", "withdrawn", "group_empty"


def _result() -> dict[str, Any]:
    return {"series": [], "continued_as": {}, "cancelled": []}


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    into["series"] += part["series"]
    into["continued_as"].update(part["continued_as"])
    into["cancelled"] += part["cancelled"]


async def _leave_series(conn: AsyncConnection, ser: Mapping[str, Any], student: str,
                        cut: datetime, actor: str, now: datetime, note: str,
                        why: str) -> dict[str, Any]:
    """``student`` leaves one series from ``cut`` on (see the module's guarantees); ``why``
    is the reason code of the notices (``removed``/``withdrawn``), ``note`` the actor's."""
    out = _result()
    cut_at = await continuation.cut_series(conn, ser["id"], cut)
    if not cut_at.live:
        return out
    live_ids = [o["id"] for o in cut_at.live]
    first = cut_at.live[0]
    staying = [s for s in ser["students"] if s != student]
    locales = {s: e["language"] for s, e in (await store.enrolments(
        conn, ser["offer_id"], ser["students"])).items()}
    change = new_id()
    messages = [notice("cancelled_rest", Recipient("student", student, locales.get(student, "en")),
                       key=change, now=now, due_at=now, when=first["starts_at"],
                       zone=ser["timezone"], count=len(live_ids), reason=why)]
    out["series"].append(ser["id"])
    if staying and ser["group_id"] is not None:
        successor = await continuation.continue_after(conn, ser, cut_at, staying, actor, now)
        await store.add_changes(conn, [
            booking.change_row(ser["id"], "remove_student", actor, now, reason=note or why,
                               occurrence_id=first["id"], student=student,
                               continued_as=successor, occurrences=len(live_ids)),
            booking.change_row(successor, "continues", actor, now, reason=note or why,
                               occurrence_id=first["id"], series=ser["id"],
                               removed=student),
        ])
        await outbox.withdraw(conn, [booking.reminder_prefix(i) for i in live_ids], now,
                              recipient=("student", student))
        out["continued_as"][ser["id"]] = successor
    else:
        ids = live_ids
        reason = GROUP_EMPTY if ser["group_id"] is not None else WITHDRAWN
        await store.cancel_occurrences(conn, ids, actor[:64], reason)
        await outbox.withdraw(conn, [booking.reminder_prefix(i) for i in ids], now)
        action = "remove_student" if ser["group_id"] is not None else "withdraw"
        await store.add_changes(conn, [booking.change_row(
            ser["id"], action, actor, now, reason=note or reason, occurrence_id=first["id"],
            student=student, cancelled=len(ids), cancel_reason=reason)])
        messages += [notice("cancelled_rest", Recipient("tutor", t), key=change, now=now,
                            due_at=now, when=first["starts_at"], zone=ser["timezone"],
                            count=len(ids), reason=reason)
                     for t in sorted({o["tutor_id"] for o in cut_at.live})]
        out["cancelled"] += ids
    await outbox.enqueue(conn, messages)
    return out


async def _leave_group(conn: AsyncConnection, grp: Mapping[str, Any], student: str,
                       cut: datetime, actor: str, now: datetime, note: str,
                       why: str) -> dict[str, Any]:
    """``student`` leaves the group and, from ``cut`` on, every series of it they are in."""
    await store.lock_people(conn, [grp["tutor_id"]], [student])
    staying = [s for s in grp["members"] if s != student]
    needs = await store.enrolments(conn, grp["offer_id"], staying)
    await store.remove_member(conn, grp["id"], student, ",".join(sorted(
        {a for e in needs.values() for a in store.split(e["accommodations"])})))
    out = _result()
    for ser in await store.series_of_group(conn, grp["id"]):
        ser["students"] = await store.series_students(conn, ser["id"])
        if student in ser["students"]:
            _merge(out, await _leave_series(conn, ser, student, cut, actor, now, note, why))
    return out


async def remove_from_group(ctx: Scheduler, actor: Identity, group_id: str, student: str,
                            spec: Mapping[str, Any], endpoint: str) -> dict[str, Any]:
    """Remove ``student`` from a group from ``from`` (a date, default today in the school's
    zone; not in the past) on, with ``reason``; the school's staff or the district.
    Returns the group as it is now, the series cut, their continuations and the sessions
    cancelled because nobody was left. Audited (the answer names the group's students)."""
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        grp = must(await store.group(conn, group_id), "no such group", "group")
        policy.school(actor, grp["school_id"])
        if student not in grp["members"]:
            raise NotFound("the student is not in this group", field="student")
        zone = await store.school_zone(conn, grp["school_id"]) or "UTC"
        day = inputs.not_past_day(spec, "from", now, zone)
        done = await _leave_group(conn, grp, student, rules.leaving_cut(day, zone, now),
                                  actor.subject, now, reason, REMOVED)
        await audit.record(conn, actor, "scheduler.remove_student", student, endpoint,
                           f"group={group_id} from={day.isoformat()}", at=now)
        after = must(await store.group(conn, group_id), "no such group", "group")
    return {"group": group_view(after), "from": day.isoformat(), **done}


async def withdraw_enrolment_in(conn: AsyncConnection, offer: Mapping[str, Any],
                                enrolled: Mapping[str, Any], actor: str, now: datetime,
                                reason: str) -> dict[str, Any]:
    """Withdraw one enrolment inside the caller's transaction (the caller has checked who
    may): the student leaves the offer's groups and series from now on, then the
    enrolment is marked withdrawn."""
    student = enrolled["student_id"]
    out = _result()
    for grp in await store.groups_with(conn, student, offer["id"]):
        _merge(out, await _leave_group(conn, grp, student, now, actor, now, reason, WITHDRAWN))
    for ser in await store.series_booked_for(conn, student, offer["id"]):
        # the rest: a home-based series, or a group's sessions before an earlier removal
        await store.lock_people(conn, [ser["tutor_id"]], [student])
        _merge(out, await _leave_series(conn, ser, student, now, actor, now, reason,
                                        WITHDRAWN))
    if not await store.withdraw_enrolment(conn, enrolled["id"], actor, now,
                                          reason or WITHDRAWN):
        raise Conflict("the enrolment was withdrawn meanwhile", field="student")
    return {"offer": offer["id"], "student": student, "withdrawn_at": now.isoformat(), **out}


async def withdraw_enrolment(ctx: Scheduler, actor: Identity, offer_id: str, student: str,
                             spec: Mapping[str, Any], endpoint: str) -> dict[str, Any]:
    """Withdraw ``student``'s enrolment in an offer, with ``reason``: in a school-based
    offer by the school's staff or the district, in a home-based one by the district
    (parents: :func:`broker.scheduler.parents.withdraw_from_link`). Audited."""
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        offer = must(await store.offer(conn, offer_id), "no such programme offer", "offer")
        enrolled = must(await store.enrolment_row(conn, offer_id, student),
                        "the student is not enrolled in this offer", "student")
        policy.withdrawal(actor, offer["programme"], enrolled["school_id"])
        done = await withdraw_enrolment_in(conn, offer, enrolled, actor.subject, now, reason)
        await audit.record(conn, actor, "scheduler.withdraw", student, endpoint,
                           f"offer={offer_id}", at=now)
    return done


def enrolment_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """An enrolment as the history shows it (no name: the roster id only)."""
    return {"id": row["id"], "offer": row["offer_id"], "student": row["student_id"],
            "school": row["school_id"], "language": row["language"],
            "enrolled_by": row["enrolled_by"], "enrolled_at": row["enrolled_at"].isoformat(),
            "withdrawn_at": row["withdrawn_at"].isoformat() if row["withdrawn_at"] else None,
            "withdrawn_by": row["withdrawn_by"], "withdraw_reason": row["withdraw_reason"]}


def offers_to_withdraw(link_offer: str | None, enrolled: Sequence[str],
                       chosen: str | None) -> str:
    """The offer a parent withdraws from: ``chosen`` (one the link covers and the child is
    enrolled in), or the only one; :class:`InvalidPayload` otherwise."""
    covered = [o for o in enrolled if link_offer in (None, o)]
    if chosen is not None:
        if chosen not in covered:
            raise InvalidPayload("the child is not enrolled in this offer through this link",
                                 field="offer")
        return chosen
    if len(covered) != 1:
        raise InvalidPayload("choose the offer to withdraw from" if covered else
                             "the child is not enrolled in an offer this link covers",
                             field="offer")
    return covered[0]


async def enrolment_history(ctx: Scheduler, actor: Identity, student: str,
                            endpoint: str) -> dict[str, Any]:
    """Every enrolment of a student, withdrawn ones included (who, when, why), for the
    district or the student's school's staff. Audited."""
    held_to = policy.reader_school(actor)
    async with ctx.engine.connect() as conn:
        found = (await store.students_by_id(conn, [student])).get(student)
        if found is None:
            raise NotFound("no such student", field="student")
        if held_to is not None and held_to != found["school_id"]:
            raise NotAllowed("this account may only see its own school",
                             parameter="school")
        rows = await store.enrolment_history(conn, student)
    await audit.record(ctx.engine, actor, "scheduler.enrolments", student, endpoint,
                       f"enrolments={len(rows)}", at=ctx.now())
    return {"student": student, "enrolments": [enrolment_view(r) for r in rows]}
