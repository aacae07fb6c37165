"""A process cut off from Redis alone hands its clients over (broker/presence_judge.py
``hand_over``, web/hand_over.py): once blind for ``hand_over_after_s`` while another
process sees presence, it tells its clients ``server:restart`` and turns new ones away
(``/healthz`` 503, socket.io refused), until it sees again or nobody does. Real socket.io
clients, two processes on Redis and the database, a fake clock and explicit sweeps; the
cut is exact (the cut-off process's presence refuses every call, as in test_partition)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
import socketio

from broker import presence_blind
from broker.metrics import REGISTRY
from broker.presence_judge import PresenceJudge
from tests.broker.conftest import clients, stack, stack_settings, start_server
from tests.broker.harness import Client, Server
from tests.broker.unit import FakeClock, student
from tests.presence.test_partition import cut_off
from tests.presence.test_peer_presence import _chat
from web.hand_over import HAND_OVER

__all__ = ["clients", "stack", "stack_settings", "start_server"]  # the fixtures used here


async def _health(server: Server) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as resp:
        return resp.status, await resp.json()


async def _sweep(*servers: Server) -> None:
    for server in servers:
        await server.sweep()


async def _seeing_and_blind_peers_end(
    start_server: Any, monkeypatch: pytest.MonkeyPatch, *, leave: bool
) -> tuple[Server, FakeClock]:
    """Three processes, one cut off from Redis; once the one that stays has learnt that
    another sees and another is blind, those two end: their loops stop, and they remove
    their rows as a stopping process does (``leave``) or not (killed outright). Returns
    the one that stays and the clock."""
    clock = FakeClock(time.time())
    stays, seeing, blind = [await start_server(clock=clock) for _ in range(3)]
    cut_off(blind, monkeypatch)
    await _sweep(seeing, blind, stays)
    judge: PresenceJudge = stays.broker.judge
    assert judge.others_see and judge.others_blind
    for gone in (seeing, blind):
        for loop in (gone.broker._sweeper, gone.broker._heartbeat):
            loop.cancel()
        if leave:
            await gone.broker.judge.leave()
    return stays, clock


async def test_a_process_blind_alone_hands_its_clients_over_until_it_sees(
    start_server: Any, stack: tuple[str, str | None, str], stack_settings: Any,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    if stack[1] is None:
        pytest.skip("one process only without Redis")
    clock = FakeClock(time.time())
    cut = await Server(stack_settings, clock, gated=True).start()
    try:
        other = await start_server(clock=clock)
        judge: PresenceJudge = cut.broker.judge
        watch = cut.test_server.app[HAND_OVER]  # type: ignore[union-attr]
        kid, tut, _ = await _chat(cut, clients, "handed")
        clock.advance(4 * other.broker.sweep_interval)
        await _sweep(cut, other)

        cut_off(cut, monkeypatch)
        clock.advance(other.broker.sweep_interval)
        await _sweep(cut, other, cut)
        await watch.check()
        assert not watch.handing_over, "handed over at the first blind sweep"
        assert (await _health(cut))[0] == 200

        clock.advance(judge.hand_over_after_s)  # blind long enough, the other one sees
        await _sweep(other, cut)
        assert judge.hand_over(clock()) and not other.broker.judge.hand_over(clock())
        handed = REGISTRY.get_sample_value("hh_hand_overs_total") or 0.0
        await watch.check()
        assert REGISTRY.get_sample_value("hh_hand_overs_total") == handed + 1
        for client in (kid, tut):
            told = await client.next("server:restart")
            assert 0 < told["retry_after_ms"] <= 20_000
        assert await _health(cut) == (503, {"ok": False, "handing_over": True})
        with pytest.raises(socketio.exceptions.ConnectionError):  # turned away: 503
            await cut.connect("/student", student("s-new", "elem", 2))
        assert (await _health(other))[0] == 200
        # where they come back: the other process serves them
        moved = await other.connect("/student", student("s-handed", "elem", 2))
        clients.append(moved)
        assert (await moved.call("session:state", {}))["ok"]

        cut_off(other, monkeypatch)  # now Redis is gone for both: nobody is better elsewhere
        clock.advance(other.broker.sweep_interval)
        await _sweep(other, cut)
        assert not judge.hand_over(clock())
        await watch.check()
        assert not watch.handing_over and (await _health(cut))[0] == 200

        monkeypatch.undo()  # both see again: the cut one is not blind any more
        clock.advance(other.broker.sweep_interval)
        await _sweep(other, cut)
        assert judge.blind_since is None and not judge.hand_over(clock())
        assert watch.episodes == 1
    finally:  # its clients first: the server's stop would wait for their websockets
        for client in clients:
            await client.close()
        await cut.stop()


async def test_a_process_that_stops_while_it_sees_is_no_longer_a_peer_that_sees(
    start_server: Any, stack: tuple[str, str | None, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping, a process that sees presence removes its row at once (else a blind one
    could hand its clients over to it for two sweeps more); a blind one keeps its row
    (its people were not touched: nobody may judge them before it goes stale)."""
    if stack[1] is None:
        pytest.skip("one process only without Redis")
    stays, _ = await _seeing_and_blind_peers_end(start_server, monkeypatch, leave=True)
    judge: PresenceJudge = stays.broker.judge
    await _sweep(stays)
    assert not judge.others_see, "a stopped process still counted as one that sees"
    assert judge.others_blind, "a blind process's row went when it stopped"


async def test_a_killed_process_stops_counting_as_one_that_sees_before_a_blind_one_goes_stale(
    start_server: Any, stack: tuple[str, str | None, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed outright (no row removed), a process that saw presence stops counting as a
    peer to hand clients over to after ``seeing_within_s``; a killed blind one still keeps
    everyone from being judged until its row is stale (``fresh_within_s``, longer)."""
    if stack[1] is None:
        pytest.skip("one process only without Redis")
    stays, clock = await _seeing_and_blind_peers_end(start_server, monkeypatch, leave=False)
    judge: PresenceJudge = stays.broker.judge

    sweep_s = stays.broker.sweep_interval
    seeing_s = presence_blind.seeing_within_s(sweep_s)
    fresh_s = presence_blind.fresh_within_s(sweep_s)
    assert seeing_s < fresh_s
    clock.advance(seeing_s - 0.5)
    await _sweep(stays)
    assert judge.others_see, "a peer that saw a sweep ago no longer counted"
    clock.advance(1.0)
    await _sweep(stays)
    assert not judge.others_see, "a killed process still counted as one that sees"
    assert judge.others_blind, "a killed blind process's row went stale too soon"
    clock.advance(fresh_s - seeing_s)
    await _sweep(stays)
    assert not judge.others_blind
