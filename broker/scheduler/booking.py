"""Booking: series and one-off appointments, their changes, and calendar cancellations.

Guarantees:

* **Whole or nothing.** A series is expanded, every rule of :mod:`broker.scheduler.rules`
  is checked against every occurrence, and only then are the series, its occurrences, its
  history entry and its outbox notices written, all in one transaction. Any violation
  refuses the whole request (the first violation's code, every violation in
  ``violations``), and nothing is written.
* **No double booking.** The tutor and the students are locked
  (:func:`~broker.scheduler.store.lock_people`) before their existing occurrences are read,
  so two bookings racing for the same person are checked one after the other.
* **Holidays.** A series that meets a holiday or break is refused with
  ``holiday_in_series`` naming the dates, unless the request says ``skip_holidays: true``:
  then those occurrences are created ``cancelled`` with reason ``holiday`` (or ``break``),
  so the calendar feeds show them as exceptions. A holiday, break or no-school day added
  later cancels the scheduled occurrences on it (:func:`cancel_for_calendar`), with
  history and notices.
* **History.** Every change (book, cancel one / the rest, reschedule one / the rest,
  substitute, calendar cancellation) adds a ``schedule_changes`` row naming who, when, why
  and what; rows are never rewritten.
* **Notices.** Every change writes an outbox notice to each student (read by the
  student's family) and to the tutor in the same transaction, in their language, and
  withdraws the unsent reminders of occurrences it cancels or moves.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker import outbox
from broker.errors import Conflict, InvalidPayload, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.scheduler import inputs, policy, rules, store
from broker.scheduler.errors import NotSchoolDay, SchedulingError, refuse
from broker.scheduler.notices import Recipient, notice
from broker.scheduler.service import Scheduler

SCHOOL_BASED = "school_based"
HOME_BASED = "home_based"
CALENDAR_CANCELS = frozenset({"holiday", "break", "no_school"})
OPEN_RULE_HORIZON = timedelta(days=400)  # how far a COUNT/UNTIL rule is expanded


@dataclass(frozen=True, slots=True)
class Plan:
    """A series about to be booked: everything the rules need, read in the transaction."""

    offer: Mapping[str, Any]
    school_id: str
    tutor: Mapping[str, Any]
    students: tuple[str, ...]
    needs: Mapping[str, tuple[str, ...]]  # student -> accommodations
    locales: Mapping[str, str]  # student -> language
    group_id: str | None
    subject: str
    language: str
    rule: str
    first_day: date
    start_min: int
    minutes: int
    zone: str
    skip_holidays: bool


@dataclass(frozen=True, slots=True)
class Booked:
    series_id: str
    occurrences: int
    cancelled_for_holidays: list[str]
    first_starts_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "series": self.series_id,
            "occurrences": self.occurrences,
            "cancelled_for_holidays": self.cancelled_for_holidays,
            "first_starts_at": self.first_starts_at.isoformat(),
        }


# -- recipients --------------------------------------------------------------------------------
def recipients(students: Iterable[str], locales: Mapping[str, str],
               tutor_id: str) -> list[Recipient]:
    return [*(Recipient("student", s, locales.get(s, "en")) for s in sorted(students)),
            Recipient("tutor", tutor_id, "en")]


async def _locales(conn: AsyncConnection, offer_id: str,
                   students: Iterable[str]) -> dict[str, str]:
    found = await store.enrolments(conn, offer_id, students)
    return {s: e["language"] for s, e in found.items()}


def reminder_prefix(occurrence_id: str) -> str:
    return f"reminder:{occurrence_id}@"


def change_row(series_id: str, action: str, actor: str, at: datetime, *, reason: str = "",
               occurrence_id: str | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "id": new_id(), "series_id": series_id, "occurrence_id": occurrence_id,
        "action": action, "actor": actor[:64], "at": at, "reason": reason[:200],
        "detail": json.dumps(detail, sort_keys=True, default=str),
    }


# -- the checks --------------------------------------------------------------------------------
def _bound(rule: str, term_end: date) -> date:
    bounded = any(part.startswith(("COUNT=", "UNTIL=")) for part in rule.upper().split(";"))
    return term_end + OPEN_RULE_HORIZON if bounded else term_end


async def check(conn: AsyncConnection, plan: Plan, slots: Sequence[rules.Slot], *,
                series_rule: bool, exclude: Sequence[str] = (),
                min_per_week: int | None = None) -> dict[date, str]:
    """Every rule for ``slots`` of ``plan``; raises the violations, or returns the local
    days of the slots that fall on holidays/breaks and are to be created cancelled
    (``skip_holidays``), with the calendar's kind for each. ``min_per_week`` lowers the
    offer's weekly minimum (a replacement need not be denser than what it replaces)."""
    offer = plan.offer
    violations: list[SchedulingError] = []
    violations += rules.check_term(slots, offer["term_start"], offer["term_end"])
    school = await store.school_rules(conn, plan.school_id, slots[0].day, slots[-1].day)
    skipped: list[rules.Slot] = []
    active = list(slots)
    if offer["programme"] == SCHOOL_BASED:
        if school is None:
            violations.append(NotSchoolDay("the school has no bell schedule yet"))
        else:
            holidays = rules.holidays_in(slots, school.calendar)
            if plan.skip_holidays and series_rule:
                skipped = holidays
                off = {s.day for s in holidays}  # one slot a day: by day, not slot equality
                active = [s for s in slots if s.day not in off]
            else:
                violations += rules.check_holidays(slots, school.calendar)
            violations += rules.check_school_window(active, school)
    hours = await store.availability(conn, plan.tutor["tutor_id"], plan.tutor["timezone"])
    if offer["programme"] == HOME_BASED or hours.weekly or hours.extra:
        violations += rules.check_availability(active, hours)
    if active:
        tutor_busy, student_busy = await store.busy(
            conn, plan.tutor["tutor_id"], plan.students,
            store.candidates(conn, [(s.starts_at, s.ends_at) for s in active]), exclude)
        violations += rules.check_overlaps(active, tutor_busy, student_busy)
    violations += rules.check_group_size(len(plan.students), offer["group_limit"])
    violations += rules.check_accommodations(plan.needs, store.split(plan.tutor["accommodations"]))
    if series_rule:
        violations += rules.check_dosage(
            slots, session_minutes=offer["session_minutes"],
            min_per_week=min(offer["min_sessions_per_week"], min_per_week if min_per_week
                             is not None else offer["min_sessions_per_week"]),
            one_off=len(slots) == 1,
        )
    refuse(violations)
    return {s.day: school.calendar[s.day] for s in skipped} if school is not None else {}


