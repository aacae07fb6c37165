"""Broker unit tests: what the sweep decides, at both sides of every limit, without sleeping.

Grace (60 s), queue expiry (3,600 s) and session idle (600 s) come from unit_settings; the
clock moves only when a test moves it, and the sweep runs only when a test calls it.
Someone "connected" is touched by every sweep, as the socket.io edge does for the
connections its process holds (Rig.connect / Rig.disconnect).
"""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from broker.errors import Conflict
from broker.lifecycle_store import at
from broker.views import iso
from tests.broker.unit import T0, FakeClock, Rig, as_identity, broker_rig, student, tutor

GRACE = 60.0


async def test_a_student_gone_past_grace_is_abandoned(rig: Rig) -> None:
    ana, bob = student("s-ana"), student("s-bob")
    gone = await rig.ask(ana)
    stays = await rig.ask(bob)
    await rig.flush()
    rig.notifier.clear()
    rig.disconnect(ana)
    rig.clock.advance(GRACE)  # exactly the grace period: still hers
    await rig.sweep()
    assert await rig.waiting() == [gone, stays]
    assert rig.notifier.sent == []
    rig.clock.advance(0.5)
    await rig.sweep()
    assert await rig.waiting() == [stays]
    row = await rig.request_row(gone)
    assert (row["status"], row["close_reason"]) == ("abandoned", "student_disconnected")
    assert row["closed_at"] == at(T0 + GRACE + 0.5)
    closed = {"request_id": gone, "status": "abandoned", "reason": "student_disconnected"}
    assert rig.notifier.of(to="student:s-ana") == [closed]
    assert rig.notifier.of(to="student:s-bob", event="queue:position") == [
        {"request_id": stays, "position": 1, "eta_s": None,
         "nobody_on_shift": True, "next_expected_at": None}
    ]
    assert await rig.ask(ana) != gone  # her hold went with the request


async def test_a_student_back_within_grace_keeps_their_place(rig: Rig) -> None:
    ana, bob = student("s-ana"), student("s-bob")
    first = await rig.ask(ana)
    second = await rig.ask(bob)
    rig.disconnect(ana)
    rig.clock.advance(GRACE - 1)
    await rig.sweep()
    state = await rig.connect(ana)
    assert state["request"]["id"] == first and state["request"]["position"] == 1
    for _ in range(10):  # ten grace periods later, still connected, still first
        rig.clock.advance(GRACE)
        await rig.sweep()
    assert await rig.waiting() == [first, second]
    assert (await rig.request_row(first))["status"] == "queued"
    assert rig.notifier.of(event="request:closed") == []


async def test_a_request_waiting_past_max_wait_expires(rig: Rig) -> None:
    ana, bob = student("s-ana"), student("s-bob")
    old = await rig.ask(ana)
    rig.clock.advance(100)
    young = await rig.ask(bob)
    rig.clock.now = T0 + rig.settings.queue_max_wait_s  # ana has waited exactly the limit
    await rig.sweep()
    assert await rig.waiting() == [old, young]
    rig.clock.advance(1)
    await rig.sweep()
    assert await rig.waiting() == [young]
    row = await rig.request_row(old)
    assert (row["status"], row["close_reason"]) == ("expired", "max_wait")
    assert rig.notifier.of(to="student:s-ana", event="request:closed") == [
        {"request_id": old, "status": "expired", "reason": "max_wait"}
    ]
    assert await rig.ask(ana)  # no longer holds a place


