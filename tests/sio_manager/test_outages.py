"""Fan-out through Redis outages: local delivery never waits, publications are buffered and
re-published in order, broken subscriptions and dropped messages end in ``on_gap``.

Each test that breaks Redis has a redis-server of its own (``private_redis``) or reaches it
through a proxy it can cut (a network failure between one process and Redis); the shared
Redis is never touched. Outcomes are awaited with generous deadlines, never slept for.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.sio_manager.conftest import Cluster
from tests.sio_manager.harness import RedisServer, eventually, free_port, subscribed

pytestmark = pytest.mark.redis


def increasing(values: list[int]) -> bool:
    return all(x < y for x, y in itertools.pairwise(values))


@pytest.mark.parametrize("fault", ["refused", "stalled"])
async def test_local_clients_get_every_emit_while_redis_is_unreachable(
    private_redis: RedisServer, cluster: Cluster, fault: str
) -> None:
    if fault == "refused":
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    else:
        url = (await cluster.proxy(private_redis.port, stall=True)).url  # never answers
    a = await cluster.node(url, publish_timeout_s=0.5, max_age_s=3600)
    local = await cluster.member(a)

    async with asyncio.timeout(10):  # generous: each emit is an in-memory step
        for i in range(100):
            await a.emit(i)
    await local.has(100, "local delivery of all 100 emits")
    assert local.got == list(range(100))
    await eventually(lambda: a.manager.counters.publish_failures >= 1, "a failed publish")
    assert not a.manager.healthy
    assert a.manager.buffered == 100
    assert a.manager.counters.published == a.manager.counters.dropped == 0


async def test_emits_made_while_cut_off_are_republished_in_order(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    proxy, a, b, local, remote = await cluster.cut_off_pair(private_redis)

    await a.emit_all(range(50))
    await remote.has(50, "the emits made before the cut")

    await proxy.cut()
    await a.emit_all(range(50, 150))
    await local.has(150, "local delivery during the cut")
    await eventually(lambda: a.manager.counters.publish_failures >= 1, "a failed publish")
    assert not a.manager.healthy
    assert a.manager.buffered == 100

    await proxy.restore()
    await remote.has(150, "the buffered emits, re-published")
    assert remote.got == list(range(150))
    assert local.got == list(range(150))
    await eventually(lambda: a.manager.healthy and a.manager.buffered == 0, "a healthy again")
    assert a.manager.counters.dropped == 0
    # b's subscription never broke and nothing was dropped: b has no gap to report
    assert b.gap_calls == 0 and b.manager.counters.gaps == 0
    # a's own subscription went through the proxy too: a lost what b emitted meanwhile
    await eventually(lambda: a.gap_calls >= 1, "on_gap on the process that was cut off")


async def test_a_killed_subscription_calls_on_gap_and_resumes(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    a, b, _, remote = await cluster.pair(private_redis.url)
    await a.emit(0)
    await eventually(lambda: remote.got == [0], "the first emit")

    killed = await private_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed == 2
    await eventually(lambda: b.gap_calls >= 1, "on_gap on b")
    await eventually(lambda: a.gap_calls >= 1, "on_gap on a")
    await subscribed(a, b)
    assert b.manager.counters.resubscribed >= 1

    await a.emit_all(range(1, 21))
    await remote.has(21, "the emits after resubscribing")
    assert remote.got == list(range(21))
    assert a.manager.counters.publish_failures == 0


async def test_redis_restarted_empty_both_sides_recover_and_on_gap_fires(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    a, b, local, remote = await cluster.pair(private_redis.url)
    await a.emit_all(range(20))
    await remote.has(20, "the emits before the restart")

    await private_redis.kill()
    await a.emit_all(range(20, 70))
    await local.has(70, "local delivery while Redis is down")
    await eventually(
        lambda: not a.manager.healthy and not b.manager.healthy, "both to notice the outage"
    )
    assert a.manager.buffered > 0

    await private_redis.start()
    await eventually(lambda: a.gap_calls >= 1 and b.gap_calls >= 1, "on_gap on both")
    await subscribed(a, b)
    await eventually(lambda: a.manager.buffered == 0, "the backlog re-published")
    await a.emit_all(range(70, 90))
    await eventually(lambda: remote.got[-1:] == [89], "the emits after the restart")
    await eventually(lambda: a.manager.buffered == 0, "the last batch acknowledged")

    assert local.got == list(range(90))
    # b gets whatever of the backlog was re-published after it had resubscribed (the rest
    # is what its on_gap covers), never twice, never out of order
    assert increasing(remote.got)
    assert set(range(20)) | set(range(70, 90)) <= set(remote.got)
    assert a.manager.counters.publish_failures >= 1
    assert a.manager.counters.dropped == 0
    assert a.manager.counters.published == 90


async def test_a_full_buffer_drops_the_oldest_and_tells_every_process(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    proxy, a, b, local, remote = await cluster.cut_off_pair(private_redis, max_buffer=20)
    await a.emit_all(range(5))
    await remote.has(5, "the emits before the cut")

    await proxy.cut()
    await a.emit_all(range(5, 55))
    assert a.manager.buffered == 20
    assert a.manager.counters.dropped == 30
    assert a.manager.stats()["dropped"] == 30
    assert local.got[:5] == list(range(5))
    await local.has(55, "local delivery of every emit")

    await proxy.restore()
    await remote.has(25, "the newest 20 emits")
    assert remote.got == list(range(5)) + list(range(35, 55))
    # b's subscription never broke: its on_gap comes from a's notice of the drop
    await eventually(lambda: b.gap_calls >= 1, "on_gap on b, told by a")
    await eventually(lambda: a.manager.healthy and a.manager.buffered == 0, "a healthy again")
    assert a.manager.counters.dropped == 30


async def test_messages_older_than_max_age_are_dropped_and_reported(
    private_redis: RedisServer, cluster: Cluster
) -> None:
    proxy, a, b, _, remote = await cluster.cut_off_pair(private_redis, max_age_s=0.2)

    await proxy.cut()
    await a.emit_all(range(10))
    await eventually(lambda: a.manager.counters.dropped == 10, "the old messages dropped")
    assert a.manager.buffered == 0
    assert b.gap_calls == 0

    await proxy.restore()
    await eventually(lambda: b.gap_calls >= 1, "on_gap on b for the dropped messages")
    await eventually(lambda: a.manager.healthy, "a healthy again")
    await a.emit_all(range(10, 15))
    await remote.has(5, "the emits after the outage")
    assert remote.got == list(range(10, 15))