def expand(plan: Plan) -> list[rules.Slot]:
    return rules.expand(plan.rule, plan.first_day, plan.start_min, plan.minutes, plan.zone,
                        last_day=_bound(plan.rule, plan.offer["term_end"]))


async def book(conn: AsyncConnection, ctx: Scheduler, plan: Plan, actor: str,
               now: datetime, *, reason: str = "", action: str = "book",
               min_per_week: int | None = None) -> Booked:
    """Check and write one series inside the caller's transaction (see the module's
    guarantees); the caller has already checked who may book."""
    await store.lock_people(conn, [plan.tutor["tutor_id"]], plan.students)
    slots = expand(plan)
    holiday_kinds = await check(conn, plan, slots, series_rule=True,
                                min_per_week=min_per_week)
    series_id = new_id()
    skipped_days = set(holiday_kinds)
    tutor_id = plan.tutor["tutor_id"]
    rows = [
        {
            "id": new_id(), "series_id": series_id, "school_id": plan.school_id,
            "tutor_id": tutor_id, "local_day": s.day, "starts_at": s.starts_at,
            "ends_at": s.ends_at, "original_starts_at": s.starts_at,
            "status": "scheduled" if kind is None else "cancelled",
            "cancelled_by": None if kind is None else "calendar",
            "cancel_reason": kind, "tutor_status": None,
        }
        for s in slots for kind in (holiday_kinds.get(s.day),)
    ]
    await store.insert_series(conn, {
        "id": series_id, "offer_id": plan.offer["id"], "school_id": plan.school_id,
        "group_id": plan.group_id,
        "student_id": plan.students[0] if plan.group_id is None else None,
        "tutor_id": plan.tutor["tutor_id"], "subject": plan.subject, "language": plan.language,
        "rrule": plan.rule, "first_day": plan.first_day, "start_min": plan.start_min,
        "minutes": plan.minutes, "timezone": plan.zone, "created_by": actor[:64],
        "created_at": now,
    }, plan.students, rows)
    skipped_dates = sorted(d.isoformat() for d in skipped_days)
    await store.add_changes(conn, [change_row(
        series_id, action, actor, now, reason=reason, occurrences=len(rows),
        rrule=plan.rule, start=rules.hhmm(plan.start_min), skipped_for_holidays=skipped_dates,
    )])
    skipped = sum(1 for r in rows if r["status"] == "cancelled")
    first = next(r for r in rows if r["status"] == "scheduled") if skipped < len(rows) \
        else rows[0]
    await outbox.enqueue(conn, [
        notice("booked", to, key=series_id, now=now, due_at=now, when=first["starts_at"],
               zone=plan.zone, count=len(rows) - skipped)
        for to in recipients(plan.students, plan.locales, plan.tutor["tutor_id"])
    ])
    return Booked(series_id, len(rows), skipped_dates, first["starts_at"])


