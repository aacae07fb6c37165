"""The client model the invariants rely on, without any server: a wrong model would make
the fault suite blame the broker for the client's mistakes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.broker.harness import student
from tests.faults.invariants import offline_at, online_during
from tests.faults.people import Call, SessionLog, Student

pytestmark = pytest.mark.faults


def msg(seq: int, text: str | None = None, session: str = "s1") -> dict[str, object]:
    return {"session_id": session, "id": f"{session}.{seq}", "seq": seq, "text": text or f"m{seq}"}


def test_messages_are_shown_in_seq_order_and_a_gap_holds_the_rest_back() -> None:
    log = SessionLog("s1")
    log.add(msg(1), "push")
    log.add(msg(3), "push")
    assert [m["seq"] for m in log.delivered] == [1] and log.gap
    log.add(msg(2), "sync")
    assert [m["seq"] for m in log.delivered] == [1, 2, 3] and not log.gap
    assert log.recovered == 1 and log.arrivals == [1, 3]


def test_the_same_message_twice_is_shown_once_and_a_reused_id_is_caught() -> None:
    log = SessionLog("s1")
    log.add(msg(1), "own")
    log.add(msg(1), "push")
    assert len(log.delivered) == 1 and log.pushed_twice == 1 and not log.reused
    log.add(msg(1, "another text"), "push")  # seq restarted: same id, other message
    assert len(log.delivered) == 1 and len(log.reused) == 1


def test_an_answer_asked_before_a_push_does_not_undo_the_push() -> None:
    log = SessionLog("s1")
    asked_at = time.time() - 1  # the state was asked for before the session started
    log.set_open(False, asked_at)
    assert log.open
    log.end({"session_id": "s1", "reason": "tutor"})
    log.set_open(True)  # an ended session never reopens
    assert not log.open and log.ended


def test_presence_follows_the_offline_intervals() -> None:
    class Someone:
        first_connect = 100.0
        offline = [[110.0, 112.0], [120.0, 0.0]]

    person = Someone()
    assert online_during(person, 105, 111)  # type: ignore[arg-type]
    assert not online_during(person, 110.5, 111.5)  # type: ignore[arg-type]
    assert online_during(person, 111, 113)  # type: ignore[arg-type]
    assert not online_during(person, 121, 125)  # type: ignore[arg-type]
    assert not online_during(person, 90, 99)  # type: ignore[arg-type]
    assert offline_at(person, 111) == (110.0, 112.0)  # type: ignore[arg-type]
    assert offline_at(person, 115) is None  # type: ignore[arg-type]
    assert offline_at(person, 112.5, slack=1.0) == (110.0, 112.0)  # type: ignore[arg-type]


async def test_a_pushed_empty_state_makes_a_waiting_student_ask_with_its_request() -> None:
    """The state each connect pushes carries no ``ended``. A student whose request a tutor
    took, and whose chat ended, while it heard nothing (its process cut off from Redis,
    then a hand-over) must not take that push as "waits no more" and forget the request:
    it asks with the request's id, learns the ended chat and syncs its messages. Before,
    the model forgot the request, and the fault suite blamed the broker for the chat's
    messages it never asked for (seeds 19 and 53 of the hand-over scenario)."""
    asked: list[tuple[str, Any]] = []
    ended = {"session_id": "s1", "request_id": "r1"}
    answers = {
        "session:state": {"ok": True, "request": None, "session": None,
                          "ended": {"session": ended, "reason": "tutor"}},
        "session:sync": {"ok": True, "session": None, "messages": [msg(1)],
                         "ended": {"session_id": "s1", "reason": "tutor"}},
    }

    async def call(event: str, payload: Any = None, *_: Any, **__: Any) -> Call:
        asked.append((event, payload))
        return Call("st", event, payload, time.time(), code="ok", result=answers[event])

    s = Student(student("st", "elem", 3), None, 0, "en", "q")  # type: ignore[arg-type]
    s.call = call  # type: ignore[method-assign]
    s.set_request("r1")
    s.apply_state({"request": None, "session": None, "ended": None, "booked": None})
    assert s.request == "r1"  # not concluded from a push
    while s._tasks:
        await asyncio.gather(*list(s._tasks))
    assert asked == [("session:state", {"request_id": "r1"}),
                     ("session:sync", {"session_id": "s1", "after_seq": 0})]
    log = s.sessions["s1"]
    assert [m["id"] for m in log.delivered] == ["s1.1"] and not log.open and log.ended
    assert s.request is None
