"""A Redis that answers nothing (frozen, a black-holed network) holds no event.

What an event asks of Redis it can do without: the throttles (protection, not a record)
and presence. Redis refusing fails fast and the event goes on; Redis answering nothing
made every `help:request`, `help:cancel` and `chat:send` wait in the throttle, and every
session's end wait to drop its whiteboard, for as long as it lasted (the fault suite's
Redis frozen 5 s: 64 of 88 calls unanswered within 4 s). Now each waits at most
``REDIS_WAIT_S`` and goes on as when Redis refuses. Here the wait is made exact: the
calls to Redis never return, and the bound is 0.2 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from broker import service as service_module
from broker import whiteboard as whiteboard_module
from broker.outages import OutageLog
from tests.broker.conftest import StartServer
from tests.broker.harness import Client, student, tutor

WAIT_S = 0.2


@pytest.fixture
def unanswered(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """A short bound, and what stands for a Redis that never answers (set it to answer)."""
    monkeypatch.setattr(service_module, "REDIS_WAIT_S", WAIT_S)
    monkeypatch.setattr(whiteboard_module, "REDIS_WAIT_S", WAIT_S)
    return asyncio.Event()


async def test_events_go_on_when_the_throttles_and_presence_do_not_answer(
    start_server: StartServer, clients: list[Client], unanswered: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start_server()
    broker = server.broker
    monkeypatch.setattr(broker, "_outages", OutageLog(service_module.log))  # a fresh pace
    kid = await server.connect("/student", student("s-frozen", "elem", 3))
    tut = await server.connect("/tutor", tutor("t-frozen", "paper", ["en"]))
    clients += [kid, tut]
    await tut.call("tutor:status", {"status": "available"})

    async def never(*args: Any, **kwargs: Any) -> Any:
        await unanswered.wait()  # never set: Redis answers nothing
        raise AssertionError("unreachable")

    for limiter in (broker.request_limiter, broker.chat_limiter):
        monkeypatch.setattr(limiter, "allow_now", lambda key: None)  # no lease: ask the store
        monkeypatch.setattr(limiter, "allow", never)
    for call in ("touch", "last_seen", "gone", "forget"):
        monkeypatch.setattr(broker.presence, call, never)
    monkeypatch.setattr(broker.board.store, "drop", never)
    caplog.set_level(logging.INFO)

    asked = await kid.call("help:request", {"subject": "math", "language": "en"}, timeout=5)
    assert asked["ok"], asked
    accepted = await tut.call("help:accept", {"request_id": asked["request"]["id"]}, timeout=5)
    assert accepted["ok"], accepted
    session_id = accepted["session"]["session_id"]
    sent = await kid.call("chat:send", {"session_id": session_id, "text": "hi"}, timeout=5)
    assert sent["ok"], sent
    assert (await kid.call("session:state", {}, timeout=5))["ok"]
    ended = await tut.call("session:end", {"session_id": session_id}, timeout=5)
    assert ended["ok"], ended
    await asyncio.wait_for(broker.sweep(), 5)  # the sweep too: it judges nobody meanwhile

    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # one paced line per kind: the throttles' (the chat's came within the same 10 s)
    assert [m for m in said if "the request throttle failed (TimeoutError: no answer in time)"
            in m], said
    assert not [m for m in said if "the chat throttle" in m], said
    assert not [r for r in caplog.records if r.exc_info]
