"""Booked sessions run through the broker (broker/rooms.py), on both stacks, with real
socket.io clients, a fake clock and explicit job runs and sweeps: the room opens once
(twice-run and two runners racing), only the booked tutor and students get in, everyone
exchanges messages in order, attendance is marked present/late, a cancelled occurrence
never opens and the room closes at its end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from broker import rooms, rooms_store
from broker.db import scheduler_models as m
from broker.db.engine import create_engine
from broker.identity import Identity, Learner, student_identity, tutor_identity
from broker.lifecycle_store import LifecycleStore
from broker.rooms import open_due, run_rooms
from broker.scheduler import attendance, booking, enrolment, setup, views
from broker.scheduler.service import Scheduler
from broker.student_data import delete_student, export_student
from tests.broker.conftest import fetch_all
from tests.broker.district import prepare_database
from tests.broker.unit import FakeClock
from tests.scheduler.conftest import BELLS, DESIGNEE, DISTRICT, OFFER

# Mon 26 Oct 2026, 15:30-16:00 in Los Angeles (PDT): 22:30-23:00 UTC; weekly Mon/Wed.
START = datetime(2026, 10, 26, 22, 30, tzinfo=UTC)
END = START + timedelta(minutes=30)
SERIES = {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=3", "first_day": "2026-10-26",
          "start": "15:30", "minutes": 30}
GROUP = ["st1", "st2", "st5"]
NAMES = {"st1": "Ana Maria", "st2": "Ben", "st3": "Cy", "st5": "Dee"}


async def book_world(url: str) -> list[str]:
    """Roster, an offer, bells, tutors t1 and t2, a group (st1, st2, st5) with t1 and a
    weekly series; the occurrence ids, soonest first."""
    engine = create_engine(url)
    ctx = Scheduler(engine, "s" * 32, clock=lambda: datetime(2026, 9, 1, 16, tzinfo=UTC))
    try:
        async with engine.begin() as conn:
            await conn.execute(m.metadata.tables["students"].insert(), [
                {"sourced_id": s, "sis_id": f"sis-{s}", "school_id": "hs", "grade": g,
                 "groups": "", "given_name": NAMES[s], "family_name": "Secret"}
                for s, g in (("st1", 9), ("st2", 9), ("st3", 10), ("st5", 9))
            ])
        offer = (await setup.create_offer(ctx, DISTRICT, OFFER))["id"]
        await setup.set_school_schedule(ctx, DISTRICT, "hs", BELLS)
        for tid in ("t1", "t2"):
            await setup.set_tutor(ctx, DISTRICT, tid, {
                "vendor": "tutorco", "languages": ["en"], "timezone": "America/Los_Angeles",
                "display_name": f"Tutor {tid}"})
        await enrolment.enrol(ctx, DESIGNEE, offer, {"students": [
            {"student": s, "language": "en"} for s in (*GROUP, "st3")]})
        group = await enrolment.form_group(ctx, DESIGNEE, {
            "offer": offer, "school": "hs", "subject": "math", "language": "en",
            "grade_band": "9-10", "tutor": "t1", "students": GROUP,
        })
        booked = await booking.book_series(ctx, DESIGNEE, {"group": group["id"], **SERIES})
        async with engine.connect() as conn:
            occ = m.occurrences
            return list((await conn.execute(sa.select(occ.c.id).where(
                occ.c.series_id == booked.series_id).order_by(occ.c.starts_at))).scalars())
    finally:
        await engine.dispose()


def kid(roster_id: str) -> Identity:
    learner = Learner(school_id="hs", grade=9, given_name=NAMES[roster_id], roster_id=roster_id)
    return student_identity(f"s-{roster_id}-pseudo", learner)


def teacher(profile: str) -> Identity:
    return tutor_identity(f"acct-{profile}", "tutorco", ["en"], source="account",
                          display_name=f"Ms. {profile}", profile=profile)


async def jobs(url: str, now: datetime, runners: int = 1) -> list[dict[str, int]]:
    """Run the rooms job ``runners`` times at once, each on its own engine."""
    engines = [create_engine(url) for _ in range(runners)]
    try:
        return list(await asyncio.gather(*(run_rooms(e, now) for e in engines)))
    finally:
        for e in engines:
            await e.dispose()


async def processes(stack_settings: Any, start_server: Any,
                    clock: FakeClock) -> tuple[Any, Any, list[Any]]:
    """Two broker processes on the scaled stack (one on the embedded one): (one, two, all)."""
    one = await start_server(clock)
    two = await start_server(clock) if stack_settings.redis_url else one
    return one, two, [one, two] if two is not one else [one]


async def test_a_booked_room_runs_through_the_broker(
    stack_settings, start_server, clients: list,
) -> None:
    url = stack_settings.database_url
    first_occ, second_occ, _ = await book_world(url)
    clock = FakeClock((START - timedelta(minutes=10)).timestamp())
    one, two, servers = await processes(stack_settings, start_server, clock)
    tutor = await one.connect("/tutor", teacher("t1"))
    kids = {s: await (two if s == "st2" else one).connect("/student", kid(s)) for s in GROUP}
    stranger = await two.connect("/student", kid("st3"))
    other_tutor = await two.connect("/tutor", teacher("t2"))
    clients += [tutor, stranger, other_tutor, *kids.values()]

    # on connect: the next session, for a countdown, before its room opens
    state = await tutor.next("tutor:state")
    assert state["booked"]["session"] is None
    assert state["booked"]["starts_at"].startswith("2026-10-26T22:30")
    assert state["booked"]["starts_in_s"] == 600  # by the broker's clock, for the countdown
    assert state["booked"]["vendor"] == "tutorco" and state["booked"]["vendor_name"]
    assert (await kids["st1"].next("session:state"))["booked"]["booking"] == first_occ
    assert (await stranger.next("session:state"))["booked"] is None

    # too early: nothing opens; 5 minutes ahead: it opens once, also when two runners race
    assert await jobs(url, START - timedelta(minutes=6)) == [{"opened": 0, "closed": 0}]
    raced = await jobs(url, START - timedelta(minutes=4), runners=2)
    assert sorted(r["opened"] for r in raced) == [0, 1]
    assert await jobs(url, START - timedelta(minutes=3)) == [{"opened": 0, "closed": 0}]
    rows = await fetch_all(url, "select id, booking, programme, request_id, student "
                           "from tutoring_sessions")
    assert len(rows) == 1 and rows[0]["booking"] == first_occ
    assert rows[0]["programme"] == "school_based" and rows[0]["request_id"] is None
    room = rows[0]["id"]

    for server in servers:
        await server.sweep()
    opened = await tutor.next("booked:open")
    assert opened["session_id"] == room and opened["booking"] == first_occ
    assert [s["grade_band"] for s in opened["students"]] == ["9-12"] * 3
    for s in GROUP:
        seen = await kids[s].next("booked:open")
        assert seen["session_id"] == room and seen["tutor"] == {"display_name": "Tutor t1"}

    # only the booked tutor and students get in
    for outsider in (stranger, other_tutor):
        for event, data in (("booked:join", {"session_id": room}),
                            ("chat:send", {"session_id": room, "text": "let me in"}),
                            ("session:sync", {"session_id": room, "after_seq": 0})):
            ack = await outsider.call(event, data)
            assert ack["error"]["code"] == "not_allowed", (event, ack)

    # attendance: the tutor and st1 on time, st2 six minutes after the start
    clock.now = (START - timedelta(minutes=1)).timestamp()
    assert (await tutor.call("booked:join", {"session_id": room}))["attendance"] == "present"
    assert (await kids["st1"].call("booked:join", {"session_id": room}))["attendance"] == (
        "present")
    clock.now = (START + timedelta(minutes=6)).timestamp()
    joined = await kids["st2"].call("booked:join", {"session_id": room})
    assert joined["attendance"] == "late"
    assert [s["name"] for s in joined["session"]["students"]] == ["Ana", "Ben"]

    # everyone's messages reach everyone, in order
    for who, text in ((tutor, "welcome"), (kids["st1"], "hi"), (kids["st2"], "hello")):
        ack = await who.call("chat:send", {"session_id": room, "text": text})
        assert ack["ok"], ack
    for person in (tutor, *kids.values()):
        got = [await person.next("chat:message") for _ in range(3)]
        assert [(g["seq"], g["text"]) for g in got] == [(1, "welcome"), (2, "hi"), (3, "hello")]
    by_st1 = [g for g in kids["st2"].drain("chat:message")]
    assert by_st1 == []  # each message came once
    sync = await kids["st5"].call("session:sync", {"session_id": room, "after_seq": 1})
    assert [x["text"] for x in sync["messages"]] == ["hi", "hello"]

    marks = await fetch_all(url, "select student_id, status from attendance "
                            f"where occurrence_id = '{first_occ}' order by student_id")
    assert [(r["student_id"], r["status"]) for r in marks] == [("st1", "present"),
                                                               ("st2", "late")]
    occ = await fetch_all(url, f"select tutor_status from occurrences where id = '{first_occ}'")
    assert occ[0]["tutor_status"] == "present"

    # a student leaves; only the tutor or the clock ends a booked session
    ack = await kids["st5"].call("session:end", {"session_id": room})
    assert ack["error"]["code"] == "not_allowed"

    # a cancelled occurrence never opens
    async with _scheduler(url) as ctx:
        await booking.cancel(ctx, DESIGNEE, second_occ, {"scope": "one", "reason": "trip"})

    # the room closes 5 minutes after its end, by the job; everyone is told by a sweep
    assert await jobs(url, END + timedelta(minutes=4)) == [{"opened": 0, "closed": 0}]
    assert await jobs(url, END + timedelta(minutes=5)) == [{"opened": 0, "closed": 1}]
    for server in servers:
        await server.sweep()
    for person in (tutor, *kids.values()):
        ended = await person.next("session:ended")
        assert ended == {"session_id": room, "reason": "scheduled_end", "booking": first_occ}
    rows = await fetch_all(url, f"select end_reason from tutoring_sessions where id = '{room}'")
    assert rows[0]["end_reason"] == "scheduled_end"
    names = await fetch_all(url, "select first_name from session_participants")
    assert {r["first_name"] for r in names} == {None}
    second_start = START + timedelta(days=2)
    assert await jobs(url, second_start - timedelta(minutes=2)) == [{"opened": 0, "closed": 0}]
    ack = await tutor.call("chat:send", {"session_id": room, "text": "late"})
    assert ack["error"]["code"] == "not_found"
    # the stranger was never told anything about the room
    assert stranger.drain("booked:open") == [] and stranger.drain("chat:message") == []

    # a district's data request: the join is exported, then unlinked from the pseudonym
    engine = create_engine(url)
    try:
        data = await export_student(engine, "s-st1-pseudo")
        assert [j["session_id"] for j in data["booked_joins"]] == [room]
        counts = await delete_student(engine, "s-st1-pseudo", DISTRICT, "cli")
        assert counts["booked_joins"] == 1
        assert (await export_student(engine, "s-st1-pseudo"))["booked_joins"] == []
    finally:
        await engine.dispose()


class _scheduler:
    """``async with _scheduler(url) as ctx``: a scheduler on its own engine."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    async def __aenter__(self) -> Scheduler:
        return Scheduler(self.engine, "s" * 32,
                         clock=lambda: datetime(2026, 10, 27, 12, tzinfo=UTC))

    async def __aexit__(self, *exc: Any) -> None:
        await self.engine.dispose()


