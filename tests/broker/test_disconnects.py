"""Grace periods, reconnection, and restarts rebuilding the queue from the database.

End to end, for the wiring: the edge keeps connected people present, and a sweep acts on
who left. Time is a fake clock that the test advances before calling the sweep, so no
outcome depends on how fast the machine is; the limits themselves (both sides of the grace,
expiry and idle periods) are tested in test_unit_sweep.py.
"""

from __future__ import annotations

import asyncio
import time

from broker import request_rollup
from broker.db.engine import create_engine
from tests.broker.conftest import fetch_all
from tests.broker.harness import forget_redis, student, tutor
from tests.broker.unit import FakeClock


async def _status(server, rid: str) -> str:
    [row] = await fetch_all(
        server.settings.database_url, "select status from help_requests where id = :id", id=rid
    )
    return str(row["status"])


async def test_student_keeps_place_within_grace(start_server, clients: list) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    grace = server.settings.grace_seconds
    a = await server.connect("/student", student("s-a", "elem", 2))
    b = await server.connect("/student", student("s-b", "elem", 2))
    clients += [a, b]
    rid_a = (await a.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    await b.call("help:request", {"subject": "math", "language": "en"})
    await a.close()
    await server.disconnected("student:s-a")
    clock.advance(grace / 2)
    await server.sweep()
    back = await server.connect("/student", student("s-a", "elem", 2))
    clients.append(back)
    state = await back.next("session:state")
    assert state["request"]["id"] == rid_a and state["request"]["position"] == 1
    clock.advance(grace * 2)  # connected again: this process's sweeps keep her present
    await server.sweep()
    assert await _status(server, rid_a) == "queued"
    assert await server.position(rid_a) == 1


async def test_student_gone_past_grace_is_abandoned(start_server, clients: list) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    a = await server.connect("/student", student("s-gone", "elem", 2))
    b = await server.connect("/student", student("s-stay", "elem", 2))
    clients += [a, b]
    rid = (await a.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    await b.call("help:request", {"subject": "math", "language": "en"})
    await a.close()
    await server.disconnected("student:s-gone")
    clock.advance(server.settings.grace_seconds + 1)
    await server.sweep()
    await b.until("queue:position", lambda m: m["position"] == 1)
    assert await _status(server, rid) == "abandoned"


async def test_reconnect_mid_session_gets_session_state(start_server, clients: list) -> None:
    server = await start_server()
    kid = await server.connect("/student", student("s-mid", "elem", 2))
    t = await server.connect("/tutor", tutor("t-mid", "paper", ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    await kid.close()
    kid2 = await server.connect("/student", student("s-mid", "elem", 2))
    t2 = await server.connect("/tutor", tutor("t-mid", "paper", ["en"]))
    clients += [kid2, t2]
    state = await kid2.next("session:state")
    assert state["session"]["session_id"] == sid
    tstate = await t2.next("tutor:state")
    assert [s["session_id"] for s in tstate["sessions"]] == [sid]
    assert (await kid2.call("chat:send", {"session_id": sid, "text": "back"}))["ok"]
    assert (await t.next("chat:message"))["text"] == "back"


async def test_lost_tutor_puts_request_back_at_head(start_server, clients: list) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    kid = await server.connect("/student", student("s-lt", "elem", 2))
    later = await server.connect("/student", student("s-later", "elem", 2))
    t = await server.connect("/tutor", tutor("t-lost", "paper", ["en"]))
    clients += [kid, later, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    await later.call("help:request", {"subject": "math", "language": "en"})
    await t.close()
    await server.disconnected("tutor:t-lost")
    clock.advance(server.settings.grace_seconds + 1)
    await server.sweep()
    ended = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended["reason"] == "tutor_lost" and ended["requeued"] is True
    position = await kid.until("queue:position", lambda m: m["request_id"] == rid)
    assert position["position"] == 1
    assert await server.position(rid) == 1
    assert await _status(server, rid) == "queued"
    [session] = await fetch_all(
        server.settings.database_url,
        "select end_reason from tutoring_sessions where id = :id",
        id=sid,
    )
    assert session["end_reason"] == "tutor_lost"


async def test_a_requeued_request_keeps_its_first_acceptance_and_counts_both_sessions(
    start_server, clients: list
) -> None:
    """The staff reports' read model (broker/request_rollup.py) is written by the accepting
    transactions: after a tutor is lost and a second one accepts, the request's
    ``first_accepted_at`` is the first session's, ``session_count`` is 2, and nothing in
    the database disagrees with its sessions."""
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    kid = await server.connect("/student", student("s-rm", "elem", 2))
    first = await server.connect("/tutor", tutor("t-rm1", "paper", ["en"]))
    clients += [kid, first]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid1 = (await first.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    await first.close()
    await server.disconnected("tutor:t-rm1")
    clock.advance(server.settings.grace_seconds + 1)
    await server.sweep()
    await kid.until("session:ended", lambda e: e["session_id"] == sid1)
    clock.advance(30)
    second = await server.connect("/tutor", tutor("t-rm2", "paper", ["en"]))
    clients.append(second)
    sid2 = (await second.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    url = server.settings.database_url
    sessions = {
        row["id"]: row["accepted_at"]
        for row in await fetch_all(url, "select id, accepted_at from tutoring_sessions")
    }
    [row] = await fetch_all(
        url, "select first_accepted_at, accepted_at, session_count from help_requests"
        " where id = :id", id=rid,
    )
    assert row["session_count"] == 2
    assert row["first_accepted_at"] == sessions[sid1] != sessions[sid2] == row["accepted_at"]
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await request_rollup.mismatches(conn) == []
    finally:
        await engine.dispose()


async def test_restart_rebuilds_queue_in_order(stack_settings, start_server, clients: list) -> None:
    server = await start_server()
    kids = [await server.connect("/student", student(f"s-rs{i}", "elem", 4)) for i in range(4)]
    clients += kids
    ids = [
        (await k.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
        for k in kids
    ]
    for k in kids:
        await k.close()
    await server.stop()
    if stack_settings.redis_url:
        # Redis loses its data too: the database alone must bring the queue back.
        await forget_redis(stack_settings)
    again = await start_server()
    rows, total = await again.broker.store.queue("paper:en")
    assert [row["id"] for row in rows] == ids and total == 4


async def test_redis_losing_its_data_changes_nothing(
    stack_settings, start_server, clients: list
) -> None:
    """Redis holds nothing that must survive: after it loses everything, the queue, the open
    session and everyone's place are as they were, and nobody is taken for gone. (On the
    embedded stack, the process's own presence is what is lost.)"""
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    kid = await server.connect("/student", student("s-fl", "elem", 4))
    other = await server.connect("/student", student("s-fl2", "elem", 4))
    t = await server.connect("/tutor", tutor("t-fl", "paper", ["en"]))
    clients += [kid, other, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    waiting = (await other.call("help:request", {"subject": "math", "language": "en"}))[
        "request"
    ]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    if stack_settings.redis_url:
        await forget_redis(stack_settings)
    else:
        server.broker.presence.forget_all()  # type: ignore[attr-defined]
    clock.advance(server.settings.grace_seconds * 3)
    await server.sweep()
    assert await server.position(waiting) == 1
    assert (await server.broker.store.open_sessions(session_id=sid))[0]["id"] == sid
    sent = await kid.call("chat:send", {"session_id": sid, "text": "still here"})
    assert sent["ok"] and sent["message"]["seq"] == 1


async def test_a_person_leaves_when_their_last_tab_here_closes(start_server, clients: list) -> None:
    """Two tabs of one student: closing one leaves her present; closing the other is her
    departure (the edge counts connections per person rather than scanning them all)."""
    server = await start_server()
    first = await server.connect("/student", student("s-a", "elem", 2))
    second = await server.connect("/student", student("s-a", "elem", 2))
    other = await server.connect("/student", student("s-b", "elem", 2))
    clients += [first, second, other]
    assert {"student:s-a", "student:s-b"} <= set(server.broker.local_subjects())
    await first.close()
    await asyncio.sleep(0.2)  # the disconnect reaches the server; nothing should change
    assert "student:s-a" in server.broker.local_subjects()
    assert "student:s-a" not in server.broker._left
    await second.close()
    await server.disconnected("student:s-a")
    assert "student:s-a" in server.broker._left
    assert "student:s-b" in server.broker.local_subjects()
