"""The broker's periodic tasks (the sweep, the room watch) during a database outage: they
keep trying at their turns, and the outage is one log line per kind every 10 s, not a
traceback per turn (the room watch runs twice a second: a 14 s outage made 28 tracebacks
per process, the sweep 11 more). Anything that is not an outage is still logged in full."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from broker import service
from broker.outages import OutageLog
from tests.broker.unit import Rig, student
from tests.services import database_refused

TURNS = 4  # failures each task must have had before the log is judged



async def _fail_turns(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> dict[str, int]:
    broker = rig.broker
    monkeypatch.setattr(service, "ROOM_WATCH_S", 0.01)
    monkeypatch.setattr(type(broker), "sweep_interval", property(lambda self: 0.01))
    monkeypatch.setattr(broker, "_outages", OutageLog(service.log))  # a fresh pace
    turns = {"sweep": 0, "rooms": 0}
    enough = asyncio.Event()

    def failing(name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> None:
            turns[name] += 1
            if min(turns.values()) >= TURNS:
                enough.set()
            raise error

        return fail

    monkeypatch.setattr(broker, "sweep", failing("sweep"))
    monkeypatch.setattr(broker.rooms, "reconcile", failing("rooms"))
    tasks = [
        asyncio.create_task(broker._sweep_forever()),
        asyncio.create_task(broker._watch_rooms()),
    ]
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks)  # neither loop died of its failures
    return turns


async def test_an_outage_is_one_line_not_a_traceback_per_turn(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.service")
    turns = await _fail_turns(rig, monkeypatch, database_refused())
    assert min(turns.values()) >= TURNS
    lines = [r for r in caplog.records if r.name == "broker.service"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING and lines[0].exc_info is None
    assert "database unavailable" in lines[0].getMessage()


async def test_a_bug_in_a_periodic_task_is_logged_in_full(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.service")
    await _fail_turns(rig, monkeypatch, KeyError("a bug"))
    lines = [r for r in caplog.records if r.name == "broker.service"]
    assert lines and all(r.levelno == logging.ERROR and r.exc_info for r in lines)
    assert {r.getMessage() for r in lines} == {
        "the sweep failed; will retry", "the room watch failed; will retry"
    }


async def test_background_tasks_failing_in_an_outage_are_one_line(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A queue push that cannot read its queue (the next change or sweep pushes again):
    four queues' pushes in one outage were four tracebacks per process."""
    broker = rig.broker
    monkeypatch.setattr(broker, "_outages", OutageLog(service.log))
    caplog.set_level(logging.INFO, logger="broker.service")

    async def push(error: Exception) -> None:
        raise error

    tasks = [broker._spawn(push(database_refused()), f"push:queue-{i}") for i in range(4)]
    tasks.append(broker._spawn(push(KeyError("a bug")), "push:buggy"))
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn
    lines = [(r.levelno, r.getMessage(), bool(r.exc_info)) for r in caplog.records
             if r.name == "broker.service"]
    assert lines[0][0] == logging.WARNING and "database unavailable" in lines[0][1]
    assert not lines[0][2]
    assert lines[1:] == [(logging.ERROR, "background task push:buggy failed", True)]


async def test_a_throttle_redis_cannot_answer_lets_events_through_with_one_line(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: throttles are protection, not a record, so requests and cancels go on
    unthrottled; that was a warning with a traceback per event (~400 a process in an 8 s
    Redis restart under the fault suite's churn), now one line per outage kind."""
    broker = rig.broker
    monkeypatch.setattr(broker, "_outages", OutageLog(service.log))
    calls = 0

    async def unreachable(key: str) -> float:
        nonlocal calls
        calls += 1
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(broker.request_limiter, "allow_now", lambda key: None)  # ask Redis
    monkeypatch.setattr(broker.request_limiter, "allow", unreachable)
    caplog.set_level(logging.INFO, logger="broker.service")
    kid = student("s-unthrottled")
    for _ in range(5):
        request_id = await rig.ask(kid)
        await broker.cancel(kid, request_id)
    assert calls == 10
    lines = [
        r for r in caplog.records if r.name == "broker.service" and r.levelno >= logging.WARNING
    ]
    assert len(lines) == 1 and not lines[0].exc_info, [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith("redis unavailable: the request throttle failed")


async def test_boards_redis_cannot_drop_are_one_line(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A session ending while Redis is down cannot drop its whiteboard (it expires by its
    TTL): that was a warning with a traceback per ended session."""
    from broker import whiteboard

    monkeypatch.setattr(whiteboard, "outages", OutageLog(whiteboard.log))

    async def unreachable(session_id: str) -> None:
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(rig.broker.board.store, "drop", unreachable)
    caplog.set_level(logging.INFO, logger="broker.whiteboard")
    for i in range(5):
        await rig.broker.board.drop(f"session-{i}")
    lines = [r for r in caplog.records if r.name == "broker.whiteboard"]
    assert len(lines) == 1 and not lines[0].exc_info, [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith("redis unavailable: dropping an ended session")