# -- making a plan from a request -------------------------------------------------------------
async def _offer(conn: AsyncConnection, offer_id: str) -> dict[str, Any]:
    found = await store.offer(conn, offer_id)
    if found is None:
        raise NotFound("no such programme offer", field="offer")
    return found


async def _tutor(conn: AsyncConnection, tutor_id: str, vendor: str) -> dict[str, Any]:
    found = await store.tutor(conn, tutor_id)
    if found is None or found["vendor"] != vendor:
        raise InvalidPayload("no such tutor of this offer's vendor", field="tutor")
    return found


def _timing(spec: Mapping[str, Any], offer: Mapping[str, Any]) -> dict[str, Any]:
    rule = inputs.text(spec, "rrule", 500)
    if not rule:
        raise InvalidPayload("rrule is required", field="rrule")
    return {
        "rule": rule,
        "first_day": inputs.day(spec, "first_day"),
        "start_min": inputs.minute(spec, "start"),
        "minutes": inputs.integer(spec, "minutes", 1, rules.MAX_SESSION_MIN,
                                  default=offer["session_minutes"]),
        "skip_holidays": inputs.flag(spec, "skip_holidays"),
    }


async def group_plan(conn: AsyncConnection, group_id: str,
                     spec: Mapping[str, Any]) -> Plan:
    found = await store.group(conn, group_id)
    if found is None:
        raise NotFound("no such group", field="group")
    offer = await _offer(conn, found["offer_id"])
    tutor = await _tutor(conn, found["tutor_id"], offer["vendor"])
    zone = await store.school_zone(conn, found["school_id"]) or tutor["timezone"]
    enrolled = await store.enrolments(conn, offer["id"], found["members"])
    return Plan(
        offer=offer, school_id=found["school_id"], tutor=tutor,
        students=tuple(found["members"]),
        needs={s: tuple(store.split(e["accommodations"])) for s, e in enrolled.items()},
        locales={s: e["language"] for s, e in enrolled.items()},
        group_id=group_id, subject=found["subject"], language=found["language"],
        zone=zone, **_timing(spec, offer),
    )


