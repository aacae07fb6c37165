"""Presence that one process cannot reach (broker/presence_judge.py, broker/presence_blind.py).

A process cut off from Redis alone (a partition: the other processes reach it) cannot touch
its people; the fault suite's ``test_one_process_cut_off_from_redis`` found the other
process then ending their sessions past the grace period while they chatted. Here the
partition is made exact (the cut-off process's presence refuses every call), the fake
clock moves far past the grace, and both processes sweep. And once presence has failed,
events stop asking it until the heartbeat gets an answer, on both stacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from broker import presence_blind
from broker.outages import OutageLog
from broker.presence import MemoryPresence
from broker.presence_judge import PresenceJudge
from tests.broker.conftest import clients, stack, stack_settings, start_server
from tests.broker.harness import Client, Server
from tests.broker.unit import FakeClock
from tests.presence.test_peer_presence import _chat  # both of a session, on one process

__all__ = ["clients", "stack", "stack_settings", "start_server"]  # the fixtures used here


class Refusing:
    """Stands in for a presence store's calls: refuses each, and counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise ConnectionError("presence unreachable (test)")


def cut_off(server: Server, monkeypatch: pytest.MonkeyPatch) -> Refusing:
    refusing = Refusing()
    for name in ("touch", "last_seen", "forget"):
        monkeypatch.setattr(server.broker.presence, name, refusing)
    return refusing


async def _open(server: Server, session_id: str) -> bool:
    return bool(await server.broker.store.open_sessions(session_id=session_id))


async def test_a_process_cut_off_from_presence_alone_keeps_its_people(
    start_server: Any, stack: tuple[str, str | None, str], clients: list[Client],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="broker.presence_judge")
    if stack[1] is None:
        pytest.skip("one process only without Redis")
    clock = FakeClock(time.time())
    cut = await start_server(clock=clock)
    other = await start_server(clock=clock)
    grace = cut.settings.grace_seconds
    kid, tut, sid = await _chat(cut, clients, "cut")  # both connected to the cut-off one
    clock.advance(4 * other.broker.sweep_interval)  # presence settled on both
    await cut.sweep()
    await other.sweep()

    refusing = cut_off(cut, monkeypatch)
    for _ in range(3):  # each sweep of the cut-off process says so, past the grace
        clock.advance(grace)
        await cut.sweep()
        await other.sweep()
        assert await _open(other, sid), "ended while both were connected to the cut-off one"
        assert other.broker.judge.others_blind and not cut.broker.judge.others_blind
    assert refusing.calls >= 3

    monkeypatch.undo()  # the route is back: touched, then the declaration withdrawn
    clock.advance(other.broker.sweep_interval)
    await cut.sweep()
    await other.sweep()
    assert not other.broker.judge.others_blind
    assert await _open(other, sid)
    said = [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "broker.presence_judge"]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO], said  # once each
    assert cut.broker.judge.process in said[0][1]

    # A process that dies blind: its declaration goes stale, its people are judged again.
    cut_off(cut, monkeypatch)
    for loop in (cut.broker._sweeper, cut.broker._heartbeat):
        loop.cancel()  # nothing of it sweeps any more
    await cut.broker.judge.vouch(clock(), touched=False)
    await kid.close()
    await tut.close()
    clock.advance(grace + presence_blind.fresh_within_s(other.broker.sweep_interval) + 1)
    await other.sweep()
    assert not other.broker.judge.others_blind
    assert not await _open(other, sid), "a stale declaration still held the judgement"


async def test_events_stop_asking_presence_once_it_failed(
    start_server: Any, clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    kid, tut, sid = await _chat(server, clients, "breaker")
    refusing = cut_off(server, monkeypatch)
    assert not await server.broker.heartbeat(clock())
    assert refusing.calls == 1

    for _ in range(3):  # answered at once, from the database, without presence
        state = await kid.call("session:state", {})
        assert state["ok"] and state["session"]["session_id"] == sid
        assert "tutor_present" not in state["session"]  # cannot tell: not said gone
        assert (await tut.call("tutor:state", {}))["ok"]
        assert (await kid.call("chat:send", {"session_id": sid, "text": "hi"}))["ok"]
    assert refusing.calls == 1, "an event asked presence while it was failing"

    await server.sweep()  # the heartbeat keeps asking
    assert refusing.calls == 2
    monkeypatch.undo()
    assert await server.broker.heartbeat(clock())
    assert server.broker.judge.answering


async def test_an_older_sweeps_late_answer_does_not_undo_a_newer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two sweeps of one process overlap (the loop's, held up on a slow read, and one run
    beside it): the newer one learns that nobody is blind any more; the older one's
    answer, about an earlier time, arrives after it and is dropped. Found by this file's
    first test on a slow machine, where the test's sweep and the loop's overlapped."""

    class Shared:
        shared = True

    gates: dict[float, asyncio.Event] = {10.0: asyncio.Event(), 20.0: asyncio.Event()}
    answers = {10.0: presence_blind.Peers("serve-0 (blind at 10)"), 20.0: presence_blind.Peers()}

    async def peers(engine: Any, process: str, now: float, *within: float) -> Any:
        await gates[now].wait()
        return answers[now]

    async def written(engine: Any, process: str, now: float) -> None:
        """This process's own row (the test has no database)."""

    monkeypatch.setattr(presence_blind, "peers", peers)
    monkeypatch.setattr(presence_blind, "withdraw", written)
    judge = PresenceJudge(
        Shared(), None, 4.0, lambda: 1.0, OutageLog(logging.getLogger("test"))  # type: ignore[arg-type]
    )
    older = asyncio.create_task(judge.vouch(10.0, touched=True))
    newer = asyncio.create_task(judge.vouch(20.0, touched=True))
    gates[20.0].set()
    await newer
    assert not judge.others_blind
    gates[10.0].set()
    await older
    assert not judge.others_blind, "the older sweep's answer undid the newer one's"


async def test_gone_and_here_come_from_one_read_as_each_would() -> None:
    """The staff figures' one read: gone past the grace (only when judging), here within
    the bound, each as its own method says; nobody gone and everyone here when presence
    cannot tell."""
    judge = PresenceJudge(
        MemoryPresence(), None, 10.0, lambda: 1.0, OutageLog(logging.getLogger("test"))  # type: ignore[arg-type]
    )
    assert await judge.touch(["student:old"], 80.0, probe=True)
    assert await judge.touch(["student:near"], 97.0)
    assert await judge.touch(["student:away"], 94.0)
    subjects = ["student:old", "student:near", "student:away"]
    gone, here = await judge.gone_and_here(subjects, 100.0, 4.0, judge=True)
    assert gone == {"student:old"}
    assert here == {"student:near"}
    assert gone == await judge.gone(subjects, 100.0)
    assert here == await judge.here(subjects, 100.0, 4.0)
    assert (await judge.gone_and_here(subjects, 100.0, 4.0, judge=False))[0] == set()

    judge._failed("a test", ConnectionError("presence unreachable (test)"))
    assert await judge.gone_and_here(subjects, 100.0, 4.0, judge=True) == (set(), set(subjects))
