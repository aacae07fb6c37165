"""Booking on both databases: whole or nothing, every rule refusing with its code,
holidays, changes with history, and notices in the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import scheduler_models as m
from broker.db.models import metadata
from broker.errors import NotAllowed
from broker.scheduler import booking, enrolment, setup, store
from broker.scheduler.errors import SchedulingError
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import BELLS, DESIGNEE, DISTRICT, OTHER_DESIGNEE, VENDOR, World

LA = ZoneInfo("America/Los_Angeles")
SERIES = {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=36", "first_day": "2026-10-26",
          "start": "15:30", "minutes": 30}


async def count(engine: AsyncEngine, table: sa.Table, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one())


async def assert_told(engine: AsyncEngine, kind: str, notices: int, action: str,
                      changes: int) -> None:
    """``notices`` outbox rows of ``kind`` and ``changes`` history rows of ``action``."""
    outbox = metadata.tables["outbox"]
    assert await count(engine, outbox, outbox.c.kind == kind) == notices
    history = m.schedule_changes
    assert await count(engine, history, history.c.action == action) == changes


async def refused(code: str, call: Any) -> SchedulingError:
    with pytest.raises(SchedulingError) as caught:
        await call
    assert caught.value.code == code, caught.value.detail
    return caught.value


async def test_a_series_is_booked_whole_with_local_times(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    assert booked.occurrences == 36 and booked.cancelled_for_holidays == []
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(sa.select(m.occurrences).where(
            m.occurrences.c.series_id == booked.series_id))).mappings().all()
    assert len(rows) == 36
    local = {r["starts_at"].astimezone(LA).strftime("%H:%M") for r in rows}
    assert local == {"15:30"}  # across the November change
    assert {r["starts_at"].utcoffset() for r in rows} == {UTC.utcoffset(None)}
    # notices: two students and the tutor, in the same transaction
    await assert_told(ctx.engine, "booked", 3, "book", 1)


async def test_91_minutes_before_dismissal_is_refused_and_nothing_written(
    ctx: Scheduler, world: World,
) -> None:
    err = await refused("before_bell_window", booking.book_series(
        ctx, DESIGNEE, {"group": world.group, **SERIES, "start": "13:29"}))
    assert len(err.detail["dates"]) == 36
    assert await count(ctx.engine, m.booking_series) == 0
    assert await count(ctx.engine, m.occurrences) == 0
    assert await count(ctx.engine, metadata.tables["outbox"]) == 0
    ok = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES,
                                                   "start": "13:30"})
    assert ok.occurrences == 36


async def test_a_holiday_in_a_series(ctx: Scheduler, world: World) -> None:
    await setup.add_calendar_days(ctx, DISTRICT, "hs", {"days": [
        {"date": "2026-11-11", "kind": "holiday", "label": "Veterans Day"},
        {"date": "2026-11-26", "kind": "break", "label": "Thanksgiving"},
    ]})
    err = await refused("holiday_in_series", booking.book_series(
        ctx, DESIGNEE, {"group": world.group, **SERIES}))
    assert err.detail["dates"] == ["2026-11-11", "2026-11-26"]
    assert await count(ctx.engine, m.occurrences) == 0
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES,
                                                       "skip_holidays": True})
    assert booked.cancelled_for_holidays == ["2026-11-11", "2026-11-26"]
    occ = m.occurrences
    assert await count(ctx.engine, occ, occ.c.status == "cancelled",
                       occ.c.cancel_reason.in_(["holiday", "break"])) == 2


async def test_a_holiday_added_later_cancels_and_tells(ctx: Scheduler, world: World) -> None:
    await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    result = await setup.import_calendar(
        ctx, DISTRICT, "hs", "csv", b"date,kind,label\n2026-11-02,holiday,Storm day\n")
    assert len(result["cancelled_occurrences"]) == 1
    occ = m.occurrences
    async with ctx.engine.connect() as conn:
        row = (await conn.execute(sa.select(occ).where(
            occ.c.id == result["cancelled_occurrences"][0]))).mappings().one()
    assert (row["status"], row["cancel_reason"], row["local_day"].isoformat()) == (
        "cancelled", "holiday", "2026-11-02")
    await assert_told(ctx.engine, "cancelled", 3, "calendar_cancel", 1)


async def test_a_csv_calendar_with_bad_dates_is_refused_whole(
    ctx: Scheduler, world: World,
) -> None:
    await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    err = await refused("calendar_rejected", setup.import_calendar(
        ctx, DISTRICT, "hs", "csv",
        b"date,kind,label\n2026-11-02,holiday,ok\n2026-02-30,holiday,bad\n"))
    assert err.detail["reason"] == "bad_date"
    assert await count(ctx.engine, m.school_calendar_days) == 0
    assert await count(ctx.engine, m.occurrences, m.occurrences.c.status == "cancelled") == 0


async def test_overlapping_bookings(ctx: Scheduler, world: World) -> None:
    await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    # the same tutor, other students
    other = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st3", "st5"]})
    await refused("overlap_tutor", booking.book_series(
        ctx, DESIGNEE, {"group": other["id"], **SERIES, "start": "15:45"}))
    # the same student, another tutor
    third = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st1"]})
    err = await refused("overlap_student", booking.book_series(
        ctx, DESIGNEE, {"group": third["id"], **SERIES, "start": "15:40"}))
    assert err.detail["students"] == ["st1"]
    ok = await booking.book_series(ctx, DESIGNEE, {"group": third["id"], **SERIES,
                                                   "start": "16:00"})
    assert ok.occurrences == 36


async def test_group_limit_and_accommodations(ctx: Scheduler, world: World) -> None:
    await refused("group_over_limit", enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-12", "tutor": "t2",
        "students": ["st1", "st2", "st3", "st4", "st5"]}))
    await refused("accommodation_missing", enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st3", "st4"]}))
    ok = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st3", "st4"]})
    assert ok["accommodations"] == ["asl"]
    assert await count(ctx.engine, m.tutoring_groups) == 2


async def test_dosage_and_term(ctx: Scheduler, world: World) -> None:
    await refused("below_min_sessions", booking.book_series(ctx, DESIGNEE, {
        "group": world.group, **SERIES, "rrule": "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"}))
    await refused("session_too_short", booking.book_series(ctx, DESIGNEE, {
        "group": world.group, **SERIES, "minutes": 20}))
    err = await refused("outside_term", booking.book_series(ctx, DESIGNEE, {
        "group": world.group, **SERIES, "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=200"}))
    assert err.detail["dates"][0] > "2027-06-10"


async def test_scopes(ctx: Scheduler, world: World) -> None:
    with pytest.raises(NotAllowed):
        await booking.book_series(ctx, OTHER_DESIGNEE, {"group": world.group, **SERIES})
    with pytest.raises(NotAllowed):
        await setup.create_offer(ctx, DESIGNEE, {})
    with pytest.raises(NotAllowed):
        await enrolment.enrol(ctx, OTHER_DESIGNEE, world.school_offer, {
            "students": [{"student": "st3", "language": "en"}]})
    with pytest.raises(NotAllowed):
        await setup.publish_availability(ctx, VENDOR, "h1", {"weekly": []})
    await setup.publish_availability(ctx, VENDOR, "t1", {"weekly": [
        {"weekday": "mon", "start": "15:00", "end": "17:00"}]})


async def test_cancel_and_reschedule_with_history(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    occ = m.occurrences
    async with ctx.engine.connect() as conn:
        ids = list((await conn.execute(sa.select(occ.c.id).where(
            occ.c.series_id == booked.series_id).order_by(occ.c.starts_at))).scalars())
    await booking.cancel(ctx, DESIGNEE, ids[0], {"scope": "one", "reason": "field trip"})
    moved = await booking.reschedule(ctx, DESIGNEE, ids[1], {
        "scope": "one", "day": "2026-10-30", "start": "15:00"})
    assert moved["starts_at"] == datetime(2026, 10, 30, 22, 0, tzinfo=UTC).isoformat()
    await refused("before_bell_window", booking.reschedule(ctx, DESIGNEE, ids[2], {
        "scope": "one", "day": "2026-10-30", "start": "12:00"}))
    rest = await booking.reschedule(ctx, DESIGNEE, ids[3], {"scope": "rest", "start": "16:00"})
    assert len(rest["cancelled"]) == 33 and rest["occurrences"] == 33
    done = await booking.cancel(ctx, DESIGNEE, ids[2], {"scope": "rest", "reason": "ended"})
    assert done["cancelled"] == [ids[2], ids[1]]  # ids[1] now runs on 30 October
    async with ctx.engine.connect() as conn:
        actions = list((await conn.execute(sa.select(m.schedule_changes.c.action).where(
            m.schedule_changes.c.series_id == booked.series_id).order_by(
            m.schedule_changes.c.at, m.schedule_changes.c.id))).scalars())
    assert sorted(actions) == sorted(
        ["book", "cancel_one", "reschedule_one", "reschedule_rest", "cancel_rest"])
    assert await count(ctx.engine, occ, occ.c.series_id == booked.series_id,
                       occ.c.status == "scheduled") == 0


async def test_home_based_inside_availability(ctx: Scheduler, world: World) -> None:
    spec = {"offer": world.home_offer, "student": "st7", "tutor": "h1", "subject": "math",
            "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=8", "first_day": "2026-10-27",
            "start": "16:30", "minutes": 30}
    booked = await booking.book_series(ctx, DISTRICT, spec)
    assert booked.occurrences == 8
    await refused("outside_availability", booking.book_series(
        ctx, DISTRICT, {**spec, "student": "st1", "start": "18:45"}))
    await refused("overlap_tutor", booking.book_series(ctx, DISTRICT, {**spec, "student": "st1"}))
    # a one-off appointment: on a Saturday only where the vendor offers Saturdays
    saturday = {**spec, "student": "st1", "rrule": "FREQ=WEEKLY;COUNT=1",
                "first_day": "2026-10-31", "start": "10:00"}
    await refused("outside_availability", booking.book_series(ctx, DISTRICT, saturday))
    await setup.publish_availability(ctx, DISTRICT, "h1", {"weekly": [
        {"weekday": "sat", "start": "09:00", "end": "12:00"}]})
    assert (await booking.book_series(ctx, DISTRICT, saturday)).occurrences == 1


async def test_racing_bookings_for_one_tutor_book_once(
    ctx: Scheduler, world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both bookings are let into the lock before the first reads its conflicts: without
    the lock both would read an empty schedule and both would be written."""
    other = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st3", "st5"]})
    entered: list[str] = []
    both_in = asyncio.Event()
    real_lock, real_busy = store.lock_people, store.busy

    async def lock_people(conn: Any, tutors: Any, students: Any) -> None:
        entered.append("x")
        if len(entered) == 2:
            both_in.set()
        await real_lock(conn, tutors, students)

    async def busy(*args: Any, **kwargs: Any) -> Any:
        await asyncio.wait_for(both_in.wait(), timeout=30)  # a guard, not a clock
        return await real_busy(*args, **kwargs)

    monkeypatch.setattr(store, "lock_people", lock_people)
    monkeypatch.setattr(store, "busy", busy)
    results = await asyncio.gather(
        booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES}),
        booking.book_series(ctx, DESIGNEE, {"group": other["id"], **SERIES, "start": "15:45"}),
        return_exceptions=True,
    )
    booked = [r for r in results if isinstance(r, booking.Booked)]
    refusals = [r for r in results if isinstance(r, SchedulingError)]
    assert len(booked) == 1 and [r.code for r in refusals] == ["overlap_tutor"], results
    assert await count(ctx.engine, m.occurrences) == 36