async def home_plan(conn: AsyncConnection, offer_id: str, student_id: str, tutor_id: str,
                    subject: str, spec: Mapping[str, Any]) -> Plan:
    offer = await _offer(conn, offer_id)
    if offer["programme"] != HOME_BASED:
        raise InvalidPayload("a single student is booked only in a home-based offer",
                             field="offer")
    if subject not in store.split(offer["subjects"]):
        raise InvalidPayload("the offer does not teach this subject", field="subject")
    enrolled = (await store.enrolments(conn, offer_id, [student_id])).get(student_id)
    if enrolled is None:
        raise InvalidPayload("the student is not enrolled in this offer", field="student")
    tutor = await _tutor(conn, tutor_id, offer["vendor"])
    if enrolled["language"] not in store.split(tutor["languages"]):
        raise InvalidPayload("the tutor does not tutor in the student's language",
                             field="tutor")
    zone = await store.school_zone(conn, enrolled["school_id"]) or tutor["timezone"]
    return Plan(
        offer=offer, school_id=enrolled["school_id"], tutor=tutor, students=(student_id,),
        needs={student_id: tuple(store.split(enrolled["accommodations"]))},
        locales={student_id: enrolled["language"]}, group_id=None, subject=subject,
        language=enrolled["language"], zone=zone, **_timing(spec, offer),
    )


async def book_series(ctx: Scheduler, actor: Identity, spec: Mapping[str, Any]) -> Booked:
    """Book a group's series (``group``) or one home-based student's (``offer``,
    ``student``, ``tutor``, ``subject``), with ``rrule``, ``first_day``, ``start``,
    ``minutes`` and ``skip_holidays``; school staff for their own school."""
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        group_id = inputs.optional_ident(spec, "group")
        if group_id is not None:
            plan = await group_plan(conn, group_id, spec)
        else:
            plan = await home_plan(
                conn, inputs.ident(spec, "offer"), inputs.ident(spec, "student"),
                inputs.ident(spec, "tutor"), inputs.text(spec, "subject", 16), spec,
            )
        policy.school(actor, plan.school_id)
        return await book(conn, ctx, plan, actor.subject, now,
                          reason=inputs.text(spec, "reason", 200, ""))


