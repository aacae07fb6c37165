"""Enrolment and grouping, by a school's tutoring designee (school-scoped staff) for their
own school's students, or by district staff.

Guarantees: a request is checked whole before anything is written (one student who does
not fit refuses the request); a group is one offer's students at one school with the same
subject and language, grades inside its grade band, at most the offer's group limit, and a
tutor of the offer's vendor who tutors in that language and provides every accommodation
its students need (``accommodation_missing`` otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker import outbox
from broker.errors import InvalidPayload, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.scheduler import booking, continuation, inputs, policy, rules, store
from broker.scheduler.booking import SCHOOL_BASED
from broker.scheduler.errors import GroupMismatch, must, refuse
from broker.scheduler.notices import Recipient, notice
from broker.scheduler.service import Scheduler

BAND = re.compile(r"^(K|\d{1,2})-(K|\d{1,2})$")


def grade_band(text: str) -> tuple[int, int]:
    """``"K-2"`` -> (0, 2); :class:`InvalidPayload` otherwise."""
    match = BAND.match(text)
    if match:
        low, high = (0 if g == "K" else int(g) for g in match.groups())
        if 0 <= low <= high <= 12:
            return low, high
    raise InvalidPayload("grade_band must look like K-2 or 6-8", field="grade_band")


async def enrol(ctx: Scheduler, actor: Identity, offer_id: str,
                spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"students": [{"student", "language", "accommodations"?}]}`` into the offer.
    Students already enrolled are left as they are (listed in ``already``)."""
    entries = inputs.items(spec, "students")
    if not entries:
        raise InvalidPayload("students is empty", field="students")
    wanted = [(inputs.ident(e, "student"), inputs.language(e),
               inputs.codes(e, "accommodations", rules.ACCOMMODATIONS, required=False))
              for e in entries]
    if len({s for s, _, _ in wanted}) != len(wanted):
        raise InvalidPayload("a student is listed twice", field="students")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        offer = await store.offer(conn, offer_id)
        if offer is None:
            raise NotFound("no such programme offer", field="offer")
        found = await store.students_by_id(conn, [s for s, _, _ in wanted])
        missing = sorted({s for s, _, _ in wanted} - set(found))
        if missing:
            raise NotFound("no such student", field="students", students=missing)
        for student, lang, _ in wanted:
            row = found[student]
            policy.school(actor, row["school_id"])
            if not offer["low_grade"] <= row["grade"] <= offer["high_grade"]:
                raise GroupMismatch("the student's grade is outside the offer's grades",
                                    students=[student])
            if lang not in store.split(offer["languages"]):
                raise GroupMismatch("the offer does not tutor in this language",
                                    students=[student], language=lang)
        already = await store.enrolments(conn, offer_id, found)
        rows = [
            {"id": new_id(), "student_id": s, "offer_id": offer_id,
             "school_id": found[s]["school_id"], "language": lang,
             "accommodations": ",".join(acc), "enrolled_by": actor.subject,
             "enrolled_at": now}
            for s, lang, acc in wanted if s not in already
        ]
        await store.insert_enrolments(conn, rows)
    return {"enrolled": [r["student_id"] for r in rows], "already": sorted(already)}


async def _fitting(conn: AsyncConnection, offer_id: str, school_id: str, language: str,
                   band: tuple[int, int], members: Sequence[str]) -> dict[str, list[str]]:
    """The members' accommodation needs, if every one is enrolled in the offer at the
    school with the language and a grade inside the band (``group_mismatch`` otherwise)."""
    enrolled = await store.enrolments(conn, offer_id, members)
    found = await store.students_by_id(conn, members)
    misfits = sorted(
        s for s in members
        if s not in enrolled or enrolled[s]["school_id"] != school_id
        or enrolled[s]["language"] != language
        or not band[0] <= found[s]["grade"] <= band[1]
    )
    if misfits:
        raise GroupMismatch(
            "students must be enrolled at this school in this offer, with the group's "
            "language and a grade inside its band", students=misfits)
    return {s: store.split(enrolled[s]["accommodations"]) for s in members}


async def form_group(ctx: Scheduler, actor: Identity, spec: Mapping[str, Any]
                     ) -> dict[str, Any]:
    """A group: ``offer``, ``school``, ``subject``, ``language``, ``grade_band``, ``tutor``,
    ``students``."""
    school_id = inputs.ident(spec, "school")
    policy.school(actor, school_id)
    offer_id, tutor_id = inputs.ident(spec, "offer"), inputs.ident(spec, "tutor")
    subject, language = inputs.text(spec, "subject", 16), inputs.language(spec)
    band_text = inputs.text(spec, "grade_band", 8)
    low, high = grade_band(band_text)
    members = inputs.id_list(spec, "students")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        offer = must(await store.offer(conn, offer_id), "no such programme offer", "offer")
        if offer["programme"] != SCHOOL_BASED:
            raise InvalidPayload("groups are for school-based offers", field="offer")
        if subject not in store.split(offer["subjects"]):
            raise InvalidPayload("the offer does not teach this subject", field="subject")
        tutor = await store.tutor(conn, tutor_id)
        if tutor is None or tutor["vendor"] != offer["vendor"]:
            raise InvalidPayload("no such tutor of this offer's vendor", field="tutor")
        if language not in store.split(tutor["languages"]):
            raise GroupMismatch("the tutor does not tutor in this language", field="tutor")
        needs = await _fitting(conn, offer_id, school_id, language, (low, high), members)
        refuse([*rules.check_group_size(len(members), offer["group_limit"]),
                *rules.check_accommodations(needs, store.split(tutor["accommodations"]))])
        values = {
            "id": new_id(), "offer_id": offer_id, "school_id": school_id,
            "grade_band": band_text, "subject": subject, "language": language,
            "tutor_id": tutor_id,
            "accommodations": ",".join(sorted({a for n in needs.values() for a in n})),
            "created_by": actor.subject, "created_at": now,
        }
        await store.insert_group(conn, values, members)
    return group_view({**values, "members": sorted(members)})


