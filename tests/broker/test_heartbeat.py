"""A process whose sweep is held up on the database keeps its people present.

The sweep touches the process's connections first thing, then reads the database. With
PostgreSQL frozen (SIGSTOP, a black-holed network) every process's sweep waited in its
first read; when it came back, the first sweep through judged the other process's people
gone past the grace period, untouched since before the freeze, and ended their sessions
(`tutor_lost`, `timeout`) with everyone still connected. The fault suite's frozen-database
scenario found it; here the hold-up is made exact: one process's read waits on an event,
the fake clock moves far past the grace, and its heartbeat must still touch its people.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.broker.conftest import clients, stack, stack_settings, start_server
from tests.broker.harness import Client, student, tutor
from tests.broker.unit import FakeClock

__all__ = ["clients", "stack", "stack_settings", "start_server"]  # the fixtures used here

GRACE_S = 0.4  # a sweep interval of 0.1 s: the heartbeat looks every 0.05 s


async def _touched_at(server: Any, subject: str, now: float, within_s: float = 10) -> float:
    """When presence last saw ``subject``, once that is ``now`` (or the last value seen
    after ``within_s`` seconds of polling, for the assertion to show)."""
    deadline = time.monotonic() + within_s
    while True:
        seen = (await server.broker.presence.last_seen([subject], now)).get(subject, 0.0)
        if seen >= now or time.monotonic() > deadline:
            return float(seen)
        await asyncio.sleep(0.02)


async def test_heartbeats_go_on_while_the_sweep_waits_on_the_database(
    start_server: Any, stack: tuple[str, str | None, str], clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(time.time())
    held = await start_server(clock=clock, grace_seconds=GRACE_S)
    kid = await held.connect("/student", student("s-held", "elem", 2))
    tut = await held.connect("/tutor", tutor("t-held", "paper", ["en"]))
    clients += [kid, tut]
    subjects = sorted(held.broker.local_subjects())
    assert len(subjects) == 2

    waiting, release = asyncio.Event(), asyncio.Event()
    real_queued = held.broker.store.queued

    async def frozen(*args: Any, **kwargs: Any) -> Any:
        waiting.set()
        await release.wait()  # the database does not answer
        return await real_queued(*args, **kwargs)

    monkeypatch.setattr(held.broker.store, "queued", frozen)
    try:
        await asyncio.wait_for(waiting.wait(), 10)  # its own sweep is now held up there
        now = clock.advance(10 * GRACE_S)
        for subject in subjects:
            assert await _touched_at(held, subject, now) == now, subject
        assert await held.broker.judge.gone(subjects, now) == set()
        if stack[1] is not None:  # another process, on the same Redis, judges the same
            judge = await start_server(clock=clock, grace_seconds=GRACE_S)
            assert await judge.broker.judge.gone(subjects, now) == set()
    finally:
        release.set()
