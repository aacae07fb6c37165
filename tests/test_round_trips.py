"""broker.round_trips: concurrent calls share a send; order, answers and failures per call."""

from __future__ import annotations

import asyncio

import pytest

from broker.round_trips import RoundTrips


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def send(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [ValueError(i) if i < 0 else i * 10 for i in items]


async def on_its_way(item: int) -> tuple[Recorder, RoundTrips[int, int], asyncio.Future[int]]:
    """A call whose batch has been sent and is held there (until ``rec.gate`` is set)."""
    rec = Recorder()
    trips: RoundTrips[int, int] = RoundTrips("t", rec.send)
    rec.gate = asyncio.Event()
    call = asyncio.ensure_future(trips.call(item))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert rec.batches == [[item]]
    return rec, trips, call


async def test_calls_made_while_one_is_on_its_way_go_together_in_order() -> None:
    rec, trips, first = await on_its_way(1)
    rest = [asyncio.ensure_future(trips.call(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == 10 and await asyncio.gather(*rest) == [20, 30, 40]
    assert rec.batches == [[1], [2, 3, 4]] and trips.sent == 2


async def test_each_caller_gets_its_own_error() -> None:
    rec = Recorder()
    trips: RoundTrips[int, int] = RoundTrips("t", rec.send)
    got = await asyncio.gather(trips.call(1), trips.call(-1), return_exceptions=True)
    assert got[0] == 10 and isinstance(got[1], ValueError)


async def test_a_failed_send_fails_its_batch_and_the_next_is_still_sent() -> None:
    rec = Recorder()
    trips: RoundTrips[int, int] = RoundTrips("t", rec.send)
    rec.fail = ConnectionError("down")
    got = await asyncio.gather(trips.call(1), trips.call(2), return_exceptions=True)
    assert all(isinstance(g, ConnectionError) for g in got)
    rec.fail = None
    assert await trips.call(3) == 30


async def test_a_send_that_answers_the_wrong_count_fails_the_batch() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        return [1]

    trips: RoundTrips[int, int] = RoundTrips("short", short)
    with pytest.raises(RuntimeError, match="1 answers for 2"):
        await asyncio.gather(trips.call(1), trips.call(2))


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    rec = Recorder()
    trips: RoundTrips[int, int] = RoundTrips("t", rec.send)
    rec.gate = asyncio.Event()
    gone = asyncio.ensure_future(trips.call(1))
    kept = asyncio.ensure_future(trips.call(2))
    await asyncio.sleep(0)
    gone.cancel()
    rec.gate.set()
    assert await kept == 20 and gone.cancelled()


async def test_a_cancelled_sender_cancels_the_calls_it_held() -> None:
    rec, trips, held = await on_its_way(1)
    queued = asyncio.ensure_future(trips.call(2))
    await asyncio.sleep(0)
    assert trips._sender is not None
    trips._sender.cancel()
    got = await asyncio.gather(held, queued, return_exceptions=True)
    assert all(isinstance(g, asyncio.CancelledError) for g in got)
    assert rec.gate is not None
    rec.gate.set()
    assert await trips.call(3) == 30  # a new sender for the next call