async def test_a_room_ends_by_its_tutor_or_when_its_session_is_cancelled(
    stack_settings, start_server, clients: list,
) -> None:
    url = stack_settings.database_url
    first_occ, second_occ, _ = await book_world(url)
    # a tutor account linked to profile t1 sees t1's sessions and marks their attendance
    async with _scheduler(url) as ctx:
        upcoming = await views.tutor_upcoming(ctx, teacher("t1"))
        assert upcoming["occurrences"][0]["id"] == second_occ  # from the 27th, noon
        assert upcoming["tutor"] == "t1"
        marked = await attendance.mark(ctx, teacher("t1"), first_occ, {"marks": {"st2": "late"}})
        assert marked == {"st2": "late"}
    clock = FakeClock((START - timedelta(minutes=2)).timestamp())
    server = await start_server(clock)
    tutor = await server.connect("/tutor", teacher("t1"))
    kid1 = await server.connect("/student", kid("st1"))
    clients += [tutor, kid1]
    assert await jobs(url, START - timedelta(minutes=2)) == [{"opened": 1, "closed": 0}]
    await server.sweep()
    room = (await kid1.next("booked:open"))["session_id"]
    assert (await tutor.next("booked:open"))["session_id"] == room
    # the tutor ends it early: everyone is told at once, and it does not open again
    assert (await tutor.call("session:end", {"session_id": room}))["ok"]
    for person in (tutor, kid1):
        assert (await person.next("session:ended"))["reason"] == "tutor"
    assert await jobs(url, START) == [{"opened": 0, "closed": 0}]
    # the next one opens, then is cancelled: the next run closes it as cancelled
    second_start = START + timedelta(days=2)
    clock.now = (second_start - timedelta(minutes=3)).timestamp()
    assert await jobs(url, second_start - timedelta(minutes=3)) == [{"opened": 1, "closed": 0}]
    await server.sweep()
    second_room = (await tutor.next("booked:open"))["session_id"]
    async with _scheduler(url) as ctx:
        await booking.cancel(ctx, DESIGNEE, second_occ, {"scope": "one", "reason": "sick"})
    assert await jobs(url, second_start - timedelta(minutes=2)) == [{"opened": 0, "closed": 1}]
    await server.sweep()
    for person in (tutor, kid1):
        ended = await person.next("session:ended")
        assert ended == {"session_id": second_room, "reason": "cancelled", "booking": second_occ}


