"""Broker unit tests: one source of truth. Every state change is one transaction that
happens whole or not at all; what a participant missed comes back from the database;
losing presence ends nothing; pushes lost elsewhere are re-sent by the sweep.

A fake clock, a recording notifier and explicit sweeps (tests/broker/unit.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from broker.constants import BUFFER_AFTER_END_S, BUFFER_SWEEP_EVERY_S
from broker.errors import AlreadyTaken, NotFound, OverCapacity, RateLimited
from broker.identity import Identity, Tutor
from broker.presence import MemoryPresence
from tests.broker.unit import FakeClock, Rig, as_identity, broker_rig, student, tutor


async def open_session(rig: Rig, kid: Identity, who: Tutor) -> str:
    rid = await rig.ask(kid)
    await rig.connect(who)
    return str((await rig.broker.accept(who, rid))["session_id"])


def break_writes(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write fails, as with a database that cannot be reached."""

    async def unreachable(units: Any, lane: int = 0) -> Any:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(rig.broker.store.writer, "_commit", unreachable)


async def test_a_cancel_that_cannot_be_written_leaves_the_place_intact(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, bob = student("s-ana"), student("s-bob")
    first, second = await rig.ask(ana), await rig.ask(bob)
    with monkeypatch.context() as m:
        break_writes(rig, m)
        with pytest.raises(ConnectionError):
            await rig.broker.cancel(ana, first)
    assert await rig.waiting() == [first, second]
    assert (await rig.connect(ana))["request"]["position"] == 1
    await rig.broker.cancel(ana, first)  # the database is back: the cancel works
    assert await rig.waiting() == [second]


async def test_an_accept_that_cannot_be_written_changes_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    rid = await rig.ask(ana)
    await rig.connect(ms_x)
    with monkeypatch.context() as m:
        break_writes(rig, m)
        with pytest.raises(ConnectionError):
            await rig.broker.accept(ms_x, rid)
    assert await rig.waiting() == [rid] and await rig.load("t-x") == 0
    assert (await rig.broker.accept(ms_x, rid))["request_id"] == rid
    assert await rig.load("t-x") == 1


async def test_capacity_in_use_always_equals_open_sessions(rig: Rig) -> None:
    ms_x = tutor("t-x")  # Paper.co: capacity 2
    kids = [student(f"s-{i}") for i in range(4)]
    sids = [await open_session(rig, kids[0], ms_x), await open_session(rig, kids[1], ms_x)]
    third = await rig.ask(kids[2])
    with pytest.raises(OverCapacity):
        await rig.broker.accept(ms_x, third)
    assert await rig.load("t-x") == 2 and await rig.waiting() == [third]
    await rig.broker.end(kids[0], sids[0])
    assert await rig.load("t-x") == 1
    assert (await rig.broker.accept(ms_x, third))["request_id"] == third
    with pytest.raises(NotFound):  # ended already: the second end changes nothing
        await rig.broker.end(as_identity(ms_x), sids[0])
    async with rig.engine.connect() as conn:
        open_count = await conn.scalar(sa.text(
            "select count(*) from tutoring_sessions where tutor_id = 't-x' and ended_at is null"
        ))
    assert open_count == await rig.load("t-x") == 2


async def test_a_request_is_claimed_once_even_by_two_processes(unit_db: str) -> None:
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as one, broker_rig(unit_db, clock=clock) as two:
        rid = await one.ask(student("s-ana"))
        ms_x, ms_y = tutor("t-x"), tutor("t-y")
        await one.broker.accept(ms_x, rid)
        with pytest.raises(AlreadyTaken):
            await two.broker.accept(ms_y, rid)
        assert await two.load("t-y") == 0


async def test_missed_messages_come_back_from_the_database(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    x = as_identity(ms_x)
    for who, text in [(ana, "hi"), (x, "hello"), (ana, "fractions")]:
        await rig.broker.send(who, sid, text)
    caught_up = await rig.broker.sync(ana, sid, after_seq=1)
    assert [(m["seq"], m["from"], m["text"]) for m in caught_up["messages"]] == [
        (2, "tutor", "hello"), (3, "student", "fractions"),
    ]
    assert caught_up["session"]["seq"] == 3 and caught_up["ended"] is None
    assert [m["id"] for m in caught_up["messages"]] == [f"{sid}.2", f"{sid}.3"]
    with pytest.raises(NotFound):  # another student's session
        await rig.broker.sync(student("s-bob"), sid, after_seq=0)
    await rig.broker.end(x, sid)
    after = await rig.broker.sync(ana, sid, after_seq=3)
    assert after["ended"] == {"session_id": sid, "reason": "tutor"} and after["messages"] == []


async def test_message_bodies_go_shortly_after_the_session_ends(rig: Rig) -> None:
    """With retention off, bodies are kept while the session is open and for
    BUFFER_AFTER_END_S after it ends (a participant who missed the last ones in a pub/sub
    outage still gets them), then the sweep deletes them; the topic goes at the end."""
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    await rig.broker.send(ana, sid, "my phone is private")
    count = sa.text("select count(*) from chat_messages where session_id = :sid")
    await rig.broker.end(ana, sid)
    missed = await rig.broker.sync(as_identity(ms_x), sid, after_seq=0)
    assert [m["text"] for m in missed["messages"]] == ["my phone is private"]
    assert missed["ended"] == {"session_id": sid, "reason": "student"}
    async with rig.engine.connect() as conn:
        assert await conn.scalar(sa.text("select topic from help_requests")) is None
    rig.clock.advance(BUFFER_AFTER_END_S - 1)
    await rig.sweep()
    async with rig.engine.connect() as conn:
        assert await conn.scalar(count, {"sid": sid}) == 1
    rig.clock.advance(BUFFER_SWEEP_EVERY_S + 2)
    await rig.sweep()
    async with rig.engine.connect() as conn:
        assert await conn.scalar(count, {"sid": sid}) == 0
    assert (await rig.broker.sync(ana, sid, after_seq=0))["messages"] == []


async def test_with_retention_on_bodies_are_kept(unit_db: str) -> None:
    async with broker_rig(unit_db, message_retention_days=30) as rig:
        rig.broker.store.keep_text = True  # what the app derives from the setting
        ana, ms_x = student("s-ana"), tutor("t-x")
        sid = await open_session(rig, ana, ms_x)
        await rig.broker.send(ana, sid, "kept for the district")
        await rig.broker.end(ana, sid)
        assert [m["text"] for m in await rig.broker.store.messages_after(sid, 0)] == [
            "kept for the district"
        ]


async def test_losing_presence_ends_nothing(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    waiting = await rig.ask(student("s-bob"))
    rig.clock.advance(rig.settings.grace_seconds * 5)
    rig.presence.forget_all()  # a flushed or restarted Redis: nobody has been seen
    await rig.sweep()
    assert await rig.is_open(sid) and await rig.waiting() == [waiting]
    assert rig.notifier.of(event="session:ended") == []


async def test_requests_and_cancels_are_throttled_per_student(rig: Rig) -> None:
    ana = student("s-ana")
    await rig.connect(ana)
    for _ in range(15):  # 15 request + cancel pairs: 30 events, the limit per minute
        rid = str((await rig.broker.request_help(ana, "math", "en"))["id"])
        await rig.broker.cancel(ana, rid)
    with pytest.raises(RateLimited):
        await rig.broker.request_help(ana, "math", "en")
    await rig.broker.request_help(student("s-bob"), "math", "en")  # others are not limited
    rig.clock.advance(61)
    assert (await rig.broker.request_help(ana, "math", "en"))["position"] == 2


async def test_the_sweep_resends_state_another_process_changed(unit_db: str) -> None:
    """A push lost with another process is made good: each process's sweep re-sends its own
    tutors and students the queue state that changed since it last sent it."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as here, broker_rig(unit_db, clock=clock) as there:
        ms_x = tutor("t-x")
        await here.connect(ms_x)
        here.broker.local_queues = lambda: set(ms_x.queues())
        await here.sweep()
        here.notifier.clear()
        rid = await there.ask(student("s-ana"))  # made, and pushed, by the other process
        await here.sweep()
        [snapshot] = here.notifier.of(to="queue:paper:en", event="queue:snapshot")
        assert [r["id"] for r in snapshot["requests"]] == [rid]
        assert here.notifier.sent[0].local  # only to this process's own connections
        here.notifier.clear()
        await here.sweep()  # nothing changed since: nothing re-sent
        assert here.notifier.sent == []


async def test_an_older_snapshot_from_another_process_is_corrected(unit_db: str) -> None:
    """Pushes of two processes are not ordered with each other: another process's older
    snapshot may reach this process's tutors after this process's newer one. The edge
    tells the broker what arrived, and the next sweep re-sends what the database says."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as here, broker_rig(unit_db, clock=clock) as there:
        ms_x = tutor("t-x")
        await here.connect(ms_x)
        here.broker.local_queues = lambda: set(ms_x.queues())
        ana = student("s-ana")
        rid = await there.ask(ana)
        await there.flush()
        [stale] = there.notifier.of(to="queue:paper:en", event="queue:snapshot")
        await there.broker.cancel(ana, rid)
        await here.sweep()  # here's tutors are shown the empty queue
        [fresh] = here.notifier.of(to="queue:paper:en", event="queue:snapshot")
        assert fresh["requests"] == []
        here.notifier.clear()
        await here.sweep()
        assert here.notifier.sent == []  # they see what the database says
        here.broker.shown_elsewhere("queue:snapshot", stale)  # there's older push arrives after it
        await here.sweep()
        [again] = here.notifier.of(to="queue:paper:en", event="queue:snapshot")
        assert again["requests"] == [] and here.notifier.sent[0].local
        here.notifier.clear()
        here.broker.shown_elsewhere("queue:snapshot", again)  # a push that agrees changes nothing
        await here.sweep()
        assert here.notifier.sent == []


async def test_an_older_position_from_another_process_is_corrected(unit_db: str) -> None:
    """The same for a waiting student: another process's older ``queue:position`` arriving
    after this process's newer one is corrected by the next sweep, and only then."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as here, broker_rig(unit_db, clock=clock) as there:
        ana, bob = student("s-ana"), student("s-bob")
        first = await there.ask(ana)
        rid = await here.ask(bob)
        await here.flush()
        await here.sweep()
        await there.broker.cancel(ana, first)  # bob is first now
        await here.sweep()
        assert [p["position"] for p in here.notifier.of(
            to="student:s-bob", event="queue:position")][-1:] == [1]
        here.notifier.clear()
        await here.sweep()
        assert here.notifier.of(event="queue:position") == []  # shown what the database says
        stale = {"request_id": rid, "position": 2, "eta_s": None}
        here.broker.shown_elsewhere("queue:position", stale)  # there's older push arrives
        await here.sweep()
        [again] = here.notifier.of(to="student:s-bob", event="queue:position")
        assert again["request_id"] == rid and again["position"] == 1
        assert all(sent.local for sent in here.notifier.sent)
        here.notifier.clear()
        await here.sweep()
        assert here.notifier.of(event="queue:position") == []


async def test_positions_are_told_by_the_students_own_process(unit_db: str) -> None:
    """With several processes (``holds`` set by the edge) each process tells its own waiting
    students their places: a change made on another process reaches them once that
    process's snapshot arrives, from this process's own read of the queue, and the other
    process publishes no position for them."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as here, broker_rig(unit_db, clock=clock) as there:
        for rig in (here, there):
            rig.broker.holds = rig.connected.__contains__
        ana, bob, cy = student("s-ana"), student("s-bob"), student("s-cy")
        first = await there.ask(ana)
        rid = await here.ask(bob)
        await there.ask(cy)  # third, on there: moves up with bob
        await here.flush()
        await there.flush()
        here.notifier.clear()
        there.notifier.clear()
        await there.broker.cancel(ana, first)
        await there.flush()
        assert [p["position"] for p in there.notifier.of(
            to="student:s-cy", event="queue:position")] == [2]
        assert there.notifier.of(to="student:s-bob") == []  # not there's student
        [snapshot] = there.notifier.of(to="queue:paper:en", event="queue:snapshot")
        await here.flush()
        assert here.notifier.sent == []  # nothing reached here yet
        here.broker.shown_elsewhere("queue:snapshot", snapshot)
        await here.flush()
        [told] = here.notifier.of(to="student:s-bob", event="queue:position")
        assert told["request_id"] == rid and told["position"] == 1
        assert [sent.local for sent in here.notifier.sent] == [True]
        here.notifier.clear()
        here.broker.shown_elsewhere("queue:snapshot", snapshot)  # the same again: no change
        await here.flush()
        assert here.notifier.sent == []


async def test_a_student_learns_of_a_session_that_ended_unseen(rig: Rig) -> None:
    """A student's page shows a request waiting; a tutor took it, wrote, and ended the
    session while every push to the page was lost. Asked with that request's id,
    session:state says which session it became and how it ended, and session:sync still
    hands over its messages; nobody else learns anything from another student's id."""
    ana, ms_x = student("s-ana"), tutor("t-x")
    rid = await rig.ask(ana)
    assert (await rig.broker.student_state(ana, rid))["ended"] is None  # still waiting
    await rig.connect(ms_x)
    sid = str((await rig.broker.accept(ms_x, rid))["session_id"])
    assert (await rig.broker.student_state(ana, rid))["ended"] is None  # open: shown as such
    await rig.broker.send(as_identity(ms_x), sid, "hi, still there?")
    await rig.broker.end(as_identity(ms_x), sid)
    state = await rig.broker.student_state(ana, rid)
    assert state["request"] is None and state["session"] is None
    assert state["ended"]["reason"] == "tutor"
    view = state["ended"]["session"]
    assert (view["session_id"], view["request_id"], view["seq"]) == (sid, rid, 1)
    assert "student" not in view  # the student's own view: no pseudonym, grade or school
    missed = await rig.broker.sync(ana, sid, after_seq=0)
    assert [m["text"] for m in missed["messages"]] == ["hi, still there?"]
    assert (await rig.broker.student_state(ana))["ended"] is None  # not asked: not told
    bob = student("s-bob")
    await rig.connect(bob)
    assert (await rig.broker.student_state(bob, rid))["ended"] is None  # not his request
    assert (await rig.broker.student_state(ana, "no-such-request"))["ended"] is None


async def test_wait_estimates_count_accepts_from_every_process(unit_db: str) -> None:
    """The accept rate behind an estimate is counted in the database, so a process that
    made no accepts itself estimates from the others'."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as here, broker_rig(unit_db, clock=clock) as there:
        ms_x, ms_y = tutor("t-x"), tutor("t-y")
        for i in range(9):  # nine accepts made by the other process
            rid = await there.ask(student(f"s-{i}"))
            await there.broker.accept(ms_x, rid)
            await there.broker.end(as_identity(ms_x), await _sid_of(there, rid))
        clock.advance(2)  # past the one-second count cache
        await here.connect(ms_y)  # an estimate needs a tutor who is there (issue 14)
        await here.broker.set_status(ms_y, "available")
        ack = await here.broker.request_help(student("s-new"), "math", "en")
        # 9 accepts in the 900 s window: 1/100 per second (faster than one tutor's 1/120),
        # so position 1 waits 100 s
        assert ack["position"] == 1 and ack["eta_s"] == 100


async def _sid_of(rig: Rig, request_id: str) -> str:
    async with rig.engine.connect() as conn:
        return str(await conn.scalar(
            sa.text("select id from tutoring_sessions where request_id = :r"), {"r": request_id}
        ))


class Unreachable(MemoryPresence):
    """Presence that can be switched off, as a Redis that does not answer."""

    down = False

    async def touch(self, subjects: list[str], now: float) -> None:
        if self.down:
            raise ConnectionError("presence is down")
        await super().touch(subjects, now)

    async def last_seen(self, subjects: list[str], now: float) -> dict[str, float]:
        if self.down:
            raise ConnectionError("presence is down")
        return await super().last_seen(subjects, now)


async def test_presence_down_serves_everyone_and_judges_nobody(rig: Rig) -> None:
    presence = Unreachable()
    rig.broker.presence = presence
    ana, bob, ms_x = student("s-ana"), student("s-bob"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    waiting = await rig.ask(bob)
    presence.down = True
    assert (await rig.connect(bob))["request"]["position"] == 1
    # later than bob's: at one instant of the fake clock, two requests of one millisecond
    # rank by their ids' random bits (broker/ids.py), and bob's came second about 1 in 2
    # (seen once in a full run)
    rig.clock.advance(1)
    assert (await rig.broker.request_help(student("s-cy"), "math", "en"))["position"] == 2
    assert (await rig.broker.tutor_state(ms_x))["sessions"][0]["session_id"] == sid
    rig.clock.advance(rig.settings.grace_seconds * 5)  # a long outage: nobody was touched
    await rig.sweep()
    presence.down = False
    await rig.sweep()  # back: but the other processes may not have touched their people yet
    assert await rig.is_open(sid) and waiting in await rig.waiting()
    rig.disconnect(bob)
    for _ in range(3):
        rig.clock.advance(rig.broker.sweep_interval)
        await rig.sweep()
    assert await rig.is_open(sid) and waiting in await rig.waiting()  # bob: not past grace
    rig.clock.advance(rig.settings.grace_seconds + 1)
    await rig.sweep()
    assert waiting not in await rig.waiting() and await rig.is_open(sid)


async def test_a_tutor_count_begun_before_a_sign_out_is_not_kept(unit_db: str) -> None:
    """A background recount of the tutors behind wait estimates that read the tutors'
    states before this process signed a tutor out, and finished after, must not be cached:
    the next estimate would count a tutor who left (seen under load by
    tests/presence/test_peer_presence.py::test_sign_out_ends_sessions_at_once: eta 120 s
    with nobody there, the recount ending while sign_out still ended sessions, before it
    forgot the tutor's presence: kept here by leaving presence as it was)."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as rig:
        ms = tutor("t-out")
        await rig.connect(ms)
        await rig.broker.set_status(ms, "available")
        broker = rig.broker
        read = broker.store.tutor_states
        before = await read()  # the states as the slow recount read them
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_read() -> list[dict[str, Any]]:
            entered.set()
            await release.wait()
            return before

        broker.store.tutor_states = slow_read  # type: ignore[method-assign]
        recount = asyncio.ensure_future(broker._count_rates(clock()))
        await entered.wait()
        broker.store.tutor_states = read  # type: ignore[method-assign]

        async def kept(subjects: list[str]) -> None:  # as when the recount ends first
            return None

        broker.presence.forget = kept  # type: ignore[method-assign]
        await broker.sign_out(ms)
        release.set()
        await recount
        ack = await broker.request_help(student("s-after"), "math", "en")
        assert ack["eta_s"] is None  # nobody available: no estimate
