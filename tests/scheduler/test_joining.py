"""Issue #11: a student added to a booked group from a date on (both databases, fake
clock). The sessions before the cut stay with the students who had them, so reports and
the new student's calendar start at the cut; the sessions from the cut on move (same ids)
to a continuation series for everyone; a refused add writes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from broker.db import scheduler_models as m
from broker.errors import Conflict, InvalidPayload
from broker.scheduler import attendance, booking, enrolment, feeds, reports, setup, store
from broker.scheduler.errors import GroupOverLimit, SchedulingError
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import DESIGNEE, DISTRICT, OFFER, FakeClock, World
from tests.scheduler.test_api import DESIGNEE as HS
from tests.scheduler.test_api import SERIES as TERM
from tests.scheduler.test_api import Client, call, prepare
from tests.scheduler.test_api import client as api_client  # noqa: F401 - a fixture
from tests.scheduler.test_booking import book_st5_elsewhere
from tests.scheduler.test_leaving import (
    actions,
    occurrences,
    outbox,
    refused,
    rows,
    series_students,
)
from tests.scheduler.test_running import SERIES

# SERIES: Mon 26, Wed 28, Thu 29 October, Mon 2, Wed 4, Thu 5 November, 15:30 Los Angeles
TABLES = (m.booking_series, m.booking_students, m.schedule_changes, m.group_members, outbox)


async def counts(ctx: Scheduler) -> list[int]:
    """How many rows the tables an add writes hold (a refused add changes none)."""
    async with ctx.engine.connect() as conn:
        return [int((await conn.execute(sa.select(sa.func.count()).select_from(t)))
                    .scalar_one()) for t in TABLES]


async def feed_of(ctx: Scheduler, student: str) -> str:
    made = await feeds.create_feed(ctx, DESIGNEE, "student", student)
    return (await feeds.render(ctx, made["token"])).decode()


async def booked_in(ctx: Scheduler, offer: str, first: str, last: str) -> list[str]:
    """The students a report of the period lists (every booked student is listed)."""
    found = await reports.report(ctx, DESIGNEE, "hs", offer, date.fromisoformat(first),
                                 date.fromisoformat(last), "GET r")
    return [d["student"] for d in found["dosage"]]


async def test_a_student_added_mid_term_has_only_the_sessions_from_the_cut_on(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = [o["id"] for o in await occurrences(ctx, booked.series_id)]
    await book_st5_elsewhere(ctx, world, 6)  # st5 is busy 26 Oct to 6 Nov, Mon Tue Fri
    clock.at = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)  # Wed 28 Oct, 17:00 in LA
    assert (await attendance.close_ended(ctx))["closed"] == 4  # 26, 27, 28 Oct held
    written = await counts(ctx)

    await refused(InvalidPayload, enrolment.add_to_group(   # the past stays
        ctx, DESIGNEE, world.group, {"student": "st3", "from": "2026-10-27"}))
    await refused(InvalidPayload, enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st3", "from": "2 Nov"}))
    clash = await refused(SchedulingError, enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st5", "from": "2026-11-02"}))
    assert clash.code == "overlap_student" and clash.detail["dates"] == ["2026-11-02"]
    assert await counts(ctx) == written  # whole or nothing

    done = await enrolment.add_to_group(ctx, DESIGNEE, world.group,
                                        {"student": "st3", "from": "2026-11-02"})
    successor = done["continued_as"][booked.series_id]
    assert done["students"] == ["st1", "st2", "st3"] and done["from"] == "2026-11-02"
    assert done["series"] == [successor]
    # the past (26, 28, 29 October) stays with st1 and st2 only; the rest, same ids, is
    # the continuation's, for the three of them
    assert [o["id"] for o in await occurrences(ctx, booked.series_id)] == ids[:3]
    assert [o["id"] for o in await occurrences(ctx, successor)] == ids[3:]
    assert await series_students(ctx, booked.series_id) == ["st1", "st2"]
    assert await series_students(ctx, successor) == ["st1", "st2", "st3"]
    assert await actions(ctx, booked.series_id) == ["book", "add_student"]
    assert await actions(ctx, successor) == ["continues"]
    told = await rows(ctx, sa.select(outbox).where(outbox.c.kind == "booked",
                                                   outbox.c.recipient_id == "st3"))
    assert len(told) == 1 and successor in told[0]["dedupe_key"]
    async with ctx.engine.connect() as conn:
        busy = await store.student_busy(conn, ["st3"], datetime(2026, 10, 1, tzinfo=UTC),
                                        datetime(2026, 12, 1, tzinfo=UTC))
    assert sorted(b.starts_at for b in busy["st3"]) == [
        o["starts_at"] for o in await occurrences(ctx, successor)]
    # reports: st3 is booked in no week before the cut, and in the weeks after it
    assert "st3" not in await booked_in(ctx, world.school_offer, "2026-10-26", "2026-11-01")
    assert "st3" in await booked_in(ctx, world.school_offer, "2026-11-02", "2026-11-08")
    # feeds: st3's starts at the cut; st1's has both runs, the six sessions
    st3 = await feed_of(ctx, "st3")
    assert st3.count("BEGIN:VEVENT") == 1 and "DTSTART;TZID=America/Los_Angeles:20261102" in st3
    assert "COUNT=3;BYDAY=MO,WE,TH" in st3 and "EXDATE" not in st3
    st1 = await feed_of(ctx, "st1")
    assert st1.count("BEGIN:VEVENT") == 2 and "COUNT=3" in st1
    assert "DTSTART;TZID=America/Los_Angeles:20261026" in st1 and "20261102T" in st1

    # st5 from Tuesday: Monday 2 November's clash is before the cut; the continuation is
    # split again, so st5 has Wed 4 and Thu 5 November only
    later = await enrolment.add_to_group(ctx, DESIGNEE, world.group,
                                         {"student": "st5", "from": "2026-11-03"})
    third = later["continued_as"][successor]
    assert later["series"] == [third] and later["students"] == ["st1", "st2", "st3", "st5"]
    assert [o["id"] for o in await occurrences(ctx, successor)] == ids[3:4]
    assert [o["id"] for o in await occurrences(ctx, third)] == ids[4:]
    assert await series_students(ctx, third) == ["st1", "st2", "st3", "st5"]
    assert await actions(ctx, successor) == ["add_student", "continues"]
    st5 = await feed_of(ctx, "st5")
    assert "DTSTART;TZID=America/Los_Angeles:20261104" in st5 and "COUNT=2" in st5
    # the reminders job reminds the newcomers of their sessions, as everyone booked
    clock.at = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)  # Wed 4 Nov, 04:00 in LA
    await attendance.queue_reminders(ctx)
    reminded = await rows(ctx, sa.select(outbox).where(outbox.c.kind == "reminder"))
    assert sorted(r["recipient_id"] for r in reminded) == ["st1", "st2", "st3", "st5", "t1"]


async def test_a_move_across_the_cut_or_a_full_group_refuses_the_add(
    ctx: Scheduler, world: World,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = [o["id"] for o in await occurrences(ctx, booked.series_id)]
    await booking.reschedule(ctx, DESIGNEE, ids[0], {"scope": "one", "day": "2026-11-03",
                                                     "start": "15:30"})
    written = await counts(ctx)
    err = await refused(Conflict, enrolment.add_to_group(
        ctx, DESIGNEE, world.group, {"student": "st3", "from": "2026-10-29"}))
    assert err.detail["occurrences"] == [ids[0]]
    assert await counts(ctx) == written
    # a group already at its offer's limit
    small = (await setup.create_offer(ctx, DISTRICT, {**OFFER, "group_limit": 2}))["id"]
    await enrolment.enrol(ctx, DESIGNEE, small, {"students": [
        {"student": s, "language": "en"} for s in ("st1", "st2", "st3")]})
    full = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": small, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t2", "students": ["st1", "st2"]})
    written = await counts(ctx)
    await refused(GroupOverLimit, enrolment.add_to_group(
        ctx, DESIGNEE, full["id"], {"student": "st3", "from": "2026-10-29"}))
    assert await counts(ctx) == written




async def test_joining_from_a_date_over_http(api_client: Client,  # noqa: F811 - the fixture
                                            clock: FakeClock) -> None:
    ids = await prepare(api_client)
    status, booked = await call(api_client, "POST", "/api/scheduler/series", HS,
                                {"group": ids["group"], **TERM, "start": "15:30"})
    assert status == 201
    status, _ = await call(api_client, "POST", f"/api/scheduler/offers/{ids['offer']}/enrolments",
                           HS, {"students": [{"student": "st3", "language": "en"}]})
    assert status == 200
    clock.at = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)  # Wed 28 Oct, 17:00 in LA
    members = f"/api/scheduler/groups/{ids['group']}/members"
    status, problem = await call(api_client, "POST", members, HS,
                                 {"student": "st3", "from": "2026-10-01"})
    assert (status, problem["code"], problem["field"]) == (400, "invalid_payload", "from")
    status, done = await call(api_client, "POST", members, HS,
                              {"student": "st3", "from": "2026-11-02"})
    assert status == 200 and done["from"] == "2026-11-02"
    assert done["series"] == [done["continued_as"][booked["series"]]]
