"""Fan-out while Redis is well: order across processes, batching, the listener's checks.

Two socket.io servers (each an aiohttp app on a real port with its own FanoutManager) and
real python-socketio clients. These tests use the shared Redis under a unique channel
prefix; the ones that restart, kill or flush Redis are in test_outages.py.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis
import socketio

from broker.redis_keys import RedisKeys
from tests.sio_manager.conftest import Cluster
from tests.sio_manager.harness import ROOM, RedisServer, eventually

pytestmark = pytest.mark.redis


async def test_a_burst_of_1000_emits_arrives_in_order_on_the_other_process(
    redis_url: str, cluster: Cluster
) -> None:
    a, b, local, remote = await cluster.pair(redis_url)

    for i in range(500):  # one after the other
        await a.emit(i)
    # then 500 at once from as many tasks: the order is the order of the emit calls
    await asyncio.gather(*(a.emit(i) for i in range(500, 1000)))

    await remote.has(1000, "1000 emits on the other process")
    await local.has(1000, "1000 emits on the same process")
    assert remote.got == list(range(1000))
    assert local.got == list(range(1000))
    await eventually(lambda: a.manager.buffered == 0, "the last batch acknowledged")
    assert a.manager.counters.published == 1000
    assert a.manager.counters.batches < 1000, "concurrent emits were not batched"
    assert b.manager.counters.received == 1000
    assert a.manager.counters.publish_failures == a.manager.counters.dropped == 0
    assert a.gap_calls == b.gap_calls == 0


async def test_a_burst_faster_than_redis_waits_for_it_instead_of_dropping(
    redis_url: str, cluster: Cluster
) -> None:
    # a's member is in another room: a's emits have no local recipient and never yield
    a, _, _, remote = await cluster.pair(redis_url, a_room="elsewhere", max_buffer=1000,
                                         max_batch=50)  # fmt: skip

    for i in range(5000):
        await a.emit(i)
        assert a.manager.buffered <= a.manager.high_water

    await remote.has(5000, "all 5000 emits")
    assert remote.got == list(range(5000))
    assert a.manager.counters.dropped == 0


async def test_an_emit_to_a_connection_of_this_process_is_not_published(
    redis_url: str, cluster: Cluster
) -> None:
    a, _, local, remote = await cluster.pair(redis_url)
    sid = local.client.get_sid("/")
    assert sid is not None

    await a.sio.emit("tick", {"i": 0}, to=sid)
    await a.emit(1)  # to the room: published
    await eventually(lambda: local.got == [0, 1], "both emits on the same process")
    await eventually(lambda: remote.got == [1], "the room's emit on the other process")
    await eventually(lambda: a.manager.buffered == 0, "the publication acknowledged")
    assert a.manager.counters.kept_local == 1
    assert a.manager.counters.published == 1


async def test_on_received_sees_what_other_processes_delivered_here(
    redis_url: str, cluster: Cluster
) -> None:
    """``on_received`` is told each emit from another process once it has been handed to
    the local clients (what the server uses to know what its clients were shown), never
    its own emits; a hook that raises is logged and delivery goes on."""
    a, b, local, remote = await cluster.pair(redis_url)
    seen_on_b: list[tuple[str, object]] = []
    seen_on_a: list[tuple[str, object]] = []

    def note_on_b(event: str, data: object) -> None:
        seen_on_b.append((event, data))
        if data == {"i": 1}:
            raise RuntimeError("a broken hook")

    b.manager.on_received = note_on_b
    a.manager.on_received = lambda event, data: seen_on_a.append((event, data))
    for i in range(3):
        await a.emit(i)
    await remote.has(3, "three emits on the other process")
    assert seen_on_b == [("tick", {"i": 0}), ("tick", {"i": 1}), ("tick", {"i": 2})]
    await local.has(3, "three emits on the same process")
    assert seen_on_a == []


async def test_close_publishes_what_is_still_buffered(redis_url: str, cluster: Cluster) -> None:
    a, _, _, remote = await cluster.pair(redis_url)  # a listens too: close stops that as well

    await asyncio.gather(*(a.emit(i) for i in range(300)))
    await a.manager.close()

    assert a.manager.buffered == 0
    await remote.has(300, "every emit made before close")
    assert remote.got == list(range(300))


async def test_close_ends_a_listener_whose_cancellation_a_read_swallowed(
    redis_url: str, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py's read with a timeout was seen to swallow the listener's cancellation (a
    test's stop then waited a minute for it): close() still ends it, within its bound."""
    from redis.asyncio.client import PubSub

    from web import sio_manager

    real = PubSub.get_message
    swallowed: list[bool] = []

    async def swallows_one_cancel(self: PubSub, *args: object, **kwargs: object) -> object:
        try:
            return await real(self, *args, **kwargs)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)
            return None

    monkeypatch.setattr(PubSub, "get_message", swallows_one_cancel)
    a, _, _, _ = await cluster.pair(redis_url)
    await eventually(lambda: a.manager._subscribed, "a's subscription")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(10):  # before the fix: the listener went on, close waited on
        await a.manager.close()
    assert swallowed == [True]
    assert a.manager.thread.done()
    assert loop.time() - started < sio_manager.TASKS_STOP_S