async def test_the_tail_of_a_series_can_be_moved(ctx: Scheduler, world: World) -> None:
    """Moving the last two sessions (one partial week) is not refused as below the weekly
    minimum: a replacement need not be denser than what it replaces."""
    booked = await booking.book_series(ctx, DESIGNEE, {
        "group": world.group, **SERIES, "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=5"})
    occ = m.occurrences
    async with ctx.engine.connect() as conn:
        ids = list((await conn.execute(sa.select(occ.c.id).where(
            occ.c.series_id == booked.series_id).order_by(occ.c.starts_at))).scalars())
    moved = await booking.reschedule(ctx, DESIGNEE, ids[3], {"scope": "rest", "start": "16:30"})
    assert moved["occurrences"] == 2 and len(moved["cancelled"]) == 2


async def test_a_substitute_is_recorded_on_one_occurrence(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    occ = m.occurrences

    async def first_of(series_id: str) -> str:
        async with ctx.engine.connect() as conn:
            found = (await conn.execute(sa.select(occ.c.id).where(
                occ.c.series_id == series_id).order_by(occ.c.starts_at))).scalars().first()
        assert found is not None
        return str(found)

    first = await first_of(booked.series_id)
    await setup.set_tutor(ctx, DISTRICT, "t3", {
        "vendor": "tutorco", "languages": ["en"], "timezone": "America/Los_Angeles"})
    done = await booking.substitute(ctx, DESIGNEE, first, {"tutor": "t3", "reason": "ill"})
    assert done == {"occurrence": first, "tutor": "t3"}
    assert await count(ctx.engine, occ, occ.c.tutor_id == "t3") == 1
    assert await count(ctx.engine, occ, occ.c.tutor_id == "t1") == 35  # the series keeps t1
    await assert_told(ctx.engine, "moved", 1, "substitute", 1)
    # t2 (who signs ASL) teaches st4, who needs it, at the same time
    signing = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st4"]})
    other = await booking.book_series(ctx, DESIGNEE, {"group": signing["id"], **SERIES})
    await refused("overlap_tutor", booking.substitute(ctx, DESIGNEE, first, {"tutor": "t2"}))
    await refused("accommodation_missing", booking.substitute(
        ctx, DESIGNEE, await first_of(other.series_id), {"tutor": "t1"}))


async def test_a_bell_change_that_booked_sessions_would_break_is_refused(
    ctx: Scheduler, world: World,
) -> None:
    await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    later = {**BELLS, "bells": {d: {"dismissal": "17:01"} for d in ("mon", "wed", "thu")}}
    err = await refused("before_bell_window",
                        setup.set_school_schedule(ctx, DESIGNEE, "hs", later))
    assert len(err.detail["dates"]) == 36
    fewer_days = {**BELLS, "bells": {"mon": {"dismissal": "15:00"}}}
    await refused("not_school_day", setup.set_school_schedule(ctx, DESIGNEE, "hs", fewer_days))
    async with ctx.engine.connect() as conn:  # the old schedule stands
        kept = (await conn.execute(sa.select(sa.func.count()).select_from(
            m.bell_schedules).where(m.bell_schedules.c.school_id == "hs"))).scalar_one()
    assert kept == 5
    ok = {**BELLS, "bells": {d: {"dismissal": "16:00"} for d in ("mon", "wed", "thu", "fri")}}
    assert (await setup.set_school_schedule(ctx, DESIGNEE, "hs", ok))["school"] == "hs"


async def test_a_tutor_keeps_the_accommodations_their_students_need(
    ctx: Scheduler, world: World,
) -> None:
    signing = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st4"]})
    await booking.book_series(ctx, DESIGNEE, {"group": signing["id"], **SERIES})
    profile = {"vendor": "tutorco", "languages": ["en", "es"],
               "timezone": "America/Los_Angeles"}
    await refused("accommodation_missing", setup.set_tutor(ctx, VENDOR, "t2", profile))
    kept = await setup.set_tutor(ctx, VENDOR, "t2", {**profile,
                                                     "accommodations": ["asl", "braille"]})
    assert kept["accommodations"] == ["asl", "braille"]


async def book_st5_elsewhere(ctx: Scheduler, world: World, count: int) -> None:
    """st5 in another group (tutor t2), ``count`` sessions at 15:40 on Mondays, Tuesdays
    and Fridays from Monday 26 October."""
    other = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": world.school_offer, "school": "hs", "subject": "ela", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st5"]})
    await booking.book_series(ctx, DESIGNEE, {
        "group": other["id"], **SERIES, "rrule": f"FREQ=WEEKLY;BYDAY=MO,TU,FR;COUNT={count}",
        "start": "15:40"})


async def test_a_student_joins_a_booked_group(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    await book_st5_elsewhere(ctx, world, 3)  # st5 is busy at 15:40 on Monday 26 October
    err = await refused("overlap_student", enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st5"}))
    assert err.detail["dates"] == ["2026-10-26"]
    await refused("group_mismatch", enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st7"}))  # not enrolled in this offer
    await refused("accommodation_missing", enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st4"}))  # needs ASL; t1 does not sign
    joined = await enrolment.add_to_group(ctx, DESIGNEE, world.group, {"student": "st3"})
    assert joined["students"] == ["st1", "st2", "st3"] and joined["series"] == [
        booked.series_id]
    assert await count(ctx.engine, m.booking_students,
                       m.booking_students.c.series_id == booked.series_id) == 3
    await assert_told(ctx.engine, "booked", 3 + 2 + 1, "add_student", 1)
    with pytest.raises(NotAllowed):
        await enrolment.add_to_group(ctx, OTHER_DESIGNEE, world.group, {"student": "st3"})
