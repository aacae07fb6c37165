"""Presence people can see (issue 14), end to end over both stacks with real socket.io
clients: the other side of a session is told when someone's last connection closes (with
how long their place is kept) and when they are back; a tutor who signs out ends their
sessions at once, the students told and back in line; wait estimates and the staff's
"tutors available" count only tutors connected now. Time is a fake clock the test moves
before each sweep, so nothing waits on the wall clock.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.broker.conftest import clients, fetch_all, stack, stack_settings, start_server
from tests.broker.harness import Client, Server, staff, student, tutor
from tests.broker.unit import FakeClock

__all__ = ["clients", "stack", "stack_settings", "start_server"]  # the fixtures used here


async def _chat(server: Server, clients: list[Client], name: str) -> tuple[Client, Client, str]:
    kid = await server.connect("/student", student(f"s-{name}", "elem", 2))
    tut = await server.connect("/tutor", tutor(f"t-{name}", "paper", ["en"]))
    clients += [kid, tut]
    await tut.call("tutor:status", {"status": "available"})
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    accepted = await tut.call("help:accept", {"request_id": rid})
    assert accepted["ok"] and "student_present" not in accepted["session"]
    return kid, tut, accepted["session"]["session_id"]


async def _start(start_server: Any) -> tuple[Server, FakeClock]:
    clock = FakeClock(time.time())
    return await start_server(clock=clock), clock


def _settle(server: Server) -> float:
    """Seconds after which presence can judge (three sweeps after the process started,
    which a loaded machine may make late) and a departure is due: far within the grace."""
    return float(server.broker.here_within_s + 2 * server.broker.sweep_interval)


async def _drop(server: Server, clock: FakeClock, client: Client, subject: str) -> None:
    """Close ``client`` (the last connection of ``subject``), then sweep once presence can
    judge and the departure is due."""
    await client.close()
    await server.disconnected(subject)
    clock.advance(_settle(server))
    await server.sweep()


async def test_student_told_when_tutor_drops_comes_back_and_is_gone(
    start_server: Any, clients: list[Client]
) -> None:
    server, clock = await _start(start_server)
    grace = server.settings.grace_seconds
    kid, tut, sid = await _chat(server, clients, "drop")
    await tut.close()
    await server.disconnected("tutor:t-drop")
    await server.sweep()  # too soon: another process may still hold a connection
    clock.advance(_settle(server))
    await server.sweep()
    lost = await kid.until("peer:presence", lambda e: e["present"] is False)
    assert lost["session_id"] == sid and lost["who"] == "tutor"
    assert 0 < lost["back_within_s"] <= grace
    assert lost["back_within_s"] >= grace - _settle(server) - 1
    reloaded = await server.connect("/student", student("s-drop", "elem", 2))
    clients.append(reloaded)  # the student's page reloads meanwhile: told again
    assert (await reloaded.next("session:state"))["session"]["tutor_present"] is False
    clock.advance(1)
    back = await server.connect("/tutor", tutor("t-drop", "paper", ["en"]))
    clients.append(back)
    again = await kid.until("peer:presence", lambda e: e["present"] is True)
    assert again == {"session_id": sid, "who": "tutor", "present": True}
    assert (await back.call("chat:send", {"session_id": sid, "text": "sorry"}))["ok"]

    # gone again, past the grace this time: back in line, told so, with no made-up wait
    await _drop(server, clock, back, "tutor:t-drop")
    await kid.until("peer:presence", lambda e: e["present"] is False)
    clock.advance(grace + 1)
    await server.sweep()
    ended = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended["reason"] == "tutor_lost" and ended["requeued"] is True
    position = await kid.next("queue:position")
    assert position["position"] == 1 and position["eta_s"] is None
    assert position["nobody_on_shift"] is True
    # and what the page asks for next (or after a reload) says the same
    state = (await kid.call("session:state", {}))["request"]
    assert (state["position"], state["eta_s"], state["nobody_on_shift"]) == (1, None, True)


async def test_a_reload_is_not_announced_but_leaving_is(
    start_server: Any, clients: list[Client]
) -> None:
    server, clock = await _start(start_server)
    kid, tut, sid = await _chat(server, clients, "reload")
    await kid.close()
    await server.disconnected("student:s-reload")
    clock.advance(0.5)
    kid2 = await server.connect("/student", student("s-reload", "elem", 2))
    clients.append(kid2)
    clock.advance(_settle(server))
    await server.sweep()
    # a marker after the sweep: pushes to one connection arrive in order
    assert (await kid2.call("chat:send", {"session_id": sid, "text": "back"}))["ok"]
    await tut.until("chat:message", lambda m: m["text"] == "back")
    # the tutor heard only that the student is here, never that they left
    events = tut.drain("peer:presence")
    assert [(e["who"], e["present"]) for e in events] == [("student", True)]
    # now the student really leaves: the tutor is told
    await _drop(server, clock, kid2, "student:s-reload")
    left = await tut.until("peer:presence", lambda e: e["who"] == "student")
    assert left["present"] is False and left["session_id"] == sid
    console = await server.connect("/tutor", tutor("t-reload", "paper", ["en"]))
    clients.append(console)  # the console reloads meanwhile: told again
    [session] = (await console.next("tutor:state"))["sessions"]
    assert session["session_id"] == sid and session["student_present"] is False


async def test_sign_out_ends_sessions_at_once(start_server: Any, clients: list[Client]) -> None:
    server, _ = await _start(start_server)
    kid, tut, sid = await _chat(server, clients, "out")
    desk = await server.connect("/staff", staff())
    clients.append(desk)
    answer = await tut.call("tutor:sign_out", {})
    assert answer == {"ok": True, "ended": 1}
    ended = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended == {
        "session_id": sid, "reason": "tutor_lost", "detail": "signed_out", "requeued": True,
    }
    position = await kid.next("queue:position")
    assert position["position"] == 1 and position["eta_s"] is None
    [row] = await fetch_all(
        server.settings.database_url,
        "select end_reason, outcome from tutoring_sessions where id = :id", id=sid,
    )
    assert (row["end_reason"], row["outcome"]) == ("tutor_lost", "signed_out")
    [state] = await fetch_all(
        server.settings.database_url,
        "select status, open_sessions from tutor_states where tutor_id = 't-out'",
    )
    assert (state["status"], state["open_sessions"]) == ("away", 0)
    # still connected for a moment, but signed out: not counted anywhere
    figures = (await desk.call("staff:live", {}))["figures"]
    assert (figures["tutors_available"], figures["tutors_busy"]) == (0, 0)
    assert (await tut.call("tutor:sign_out", {})) == {"ok": True, "ended": 0}


async def test_estimates_and_figures_count_only_connected_tutors(
    start_server: Any, clients: list[Client]
) -> None:
    server, clock = await _start(start_server)
    tut = await server.connect("/tutor", tutor("t-here", "paper", ["en"]))
    desk = await server.connect("/staff", staff())
    clients += [tut, desk]
    await tut.call("tutor:status", {"status": "available"})
    kid = await server.connect("/student", student("s-first", "elem", 2))
    clients.append(kid)
    first = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]
    assert first["eta_s"] is not None and "nobody_on_shift" not in first
    assert (await desk.call("staff:live", {}))["figures"]["tutors_available"] == 1
    await tut.close()  # the browser closed; the status still says available
    await server.disconnected("tutor:t-here")
    clock.advance(server.broker.here_within_s + 1)  # far inside the grace period
    await server.sweep()
    assert (await desk.call("staff:live", {}))["figures"]["tutors_available"] == 0
    server.broker._counts = None  # the estimate's counts are at most a second old
    other = await server.connect("/student", student("s-second", "elem", 2))
    clients.append(other)
    second = (await other.call("help:request", {"subject": "math", "language": "en"}))["request"]
    assert second["eta_s"] is None and second["nobody_on_shift"] is True
    # the first student closed the tab too (still within the grace: still in line); a tutor
    # who accepts them is told they are not here
    await kid.close()
    await server.disconnected("student:s-first")
    clock.advance(server.broker.here_within_s + 1)
    await server.sweep()
    late = await server.connect("/tutor", tutor("t-late", "paper", ["en"]))
    clients.append(late)
    accepted = await late.call("help:accept", {"request_id": first["id"]})
    assert accepted["ok"] and accepted["session"]["student_present"] is False


async def test_another_process_still_holding_the_tutor_is_not_a_departure(
    start_server: Any, clients: list[Client]
) -> None:
    """Scaled stack: a tutor with a tab on each of two processes closes one; the other
    process's heartbeat keeps them there, so nobody is told they left until both close."""
    server, clock = await _start(start_server)
    if server.settings.redis_url is None:
        pytest.skip("one process only without Redis")
    other = await start_server(clock=clock)
    kid, tut, sid = await _chat(server, clients, "two")
    second = await other.connect("/tutor", tutor("t-two", "paper", ["en"]))
    clients.append(second)
    await tut.close()
    await server.disconnected("tutor:t-two")
    clock.advance(server.broker.sweep_interval)
    await other.sweep()  # the other process's heartbeat, after the close (within a sweep)
    clock.advance(_settle(server))
    await server.sweep()  # this process sees that touch: no departure to announce
    assert (await kid.call("chat:send", {"session_id": sid, "text": "still there?"}))["ok"]
    await kid.until("chat:message", lambda m: m["text"] == "still there?")
    assert [e["present"] for e in kid.drain("peer:presence")] == [True]  # the second tab
    await _drop(other, clock, second, "tutor:t-two")
    lost = await kid.until("peer:presence", lambda e: e["present"] is False)
    assert lost["session_id"] == sid
