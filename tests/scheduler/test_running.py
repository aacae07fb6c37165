"""Running booked sessions: attendance with a grace period, closing with tutor no-show
alerts, reminders that are written once and withdrawn on cancel, reports, views (audited),
parent links and feeds; on both databases, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from broker import audit, tokens
from broker.db import scheduler_models as m
from broker.db.models import metadata
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.scheduler import (
    attendance,
    booking,
    feeds,
    parent_links,
    parents,
    reports,
    setup,
    views,
)
from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid, SchedulingError
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import (
    DESIGNEE,
    DISTRICT,
    OTHER_DESIGNEE,
    VENDOR,
    FakeClock,
    World,
    forged,
)

SERIES = {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=6", "first_day": "2026-10-26",
          "start": "15:30", "minutes": 30}
outbox = metadata.tables["outbox"]


def tutor(tid: str) -> Identity:
    return Identity("tutor", tid, {"vendor": "tutorco"})


async def occurrence_ids(ctx: Scheduler, series_id: str) -> list[str]:
    occ = m.occurrences
    async with ctx.engine.connect() as conn:
        return list((await conn.execute(sa.select(occ.c.id).where(
            occ.c.series_id == series_id).order_by(occ.c.starts_at))).scalars())


async def rows(ctx: Scheduler, query: Any) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def test_attendance_grace_close_and_no_show_alert(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    first, second = (await occurrence_ids(ctx, booked.series_id))[:2]
    starts = datetime(2026, 10, 26, 22, 30, tzinfo=UTC)
    assert await attendance.record_join(ctx, first, "tutor", "t1", starts) == "present"
    assert await attendance.record_join(
        ctx, first, "student", "st1", starts + timedelta(minutes=5)) == "present"
    assert await attendance.record_join(
        ctx, first, "student", "st2", starts + timedelta(minutes=6)) == "late"
    # a later join never downgrades
    assert await attendance.record_join(
        ctx, first, "student", "st1", starts + timedelta(minutes=20)) == "present"
    with pytest.raises(NotAllowed):
        await attendance.record_join(ctx, first, "student", "st3", starts)
    with pytest.raises(NotAllowed):
        await attendance.record_join(ctx, first, "tutor", "t2", starts)
    clock.at = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)  # after the second ended
    closed = await attendance.close_ended(ctx)
    assert closed == {"closed": 2, "tutor_no_shows": 1}
    assert await attendance.close_ended(ctx) == {"closed": 0, "tutor_no_shows": 0}
    marks = await rows(ctx, sa.select(m.attendance).where(
        m.attendance.c.occurrence_id == second))
    assert {r["student_id"]: r["status"] for r in marks} == {"st1": "absent", "st2": "absent"}
    alerts = await rows(ctx, sa.select(outbox).where(outbox.c.kind == "tutor_no_show"))
    assert sorted(a["recipient_id"] for a in alerts) == ["des-hs", "vm-1"]
    # staff correct a mark by hand; the tutor of another session may not
    done = await attendance.mark(ctx, DESIGNEE, second, {"marks": {"st1": "late"}})
    assert done["st1"] == "late"
    with pytest.raises(NotAllowed):
        await attendance.mark(ctx, tutor("t2"), second, {"marks": {"st1": "present"}})
    report = await reports.report(ctx, DESIGNEE, "hs", world.school_offer,
                                  datetime(2026, 10, 26).date(), datetime(2026, 11, 1).date(),
                                  "GET test")
    assert report["attendance"] == {"marked": 4, "attended": 3, "rate": 0.75}
    assert report["no_shows"] == {"students": 1, "tutors": 1}
    st1 = next(d for d in report["dosage"] if d["student"] == "st1")
    assert st1["weeks"][0] == {"week": "2026-W44", "sessions": 2, "minutes": 60}
    assert report["groups_below_target"] == []
    with pytest.raises(NotAllowed):
        await reports.report(ctx, OTHER_DESIGNEE, "hs", world.school_offer,
                             datetime(2026, 10, 26).date(), datetime(2026, 11, 1).date(), "x")
    vendor_view = await reports.report(ctx, VENDOR, "hs", world.school_offer,
                                       datetime(2026, 10, 26).date(),
                                       datetime(2026, 11, 1).date(), "x")
    assert vendor_view["dosage"] is None and vendor_view["no_shows"]["tutors"] == 1
    with pytest.raises(NotAllowed):  # another vendor's offer
        await reports.report(ctx, VENDOR, "hs", world.home_offer,
                             datetime(2026, 10, 26).date(), datetime(2026, 11, 1).date(), "x")


async def test_reminders_once_and_withdrawn_on_cancel(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = await occurrence_ids(ctx, booked.series_id)
    clock.at = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    assert await attendance.queue_reminders(ctx) == 1
    assert await attendance.queue_reminders(ctx) == 1  # again: no new rows
    reminders = await rows(ctx, sa.select(outbox).where(outbox.c.kind == "reminder"))
    assert len(reminders) == 3
    await booking.cancel(ctx, DESIGNEE, ids[0], {"scope": "one", "reason": "assembly"})
    pending = await rows(ctx, sa.select(outbox).where(
        outbox.c.kind == "reminder", outbox.c.cancelled_at.is_(None)))
    assert pending == []
    assert await attendance.queue_reminders(ctx) == 0


async def test_views_are_scoped_and_audited(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    week = await views.school_week(ctx, DESIGNEE, "hs", datetime(2026, 11, 4).date(), "GET w")
    assert [o["local"][11:16] for o in week["occurrences"]] == ["15:30"] * 3
    assert week["occurrences"][0]["students"] == ["st1", "st2"]
    term = await views.student_schedule(ctx, DESIGNEE, "st1", "GET s")
    assert len(term["occurrences"]) == 6
    history = await views.series_history(ctx, DESIGNEE, booked.series_id, "GET h")
    assert [h["action"] for h in history["history"]] == ["book"]
    for who in (OTHER_DESIGNEE, VENDOR):
        with pytest.raises(NotAllowed):
            await views.student_schedule(ctx, who, "st1", "GET s")
    logged = await audit.entries(ctx.engine)
    assert [e["action"] for e in logged] == [
        "scheduler.school_week", "scheduler.student_schedule", "scheduler.series"]
    assert logged[1]["subject"] == "st1"


async def test_parent_link_books_in_the_childs_language(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    link = await parents.issue_link(ctx, DISTRICT, {
        "student": "st7", "offer": world.home_offer, "language": "es"}, "POST l")
    page = await parents.open_link(ctx, link["token"])
    assert page["child"] == {"given_name": "Namest7", "grade": 12}
    assert page["language"] == "es" and page["slots"]
    assert {s["tutor"] for s in page["slots"]} == {"h1"}
    choice = {"tutor": "h1", "start": "16:00", "weekdays": ["tue"], "subject": "math"}
    booked = await parents.book_from_link(ctx, link["token"], choice)
    assert booked["occurrences"] > 30
    with pytest.raises(ParentLinkExpired):  # single use
        await parents.open_link(ctx, link["token"])
    spanish = await rows(ctx, sa.select(outbox).where(
        outbox.c.kind == "booked", outbox.c.recipient_id == "st7"))
    # the time is written for a Spanish reader (the texts follow once the catalogs have them)
    assert spanish[0]["locale"] == "es" and "martes" in spanish[0]["body"]
    # a refused booking leaves the link usable
    second = await parents.issue_link(ctx, DISTRICT, {
        "student": "st1", "offer": world.home_offer, "language": "en"}, "POST l")
    with pytest.raises(SchedulingError) as caught:
        await parents.book_from_link(ctx, second["token"], choice)
    assert caught.value.code == "overlap_tutor"
    assert (await parents.open_link(ctx, second["token"]))["child"]["grade"] == 9


async def test_parent_links_tampered_or_expired(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    link = await parents.issue_link(ctx, DESIGNEE, {
        "student": "st1", "offer": world.home_offer, "language": "en"}, "POST l")
    body, mac = link["token"].split(".")
    for bad in (f"{body}x.{mac}", f"{body}.{forged(mac)}", "nonsense", None,
                tokens.seal("another-secret", {"k": "parent", "l": "x", "exp": 2**40})):
        with pytest.raises(ParentLinkInvalid):
            await parents.open_link(ctx, bad)
    forged_but_signed = parent_links.issue(ctx.secret, clock.at + timedelta(days=1))[0]
    with pytest.raises(ParentLinkInvalid):  # never issued: not in the database
        await parents.open_link(ctx, forged_but_signed)
    clock.advance(days=15)
    with pytest.raises(ParentLinkExpired):
        await parents.open_link(ctx, link["token"])
    with pytest.raises(NotAllowed):
        await parents.issue_link(ctx, OTHER_DESIGNEE, {
            "student": "st1", "offer": world.home_offer, "language": "en"}, "POST l")


async def test_feeds_show_local_times_exdates_and_moves(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = await occurrence_ids(ctx, booked.series_id)
    await booking.cancel(ctx, DESIGNEE, ids[1], {"scope": "one"})
    await booking.reschedule(ctx, DESIGNEE, ids[2], {"scope": "one", "day": "2026-10-30",
                                                     "start": "15:00"})
    made = await feeds.create_feed(ctx, DESIGNEE, "student", "st1")
    text = (await feeds.render(ctx, made["token"])).decode()
    assert "DTSTART;TZID=America/Los_Angeles:20261026T153000" in text
    assert "RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO,WE,TH" in text or "COUNT=6" in text
    assert "EXDATE;TZID=America/Los_Angeles:20261028T153000" in text
    assert "RECURRENCE-ID;TZID=America/Los_Angeles:20261029T153000" in text
    assert "DTSTART;TZID=America/Los_Angeles:20261030T150000" in text
    assert "BEGIN:VTIMEZONE" in text
    assert "BEGIN:DAYLIGHT" in text and "BEGIN:STANDARD" in text  # the series spans 1 Nov
    assert "Z" not in text.split("DTSTART;TZID=America/Los_Angeles:")[1][:16]
    await feeds.revoke_feeds(ctx, DESIGNEE, "student", "st1")
    with pytest.raises(NotFound):
        await feeds.render(ctx, made["token"])
    with pytest.raises(NotAllowed):
        await feeds.create_feed(ctx, tutor("t2"), "tutor", "t1")
    mine = await feeds.create_feed(ctx, tutor("t1"), "tutor", "t1")
    assert b"BEGIN:VEVENT" in await feeds.render(ctx, mine["token"])
    # the tutor's console: the Monday after the change is still 15:30 local
    ctx_monday = Scheduler(ctx.engine, ctx.secret,
                           clock=lambda: datetime(2026, 11, 2, 20, 0, tzinfo=UTC))
    upcoming = await views.tutor_upcoming(ctx_monday, tutor("t1"))
    monday = next(o for o in upcoming["occurrences"] if o["local"].startswith("2026-11-02"))
    assert monday["local"] == "2026-11-02T15:30:00-08:00"
    assert monday["starts_at"] == "2026-11-02T23:30:00+00:00"


async def test_availability_import_is_whole_or_nothing(ctx: Scheduler, world: World) -> None:
    good = (b"tutor,weekday,start,end,date,available\n"
            b"t1,mon,15:00,18:00,,\nt1,,,,2026-11-02,no\nt2,tue,15:00,17:00,,\n")
    done = await setup.import_availability(ctx, VENDOR, "csv", good)
    assert done == {"tutors": ["t1", "t2"], "windows": 2, "exceptions": 1}
    bad = b"tutor,weekday,start,end\nt1,mon,15:00,18:00\nt2,tue,17:00,15:00\n"
    with pytest.raises(Exception) as caught:
        await setup.import_availability(ctx, VENDOR, "csv", bad)
    assert getattr(caught.value, "code", None) == "invalid_payload"
    windows = await rows(ctx, sa.select(m.availability_windows).where(
        m.availability_windows.c.tutor_id == "t2"))
    assert [(w["start_min"], w["end_min"]) for w in windows] == [(900, 1020)]
    with pytest.raises(NotAllowed):  # h1 is booknook's
        await setup.import_availability(ctx, VENDOR, "json", b'{"tutors": {"h1": {}}}')
    done = await setup.import_availability(ctx, VENDOR, "json", b"""{"tutors": {"t1": {
        "weekly": [{"weekday": "thu", "start": "14:00", "end": "17:30"}],
        "exceptions": [{"date": "2026-11-05", "available": true, "start": "09:00",
                        "end": "10:00"}]}}}""")
    assert done == {"tutors": ["t1"], "windows": 1, "exceptions": 1}
    with pytest.raises(InvalidPayload):
        await setup.import_availability(ctx, VENDOR, "json", b"{not json")


async def test_worker_jobs_take_the_runners_now(ctx: Scheduler, world: World) -> None:
    from broker.scheduler import jobs

    await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    now = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    assert await jobs.queue_reminders(ctx.engine, now) == {"occurrences": 1}
    assert await jobs.close_attendance(ctx.engine, now) == {"closed": 0, "tutor_no_shows": 0}
    later = datetime(2026, 10, 27, 0, 0, tzinfo=UTC)
    assert await jobs.close_attendance(ctx.engine, later) == {"closed": 1, "tutor_no_shows": 1}


async def test_a_link_without_an_offer_shows_every_vendor_in_the_language(
    ctx: Scheduler, world: World,
) -> None:
    from tests.scheduler.conftest import HOME_OFFER, make_tutor

    second = await setup.create_offer(ctx, DISTRICT, {**HOME_OFFER, "vendor": "stepup"})
    english_only = await setup.create_offer(ctx, DISTRICT, {
        **HOME_OFFER, "vendor": "cignition", "languages": ["en"]})
    await make_tutor(ctx, "h2", vendor="stepup")
    await setup.publish_availability(ctx, DISTRICT, "h2", {"weekly": [
        {"weekday": "fri", "start": "16:00", "end": "17:00"}]})
    link = await parents.issue_link(ctx, DESIGNEE, {"student": "st7", "language": "es"},
                                    "POST l")
    page = await parents.open_link(ctx, link["token"])
    assert {o["id"] for o in page["offers"]} == {world.home_offer, second["id"]}
    assert english_only["id"] not in {s["offer"] for s in page["slots"]}
    assert {s["vendor"] for s in page["slots"]} == {"booknook", "stepup"}
    choice = {"tutor": "h2", "start": "16:00", "weekdays": ["fri"], "subject": "ela"}
    with pytest.raises(InvalidPayload):  # two offers: the parent must say which
        await parents.book_from_link(ctx, link["token"], choice)
    booked = await parents.book_from_link(ctx, link["token"], {**choice, "offer": second["id"]})
    assert booked["occurrences"] > 30


async def test_a_session_moved_away_and_back_is_reminded_again(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    first = (await occurrence_ids(ctx, booked.series_id))[0]
    clock.at = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    await attendance.queue_reminders(ctx)
    await booking.reschedule(ctx, DESIGNEE, first, {"scope": "one", "day": "2026-10-30",
                                                    "start": "15:30"})
    await booking.reschedule(ctx, DESIGNEE, first, {"scope": "one", "day": "2026-10-26",
                                                    "start": "15:30"})
    await attendance.queue_reminders(ctx)
    pending = await rows(ctx, sa.select(outbox).where(
        outbox.c.kind == "reminder", outbox.c.cancelled_at.is_(None)))
    assert len(pending) == 3