async def test_a_worker_dying_mid_open_loses_no_room_and_opens_none_twice(
    stack_settings, monkeypatch,
) -> None:
    """Batches commit one by one: a run that dies after its first batch leaves that batch
    open; the next run opens the rest, and nothing twice."""
    from broker import rooms_store

    url = stack_settings.database_url
    occurrences = await book_world(url)
    real = rooms_store.open_batch
    calls = 0

    async def dies_on_the_second_batch(*args: Any) -> set[str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the worker lost its database")
        return await real(*args)

    monkeypatch.setattr(rooms_store, "open_batch", dies_on_the_second_batch)
    engine = create_engine(url)
    try:
        soon = START - timedelta(minutes=1)
        try:
            await open_due(engine, soon, lead=timedelta(days=4), batch=1)
        except ConnectionError:
            pass
        else:
            raise AssertionError("the second batch should have failed")
        rows = await fetch_all(url, "select booking from tutoring_sessions")
        assert [r["booking"] for r in rows] == occurrences[:1]
        monkeypatch.setattr(rooms_store, "open_batch", real)
        again = await open_due(engine, soon, lead=timedelta(days=4), batch=1)
        assert len(again) == 2
        assert await open_due(engine, soon, lead=timedelta(days=4), batch=1) == []
        rows = await fetch_all(url, "select booking from tutoring_sessions order by booking")
        assert sorted(r["booking"] for r in rows) == sorted(occurrences)
    finally:
        await engine.dispose()


async def test_a_room_survives_its_process(stack_settings, start_server, clients: list) -> None:
    """The process serving a room stops; its people reconnect to another process, whose
    state names the open room, and rejoin without losing a message."""
    url = stack_settings.database_url
    first_occ, _, _ = await book_world(url)
    clock = FakeClock((START + timedelta(minutes=1)).timestamp())
    one = await start_server(clock)
    tutor = await one.connect("/tutor", teacher("t1"))
    kid1 = await one.connect("/student", kid("st1"))
    assert await jobs(url, START) == [{"opened": 1, "closed": 0}]
    await one.sweep()
    room = (await kid1.next("booked:open"))["session_id"]
    for who, text in ((tutor, "first"), (kid1, "second")):
        assert (await who.call("chat:send", {"session_id": room, "text": text}))["ok"]
    assert (await kid1.next("chat:message"))["seq"] == 1  # the kid saw only the first
    await tutor.close()
    await kid1.close()
    await one.stop()
    two = await start_server(clock)
    tutor = await two.connect("/tutor", teacher("t1"))
    kid1 = await two.connect("/student", kid("st1"))
    clients += [tutor, kid1]
    booked = (await kid1.next("session:state"))["booked"]
    assert booked["session"]["session_id"] == room and booked["booking"] == first_occ
    assert (await tutor.next("tutor:state"))["booked"]["session"]["session_id"] == room
    joined = await kid1.call("booked:join", {"session_id": room, "after_seq": 1})
    assert [m["text"] for m in joined["messages"]] == ["second"]
    assert (await tutor.call("chat:send", {"session_id": room, "text": "third"}))["ok"]
    assert (await kid1.next("chat:message"))["text"] == "third"


async def test_a_substitute_and_a_student_added_after_the_room_opened_get_in(
    stack_settings, start_server, clients: list,
) -> None:
    """Who may enter an open room is what the database says now: a substitute recorded 3
    minutes before the start, and a student added to the group then, are let in at the
    next look of each process (and told ``booked:open``); the replaced tutor is told
    ``session:ended`` (``substituted``) and refused from then on; the students see the new
    tutor's name, and messages sent before the change keep their senders."""
    url = stack_settings.database_url
    first_occ, _, _ = await book_world(url)
    clock = FakeClock((START - timedelta(minutes=4)).timestamp())
    one, two, servers = await processes(stack_settings, start_server, clock)
    old = await one.connect("/tutor", teacher("t1"))
    sub = await two.connect("/tutor", teacher("t2"))
    kid1 = await one.connect("/student", kid("st1"))
    kid3 = await two.connect("/student", kid("st3"))
    clients += [old, sub, kid1, kid3]
    assert await jobs(url, START - timedelta(minutes=4)) == [{"opened": 1, "closed": 0}]
    for server in servers:
        await server.sweep()
    room = (await old.next("booked:open"))["session_id"]
    assert (await kid1.next("booked:open"))["tutor"] == {"display_name": "Tutor t1"}
    assert (await old.call("booked:join", {"session_id": room}))["ok"]
    assert (await kid1.call("booked:join", {"session_id": room}))["ok"]
    assert (await old.call("chat:send", {"session_id": room, "text": "from t1"}))["ok"]
    assert (await kid1.call("chat:send", {"session_id": room, "text": "from st1"}))["ok"]
    for outsider in (sub, kid3):
        ack = await outsider.call("booked:join", {"session_id": room})
        assert ack["error"]["code"] == "not_allowed"

    # 3 minutes before the start: t1 calls in sick, t2 substitutes; st3 joins the group
    engine = create_engine(url)
    ctx = Scheduler(engine, "s" * 32, clock=lambda: START - timedelta(minutes=3))
    try:
        await booking.substitute(ctx, DESIGNEE, first_occ, {"tutor": "t2", "reason": "sick"})
        async with engine.connect() as conn:
            group = (await conn.execute(sa.select(m.tutoring_groups.c.id))).scalar_one()
        await enrolment.add_to_group(ctx, DESIGNEE, group, {"student": "st3"})
    finally:
        await engine.dispose()
    clock.now = (START - timedelta(minutes=3)).timestamp()
    for server in servers:
        await server.sweep()

    gone = await old.next("session:ended")
    assert gone == {"session_id": room, "reason": "substituted", "booking": first_occ}
    # The substitute and the new student are two transactions, and each process's room
    # watch (every ROOM_WATCH_S) may look between them: then the substitute is told the
    # room twice, first with the three students it had, then with the fourth.
    told = await sub.upto("booked:open", lambda e: len(e["students"]) == 4)
    assert all(t["session_id"] == room and t["tutor"] == {"display_name": "Tutor t2"}
               for t in told), told
    assert [len(t["students"]) for t in told] in ([4], [3, 4]), told
    assert (await kid1.next("booked:open"))["tutor"] == {"display_name": "Tutor t2"}
    assert (await kid3.next("booked:open"))["session_id"] == room
    for event, data in (("booked:join", {"session_id": room}),
                        ("chat:send", {"session_id": room, "text": "still here"}),
                        ("session:sync", {"session_id": room, "after_seq": 0})):
        ack = await old.call(event, data)
        assert ack["error"]["code"] == "not_allowed", (event, ack)

    joined = await sub.call("booked:join", {"session_id": room})
    assert joined["attendance"] == "present"
    assert [(x["text"], x["by"]) for x in joined["messages"]] == [
        ("from t1", {"role": "tutor", "name": "Tutor"}),
        ("from st1", {"role": "student", "pseudonym": "s-st1-pseudo"})]
    assert (await kid3.call("booked:join", {"session_id": room}))["attendance"] == "present"
    for who, text in ((sub, "from t2"), (kid3, "from st3")):
        assert (await who.call("chat:send", {"session_id": room, "text": text}))["ok"]
    for person in (sub, kid1, kid3):
        got = [await person.next("chat:message")]
        while got[-1]["seq"] < 4:
            got.append(await person.next("chat:message"))
        assert [(g["seq"], g["text"]) for g in got if g["seq"] > 2] == [
            (3, "from t2"), (4, "from st3")]
    sync = await kid1.call("session:sync", {"session_id": room, "after_seq": 0})
    assert [x["by"].get("name") for x in sync["messages"]] == [
        "Tutor", "Ana", "Tutor t2", "Cy"]
    assert old.drain("chat:message")[-1]["text"] == "from st1"  # nothing after the change

    rows = await fetch_all(url, f"select tutor_id, tutor_name from tutoring_sessions "
                           f"where id = '{room}'")
    assert rows == [{"tutor_id": "t2", "tutor_name": "Tutor t2"}]
    people = await fetch_all(url, "select student_id from session_participants "
                             f"where session_id = '{room}' order by student_id")
    assert [p["student_id"] for p in people] == ["st1", "st2", "st3", "st5"]
    again = await one.connect("/tutor", teacher("t2"))
    clients.append(again)
    assert (await again.next("tutor:state"))["booked"]["session"]["session_id"] == room
    marks = await fetch_all(url, "select tutor_status from occurrences "
                            f"where id = '{first_occ}'")
    assert marks == [{"tutor_status": "present"}]


@pytest.mark.parametrize("tries", [1, rooms.SYNC_TRIES])
async def test_a_student_added_while_a_look_reads_the_room_is_told_when_it_settles(
    stack_settings, start_server, clients: list, monkeypatch, tries: int,
) -> None:
    """A student added between a look's bringing the room's people up to date and its
    reading them again (found by CI) is in the tutor's ``booked:open`` at that look (the
    load syncs again) or, once the load's tries are spent, at the next: the look does not
    remember as told a room whose people were still changing."""
    monkeypatch.setattr(rooms, "SYNC_TRIES", tries)
    url = stack_settings.database_url
    first_occ, _, _ = await book_world(url)
    clock = FakeClock((START - timedelta(minutes=4)).timestamp())
    server = await start_server(clock)
    sub = await server.connect("/tutor", teacher("t2"))
    clients.append(sub)
    assert await jobs(url, START - timedelta(minutes=4)) == [{"opened": 1, "closed": 0}]
    await server.sweep()
    engine = create_engine(url)
    ctx = Scheduler(engine, "s" * 32, clock=lambda: START - timedelta(minutes=3))
    async with engine.connect() as conn:
        group = (await conn.execute(sa.select(m.tutoring_groups.c.id))).scalar_one()
    real_rooms, real_sync = rooms_store.rooms, rooms_store.sync_people
    synced = asyncio.Event()
    added: list[str] = []

    async def sync_then_note(*args: Any) -> None:
        await real_sync(*args)
        synced.set()

    async def adds_once_synced(*args: Any) -> Any:
        if synced.is_set() and not added:  # the read right after the first sync
            added.append("st3")
            await enrolment.add_to_group(ctx, DESIGNEE, group, {"student": "st3"})
        return await real_rooms(*args)

    monkeypatch.setattr(rooms_store, "sync_people", sync_then_note)
    monkeypatch.setattr(rooms_store, "rooms", adds_once_synced)
    try:
        await booking.substitute(ctx, DESIGNEE, first_occ, {"tutor": "t2", "reason": "sick"})
        for _ in range(2):  # this look and the next
            await server.broker.rooms.reconcile()
    finally:
        await engine.dispose()
    assert added == ["st3"]
    told = await sub.upto("booked:open", lambda e: len(e["students"]) == 4)
    assert all(t["tutor"] == {"display_name": "Tutor t2"} for t in told), told


async def test_a_look_whose_read_fails_is_done_again_by_the_next(
    stack_settings, start_server, clients: list, monkeypatch,
) -> None:
    """A look that saw a substitute but could not read the room (a database blip) leaves
    this process's notion of what is open as it was, so the next look tells the change."""
    url = stack_settings.database_url
    first_occ, _, _ = await book_world(url)
    clock = FakeClock((START - timedelta(minutes=4)).timestamp())
    server = await start_server(clock)
    old = await server.connect("/tutor", teacher("t1"))
    sub = await server.connect("/tutor", teacher("t2"))
    clients += [old, sub]
    assert await jobs(url, START - timedelta(minutes=4)) == [{"opened": 1, "closed": 0}]
    await server.sweep()
    room = (await old.next("booked:open"))["session_id"]
    real_rooms = rooms_store.rooms
    failed: list[bool] = []

    async def fails_once(*args: Any) -> Any:
        if not failed:
            failed.append(True)
            raise ConnectionResetError("the database went away")
        return await real_rooms(*args)

    engine = create_engine(url)
    ctx = Scheduler(engine, "s" * 32, clock=lambda: START - timedelta(minutes=3))
    try:
        await booking.substitute(ctx, DESIGNEE, first_occ, {"tutor": "t2", "reason": "sick"})
    finally:
        await engine.dispose()
    async with server.broker.rooms._looking:  # no look of the process's own in between
        monkeypatch.setattr(rooms_store, "rooms", fails_once)
    with pytest.raises(ConnectionResetError):
        await server.broker.rooms.reconcile()
    await server.broker.rooms.reconcile()
    assert (await old.next("session:ended"))["reason"] == "substituted"
    assert (await sub.next("booked:open"))["session_id"] == room



async def test_people_looked_up_together_are_told_what_each_is_told_alone(
    database_url: str,
) -> None:
    """What connecting people are told of their booked sessions, looked up many at once
    (more than one statement's worth, repeats, nobodies; some in an open room, one not
    booked): each answer equals a lookup of their own, is a copy of its own, and the
    crowd costs two statements per PEOPLE_BATCH people (the open rooms read as alone)."""
    await prepare_database(database_url)
    first_occ, second_occ, _ = await book_world(database_url)
    engine = create_engine(database_url)
    reader = LifecycleStore(engine).reader
    statements: list[int] = []
    fetch = reader.batch

    async def counted(queries: Any) -> Any:
        statements.append(len(queries))
        return await fetch(queries)

    reader.batch = counted  # type: ignore[method-assign]
    try:
        # before the room opens: the next session, for everyone booked in it
        before = START - timedelta(minutes=30)
        told = await rooms_store.people_rooms(
            engine, reader, before, before + rooms.SOON, "student", [*GROUP, "st3"])
        assert [nxt["id"] if nxt else None for rows, nxt in told] == [first_occ] * 3 + [None]
        assert all(rows == [] for rows, _ in told)
        assert await jobs(database_url, START - timedelta(minutes=2)) == [
            {"opened": 1, "closed": 0}]
        students = [*GROUP, "st3", *(f"nobody-{i}" for i in range(20)), "st1", "st3"]
        tutors = ["t1", "t2", "t1", *(f"nobody-{i}" for i in range(20))]
        for role, people in (("student", students), ("tutor", tutors)):
            alone = [await rooms_store.person_rooms(engine, reader, START, START + rooms.SOON,
                                                    **{role: p}) for p in people]
            statements.clear()
            together = await rooms_store.people_rooms(
                engine, reader, START, START + rooms.SOON, role, people)
            assert together == alone
            unique = len(set(people))
            batches = -(-unique // rooms_store.PEOPLE_BATCH)
            assert statements == [2 * batches]  # the open rooms' own reads: engine, not reader
            first, again = together[0], together[people.index(people[0], 1)]
            assert first == again and first is not again and first[0] is not again[0]
        assert together[0][0][0]["booking"] == first_occ  # t1 is in the open room
        assert second_occ != first_occ
    finally:
        await reader.close()
        await engine.dispose()