def group_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "offer": row["offer_id"], "school": row["school_id"],
            "grade_band": row["grade_band"], "subject": row["subject"],
            "language": row["language"], "tutor": row["tutor_id"],
            "accommodations": store.split(row["accommodations"]),
            "students": row["members"]}


async def add_to_group(ctx: Scheduler, actor: Identity, group_id: str,
                       spec: Mapping[str, Any]) -> dict[str, Any]:
    """Add ``student`` to a group from ``from`` (a date, default today in the school's
    zone; not in the past) on, with every group rule and the student's overlaps with the
    group's sessions from then on checked (whole or nothing).

    The cut is the start of that day in the school's zone, or now if later. A series of
    the group with sessions from the cut on and any before it is split there
    (:mod:`broker.scheduler.continuation`): the sessions from the cut on move, same ids, to
    a continuation series for the old students and the new one (history ``add_student`` on
    the old series naming it, ``continues`` on the new one); the past keeps the old
    students only, so reports and the student's calendar start at the cut. A series with
    nothing before the cut just gains the student (``add_student``). The student gets a
    ``booked`` notice per series. A session moved across the cut refuses with
    ``conflict``. Returns the group, ``from``, the ``series`` the student joined and
    ``continued_as`` (old series -> continuation)."""
    student = inputs.ident(spec, "student")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        found = must(await store.group(conn, group_id), "no such group", "group")
        policy.school(actor, found["school_id"])
        if student in found["members"]:
            raise InvalidPayload("the student is already in the group", field="student")
        zone = await store.school_zone(conn, found["school_id"]) or "UTC"
        day = inputs.not_past_day(spec, "from", now, zone)
        offer = await store.offer(conn, found["offer_id"])
        tutor = await store.tutor(conn, found["tutor_id"])
        assert offer is not None and tutor is not None  # foreign keys
        members = [*found["members"], student]
        needs = await _fitting(conn, offer["id"], found["school_id"], found["language"],
                               grade_band(found["grade_band"]), [student])
        refuse([*rules.check_group_size(len(members), offer["group_limit"]),
                *rules.check_accommodations(needs, store.split(tutor["accommodations"]))])
        await store.lock_people(conn, [found["tutor_id"]], [student])
        cut = rules.leaving_cut(day, zone, now)
        live = [(ser, await continuation.cut_series(conn, ser["id"], cut))
                for ser in await store.series_of_group(conn, group_id)]
        live = [(ser, part) for ser, part in live if part.live]
        for ser, part in live:
            slots = [rules.Slot(o["local_day"], 0, ser["minutes"], o["starts_at"],
                                o["ends_at"]) for o in part.live]
            busy = await store.student_busy(conn, [student], slots[0].starts_at,
                                            slots[-1].ends_at)
            refuse(rules.check_overlaps(slots, [], busy))
        await store.add_member(conn, group_id, student,
                               ",".join(sorted({*store.split(found["accommodations"]),
                                                *needs[student]})))
        language = (await store.enrolments(conn, offer["id"], [student]))[student]["language"]
        joined, continued = [], {}
        for ser, part in live:
            first = part.live[0]
            if part.before:
                before = await store.series_students(conn, ser["id"])
                into = await continuation.continue_after(
                    conn, ser, part, [*before, student], actor.subject, now)
                continued[ser["id"]] = into
                await store.add_changes(conn, [
                    booking.change_row(ser["id"], "add_student", actor.subject, now,
                                       occurrence_id=first["id"], student=student,
                                       continued_as=into, occurrences=len(part.live)),
                    booking.change_row(into, "continues", actor.subject, now,
                                       occurrence_id=first["id"], series=ser["id"],
                                       added=student),
                ])
            else:
                into = ser["id"]
                await store.add_booking_student(conn, into, student)
                await store.add_changes(conn, [booking.change_row(
                    into, "add_student", actor.subject, now, student=student,
                    from_occurrence=first["id"])])
            joined.append(into)
            await outbox.enqueue(conn, [notice(
                "booked", Recipient("student", student, language), key=f"{into}+{student}",
                now=now, due_at=now, when=first["starts_at"], zone=ser["timezone"],
                count=len(part.live))])
    return group_view({**found, "members": sorted(members)}) | {
        "from": day.isoformat(), "series": joined, "continued_as": continued}