# -- changes ---------------------------------------------------------------------------------
async def _target(conn: AsyncConnection, actor: Identity,
                  occurrence_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    occ = await store.occurrence(conn, occurrence_id)
    ser = await store.series(conn, occ["series_id"]) if occ else None
    if occ is None or ser is None:
        raise NotFound("no such occurrence", field="occurrence")
    policy.school(actor, ser["school_id"])
    if occ["status"] != "scheduled":
        raise Conflict(f"the occurrence is {occ['status']}, not scheduled", field="occurrence")
    return occ, ser


def _scope(spec: Mapping[str, Any]) -> str:
    scope = spec.get("scope", "one")
    if scope not in ("one", "rest"):
        raise InvalidPayload("scope must be one or rest", field="scope")
    return str(scope)


async def _withdraw(conn: AsyncConnection, occurrence_ids: Iterable[str], now: datetime) -> None:
    await outbox.withdraw(conn, [reminder_prefix(i) for i in occurrence_ids], now)


async def cancel(ctx: Scheduler, actor: Identity, occurrence_id: str,
                 spec: Mapping[str, Any]) -> dict[str, Any]:
    """Cancel one occurrence (``scope: one``) or it and every later scheduled one of its
    series (``scope: rest``), with ``reason``; history and notices in the same
    transaction."""
    scope = _scope(spec)
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        occ, ser = await _target(conn, actor, occurrence_id)
        targets = [occ] if scope == "one" else await store.scheduled_from(
            conn, ser["id"], occ["starts_at"])
        ids = [target["id"] for target in targets]
        await store.cancel_occurrences(conn, ids, actor.subject, reason or "cancelled")
        await _withdraw(conn, ids, now)
        await store.add_changes(conn, [change_row(
            ser["id"], f"cancel_{scope}", actor.subject, now, reason=reason,
            occurrence_id=occurrence_id, cancelled=len(ids),
        )])
        locales = await _locales(conn, ser["offer_id"], ser["students"])
        change = new_id()
        await outbox.enqueue(conn, [
            notice("cancelled", to, key=change, now=now, due_at=now, when=occ["starts_at"],
                   zone=ser["timezone"], reason=reason)
            for to in recipients(ser["students"], locales, occ["tutor_id"])
        ])
    return {"cancelled": ids}


async def reschedule(ctx: Scheduler, actor: Identity, occurrence_id: str,
                     spec: Mapping[str, Any]) -> dict[str, Any]:
    """Move one occurrence (``scope: one``: ``day``, ``start``) or replace the rest of its
    series (``scope: rest``: ``start`` and optionally ``rrule`` and ``day``, the new
    series' first day, by default the occurrence's own day). Every rule is checked
    against the new times, ignoring the occurrences being moved."""
    scope = _scope(spec)
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        occ, ser = await _target(conn, actor, occurrence_id)
        plan = await _plan_of(conn, ser)
        if scope == "one":
            return await _move_one(conn, plan, occ, ser, actor.subject, now, spec, reason)
        rest = await store.scheduled_from(conn, ser["id"], occ["starts_at"])
        ids = [r["id"] for r in rest]
        await store.cancel_occurrences(conn, ids, actor.subject, "rescheduled")
        await _withdraw(conn, ids, now)
        last = max(r["local_day"] for r in rest)
        rule = spec.get("rrule") or _until(ser["rrule"], last)
        plan = replace(
            plan, rule=inputs.text({"rrule": rule}, "rrule", 500),
            first_day=inputs.day(spec, "day") if "day" in spec else occ["local_day"],
            start_min=inputs.minute(spec, "start"), skip_holidays=inputs.flag(
                spec, "skip_holidays"),
        )
        weekly = Counter(r["local_day"].isocalendar()[:2] for r in rest)
        booked = await book(conn, ctx, plan, actor.subject, now, reason=reason,
                            action="book_replacing", min_per_week=max(weekly.values()))
        await store.add_changes(conn, [change_row(
            ser["id"], "reschedule_rest", actor.subject, now, reason=reason,
            occurrence_id=occurrence_id, cancelled=len(ids), replaced_by=booked.series_id,
        )])
        return {"cancelled": ids, **booked.view()}


def _until(rule: str, last: date) -> str:
    parts = [p for p in rule.split(";") if not p.upper().startswith(("COUNT=", "UNTIL="))]
    return ";".join([*parts, f"UNTIL={last.strftime('%Y%m%d')}T235959"])


async def _plan_of(conn: AsyncConnection, ser: Mapping[str, Any]) -> Plan:
    offer = await _offer(conn, ser["offer_id"])
    tutor = await _tutor(conn, ser["tutor_id"], offer["vendor"])
    enrolled = await store.enrolments(conn, offer["id"], ser["students"])
    return Plan(
        offer=offer, school_id=ser["school_id"], tutor=tutor, students=tuple(ser["students"]),
        needs={s: tuple(store.split(e["accommodations"])) for s, e in enrolled.items()},
        locales={s: e["language"] for s, e in enrolled.items()}, group_id=ser["group_id"],
        subject=ser["subject"], language=ser["language"], rule=ser["rrule"],
        first_day=ser["first_day"], start_min=ser["start_min"], minutes=ser["minutes"],
        zone=ser["timezone"], skip_holidays=False,
    )


async def _move_one(conn: AsyncConnection, plan: Plan, occ: Mapping[str, Any],
                    ser: Mapping[str, Any], actor: str, now: datetime,
                    spec: Mapping[str, Any], reason: str) -> dict[str, Any]:
    await store.lock_people(conn, [plan.tutor["tutor_id"]], plan.students)
    new = rules.slot(inputs.day(spec, "day"), inputs.minute(spec, "start"), ser["minutes"],
                     ser["timezone"])
    await check(conn, plan, [new], series_rule=False, exclude=[occ["id"]])
    await store.move_occurrence(conn, occ["id"], {
        "local_day": new.day, "starts_at": new.starts_at, "ends_at": new.ends_at,
    })
    await _withdraw(conn, [occ["id"]], now)
    await store.add_changes(conn, [change_row(
        ser["id"], "reschedule_one", actor, now, reason=reason, occurrence_id=occ["id"],
        old=occ["starts_at"].isoformat(), new=new.starts_at.isoformat(),
    )])
    change = new_id()
    await outbox.enqueue(conn, [
        notice("moved", to, key=change, now=now, due_at=now, when=new.starts_at,
               zone=ser["timezone"], old=occ["starts_at"])
        for to in recipients(plan.students, plan.locales, occ["tutor_id"])
    ])
    return {"occurrence": occ["id"], "starts_at": new.starts_at.isoformat(),
            "ends_at": new.ends_at.isoformat()}


async def substitute(ctx: Scheduler, actor: Identity, occurrence_id: str,
                     spec: Mapping[str, Any]) -> dict[str, Any]:
    """Record a substitute tutor for one occurrence (same vendor, free then, providing the
    students' accommodations); the series keeps its own tutor."""
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        occ, ser = await _target(conn, actor, occurrence_id)
        plan = await _plan_of(conn, ser)
        sub = await _tutor(conn, inputs.ident(spec, "tutor"), plan.offer["vendor"])
        plan = replace(plan, tutor=sub)
        await store.lock_people(conn, [sub["tutor_id"]], ())
        same = rules.Slot(occ["local_day"], 0, ser["minutes"], occ["starts_at"], occ["ends_at"])
        violations = rules.check_overlaps(
            [same], await store.tutor_busy(conn, sub["tutor_id"], occ["starts_at"],
                                           occ["ends_at"]), {})
        violations += rules.check_accommodations(plan.needs, store.split(sub["accommodations"]))
        refuse(violations)
        await store.move_occurrence(conn, occ["id"], {"tutor_id": sub["tutor_id"]})
        await store.add_changes(conn, [change_row(
            ser["id"], "substitute", actor.subject, now, reason=reason,
            occurrence_id=occ["id"], old_tutor=occ["tutor_id"], tutor=sub["tutor_id"],
        )])
        await outbox.enqueue(conn, [notice(
            "moved", Recipient("tutor", sub["tutor_id"]), key=f"sub-{occ['id']}", now=now,
            due_at=now, when=occ["starts_at"], zone=ser["timezone"], old=occ["starts_at"],
        )])
    return {"occurrence": occ["id"], "tutor": sub["tutor_id"]}


# -- calendar changes ----------------------------------------------------------------------------
async def cancel_for_calendar(conn: AsyncConnection, school_id: str,
                              days: Mapping[date, str], actor: str,
                              now: datetime) -> list[str]:
    """Cancel the school's scheduled school-based occurrences on days now marked holiday,
    break or no_school (reason: the kind), with a history row each and notices to everyone
    booked; returns the cancelled occurrences' ids."""
    hit = {d: k for d, k in days.items() if k in CALENDAR_CANCELS}
    if not hit:
        return []
    found = await store.scheduled_of(conn, school_id, SCHOOL_BASED, days=hit)
    out: list[str] = []
    for occ in found:
        kind = hit[occ["local_day"]]
        await store.cancel_occurrences(conn, [occ["id"]], "calendar", kind)
        ser = await store.series(conn, occ["series_id"])
        assert ser is not None  # a foreign key
        await store.add_changes(conn, [change_row(
            ser["id"], "calendar_cancel", actor, now, reason=kind, occurrence_id=occ["id"],
            day=occ["local_day"].isoformat(),
        )])
        locales = await _locales(conn, ser["offer_id"], ser["students"])
        await outbox.enqueue(conn, [
            notice("cancelled", to, key=f"calendar-{occ['id']}", now=now, due_at=now,
                   when=occ["starts_at"], zone=ser["timezone"], reason=kind)
            for to in recipients(ser["students"], locales, occ["tutor_id"])
        ])
        out.append(occ["id"])
    await _withdraw(conn, out, now)
    return out