async def test_an_idle_session_times_out(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    rid = await rig.ask(ana)
    await rig.connect(ms_x)
    sid = (await rig.broker.accept(ms_x, rid))["session_id"]
    idle = rig.settings.session_idle_s
    rig.clock.advance(idle)
    await rig.sweep()
    assert await rig.is_open(sid)
    await rig.broker.send(ana, sid, "still thinking")  # activity restarts the idle clock
    rig.clock.advance(idle)
    await rig.sweep()
    assert await rig.is_open(sid)
    rig.clock.advance(1)
    await rig.sweep()
    assert not await rig.is_open(sid)
    ended = {"session_id": sid, "reason": "timeout"}
    assert rig.notifier.of(to="student:s-ana", event="session:ended") == [ended]
    assert rig.notifier.of(to="tutor:t-x", event="session:ended") == [ended]
    row = await rig.session_row(sid)
    assert (row["end_reason"], row["outcome"]) == ("timeout", "idle")
    assert row["ended_at"] == at(T0 + 2 * idle + 1)
    assert (await rig.request_row(rid))["status"] == "ended"
    assert await rig.load("t-x") == 0
    assert await rig.ask(ana)


async def test_a_student_gone_mid_session_ends_it(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    rid = await rig.ask(ana)
    await rig.connect(ms_x)
    sid = (await rig.broker.accept(ms_x, rid))["session_id"]
    rig.disconnect(ana)
    rig.clock.advance(GRACE)
    await rig.sweep()
    assert await rig.is_open(sid)
    rig.clock.advance(1)
    await rig.sweep()
    row = await rig.session_row(sid)
    assert (row["end_reason"], row["outcome"]) == ("timeout", "student_disconnected")
    assert await rig.waiting() == []  # not requeued: the student left
    assert rig.notifier.of(to="tutor:t-x", event="session:ended") == [
        {"session_id": sid, "reason": "timeout"}
    ]


async def test_a_lost_tutor_puts_the_request_back_at_the_head(rig: Rig) -> None:
    ana, bob, ms_x = student("s-ana"), student("s-bob"), tutor("t-x")
    rid = await rig.ask(ana)  # at T0
    rig.clock.advance(5)
    await rig.connect(ms_x)
    sid = (await rig.broker.accept(ms_x, rid))["session_id"]
    rig.clock.advance(5)
    later = await rig.ask(bob)  # at T0 + 10, so behind ana's original time
    await rig.broker.send(as_identity(ms_x), sid, "hello")
    await rig.sweep()  # the heartbeat: everyone connected was here at T0 + 10
    rig.notifier.clear()
    rig.disconnect(ms_x)  # the session keeps its tutor for one grace period from T0 + 10
    rig.clock.advance(GRACE)
    await rig.sweep()
    assert await rig.is_open(sid)
    rig.clock.advance(1)
    await rig.sweep()

    assert await rig.waiting() == [rid, later]
    requeued = await rig.request_row(rid)
    assert requeued["status"] == "queued" and requeued["rank"] == T0
    assert rig.notifier.of(to="tutor:t-x", event="session:ended") == [
        {"session_id": sid, "reason": "tutor_lost"}
    ]
    to_ana = [(s.event, s.data) for s in rig.notifier.sent if s.to == "student:s-ana"]
    assert to_ana == [
        ("session:ended", {"session_id": sid, "reason": "tutor_lost", "requeued": True}),
        # the only tutor is gone: no estimate from their past accepts, and nobody on shift
        # (issue 14)
        ("queue:position", {"request_id": rid, "position": 1, "eta_s": None,
                            "nobody_on_shift": True, "next_expected_at": ANY}),
    ]
    # bob was first while ana was in her session; now he is behind her again
    assert rig.notifier.of(to="student:s-bob") == [
        # the tutor is gone: nobody on shift; one came at this hour a week ago
        # (and so no estimate from the accepts of a tutor who left: issue 14)
        {"request_id": later, "position": 2, "eta_s": None, "nobody_on_shift": True,
         "next_expected_at": iso((T0 // 3600 + 7 * 24) * 3600)}
    ]
    session = await rig.session_row(sid)
    assert (session["end_reason"], session["messages_tutor"]) == ("tutor_lost", 1)
    request = await rig.request_row(rid)
    assert (request["status"], request["accepted_at"], request["queued_at"]) == (
        "queued",
        None,
        at(T0),
    )
    assert await rig.load("t-x") == 0
    with pytest.raises(Conflict):  # ana still holds her (requeued) place
        await rig.broker.request_help(ana, "math", "en")
    ms_y = tutor("t-y")
    await rig.connect(ms_y)
    again = await rig.broker.accept(ms_y, rid)
    assert again["request_id"] == rid and again["session_id"] != sid


async def test_requests_rebuilt_after_a_restart_get_a_full_grace(unit_db: str) -> None:
    """A restarted process (fresh memory backends) rebuilds the queue from the database in
    order, and gives students who have not reconnected a grace period from the restart."""
    clock = FakeClock()
    async with broker_rig(unit_db, clock=clock) as before:
        ids = [await before.ask(student(f"s-{i}")) for i in range(3)]
        await before.broker.cancel(student("s-1"), ids[1])
    clock.advance(1000)  # down for far longer than the grace period
    async with broker_rig(unit_db, clock=clock) as after:
        assert await after.waiting() == [ids[0], ids[2]]
        clock.advance(GRACE)
        await after.sweep()
        assert await after.waiting() == [ids[0], ids[2]]
        await after.connect(student("s-2"))  # one of them comes back
        clock.advance(1)
        await after.sweep()
        assert await after.waiting() == [ids[2]]
        assert (await after.request_row(ids[0]))["status"] == "abandoned"
