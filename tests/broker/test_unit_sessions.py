"""Broker unit tests: chat relay, rate limiting by window, ending a session at most once.

Memory backends, a fake clock and a recording notifier (tests/broker/unit.py).
"""

from __future__ import annotations

import asyncio

import pytest

from broker.errors import Conflict, InvalidPayload, NotFound, RateLimited
from broker.identity import Identity, Tutor
from broker.lifecycle_store import at
from tests.broker.unit import T0, Rig, as_identity, student, tutor


async def open_session(rig: Rig, kid: Identity, who: Tutor) -> str:
    """``kid`` asks at the clock's time and ``who`` accepts; returns the session id."""
    rid = await rig.ask(kid)
    await rig.connect(who)
    return str((await rig.broker.accept(who, rid))["session_id"])


async def test_messages_are_numbered_relayed_and_counted(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    rig.notifier.clear()
    x = as_identity(ms_x)
    script = [(ana, "hi", 1.0), (x, "hello!", 41.0), (ana, "  2+2?  ", 2.0), (x, "4", 3.0)]
    for who, text, wait in script:
        rig.clock.advance(wait)
        message = await rig.broker.send(who, sid, text)
        assert message["text"] == text.strip()
    seqs = [m["seq"] for m in rig.notifier.of(to="student:s-ana", event="chat:message")]
    assert seqs == [1, 2, 3, 4]
    to_tutor = rig.notifier.of(to="tutor:t-x", event="chat:message")
    assert [(m["from"], m["text"]) for m in to_tutor] == [
        ("student", "hi"),
        ("tutor", "hello!"),
        ("student", "2+2?"),
        ("tutor", "4"),
    ]
    assert [m["id"] for m in to_tutor] == [f"{sid}.{n}" for n in (1, 2, 3, 4)]
    with pytest.raises(InvalidPayload):
        await rig.broker.send(ana, sid, "   ")
    with pytest.raises(InvalidPayload):
        await rig.broker.send(ana, sid, "x" * (rig.settings.chat_max_chars + 1))
    with pytest.raises(NotFound):  # not a participant
        await rig.broker.send(student("s-bob"), sid, "let me in")
    await rig.broker.end(x, sid, outcome="resolved", resolved=True)
    row = await rig.session_row(sid)
    assert (row["messages_student"], row["messages_tutor"]) == (2, 2)
    assert (row["chars_student"], row["chars_tutor"]) == (len("hi") + len("2+2?"), 7)
    assert row["first_response_s"] == 42.0  # accepted at T0, the tutor first wrote at T0+42
    assert (row["end_reason"], row["outcome"]) == ("tutor", "resolved")
    assert row["ended_at"] == at(T0 + 47)
    with pytest.raises(NotFound):
        await rig.broker.send(ana, sid, "still there?")


async def test_chat_is_rate_limited_per_sender_by_window(rig: Rig) -> None:
    """3 messages per 10 s per sender (unit_settings), a sliding window."""
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    for offset in (0.0, 1.0, 2.0):
        rig.clock.now = T0 + offset
        await rig.broker.send(ana, sid, f"at {offset}")
    rig.clock.now = T0 + 9.999
    with pytest.raises(RateLimited):
        await rig.broker.send(ana, sid, "too soon")
    await rig.broker.send(as_identity(ms_x), sid, "the tutor has a limit of their own")
    rig.clock.now = T0 + 10.0  # the message of T0 leaves the window
    await rig.broker.send(ana, sid, "one more")
    rig.clock.now = T0 + 10.5  # T0+1, T0+2 and T0+10 are still in it
    with pytest.raises(RateLimited):
        await rig.broker.send(ana, sid, "too soon again")
    rig.clock.now = T0 + 11.0
    await rig.broker.send(ana, sid, "and another")
    # refused messages were neither relayed nor numbered
    relayed = rig.notifier.of(to="student:s-ana", event="chat:message")
    assert [m["seq"] for m in relayed] == [1, 2, 3, 4, 5, 6]
    assert "too soon" not in str(relayed)


async def test_a_session_ends_at_most_once(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x")
    sid = await open_session(rig, ana, ms_x)
    rig.notifier.clear()
    rig.clock.advance(30)
    results = await asyncio.gather(
        rig.broker.end(ana, sid),
        rig.broker.end(as_identity(ms_x), sid, outcome="resolved"),
        rig.broker.end(ana, sid),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, NotFound) for r in results) == 2
    winner = "student" if results[0] is None or results[2] is None else "tutor"
    ended = {"session_id": sid, "reason": winner}
    assert rig.notifier.of(to="student:s-ana", event="session:ended") == [ended]
    assert rig.notifier.of(to="tutor:t-x", event="session:ended") == [ended]
    row = await rig.session_row(sid)
    assert (row["end_reason"], row["ended_at"]) == (winner, at(T0 + 30))
    request = await rig.request_row(row["request_id"])
    assert (request["status"], request["close_reason"]) == ("ended", winner)
    assert await rig.load("t-x") == 0
    # a sweep afterwards finds nothing to end
    rig.clock.advance(rig.settings.session_idle_s + 1)
    await rig.sweep()
    assert len(rig.notifier.of(event="session:ended")) == 2
    # and the student may ask again
    assert await rig.ask(ana)


async def test_the_tutor_records_the_outcome_after_the_student_ended(rig: Rig) -> None:
    ana, ms_x, other = student("s-ana"), tutor("t-x"), tutor("t-other")
    sid = await open_session(rig, ana, ms_x)
    with pytest.raises(NotFound):  # not ended yet: session:end carries it
        await rig.broker.record_outcome(ms_x, sid, "resolved", "geometry", True)
    await rig.broker.end(ana, sid)
    with pytest.raises(NotFound):
        await rig.broker.record_outcome(other, sid, "resolved", "geometry", True)
    await rig.broker.record_outcome(ms_x, sid, "resolved", "geometry", True)
    row = await rig.session_row(sid)
    assert (row["end_reason"], row["outcome"], row["tutored_subject"]) == (
        "student",
        "resolved",
        "geometry",
    )


async def test_a_student_in_a_session_cannot_queue_again(rig: Rig) -> None:
    ana = student("s-ana")
    sid = await open_session(rig, ana, tutor("t-x"))
    with pytest.raises(Conflict):
        await rig.broker.request_help(ana, "math", "en")
    state = await rig.connect(ana)
    assert state["request"] is None and state["session"]["session_id"] == sid