async def test_an_upstream_write_only_emitter_still_reaches_clients(
    redis_url: str, cluster: Cluster
) -> None:
    _, remote = await cluster.single(redis_url)
    external = socketio.AsyncRedisManager(
        redis_url, channel=RedisKeys(cluster.prefix).socketio_channel, write_only=True
    )
    for i in range(5):
        await external.emit("tick", {"i": i}, room=ROOM, namespace="/")
    await remote.has(5, "the external emitter's messages")
    assert remote.got == list(range(5))
    if external.redis is not None:
        await external.redis.aclose()


async def test_the_listener_skips_duplicates_reports_jumps_and_ignores_junk(
    redis_url: str, cluster: Cluster
) -> None:
    b, remote = await cluster.single(redis_url)
    channel = b.manager.channel

    def batch(first: int, count: int, gap: int = 0) -> bytes:
        messages = [
            {"method": "emit", "event": "tick", "data": [{"i": first + k}], "binary": False,
             "namespace": "/", "room": ROOM, "skip_sid": None, "callback": None,
             "host_id": "other-process"}
            for k in range(count)
        ]  # fmt: skip
        return orjson.dumps(
            {"method": "batch", "host_id": "other-process", "seq": first, "gap": gap,
             "messages": messages}
        )  # fmt: skip

    client = aioredis.from_url(redis_url)
    try:
        await client.publish(channel, batch(1, 3))  # 1, 2, 3
        await client.publish(channel, batch(1, 3))  # the same batch again (a retry)
        await client.publish(channel, b"not json")
        await client.publish(channel, b"[1, 2]")
        await client.publish(channel, b'{"method": "batch", "seq": "x"}')
        await client.publish(channel, batch(2, 4))  # 2..5: only 4 and 5 are new
        await remote.has(5, "messages 1..5")
        assert b.gap_calls == 0
        await client.publish(channel, batch(9, 1))  # 6..8 never arrived
        await eventually(lambda: b.gap_calls == 1, "on_gap for the jump from 5 to 9")
        await remote.has(6, "message 9")
    finally:
        await client.aclose()
    assert remote.got == [1, 2, 3, 4, 5, 9]
    assert b.manager.counters.duplicates == 5
    assert b.manager.counters.gaps == 1
    assert b.manager.healthy


async def test_flushall_does_not_break_the_subscription(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    a, b, _, remote = await cluster.pair(private_redis.url)

    await a.emit(0)
    await eventually(lambda: remote.got == [0], "the first emit")
    await private_redis.command("FLUSHALL")
    await a.emit(1)
    await remote.has(2, "the emit after FLUSHALL")
    assert remote.got == [0, 1]
    assert a.gap_calls == b.gap_calls == 0
    assert a.manager.counters.resubscribed == b.manager.counters.resubscribed == 0
