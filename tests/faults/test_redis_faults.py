"""Redis losing its data (FLUSHALL, or a restart with nothing saved) during churn and chat,
Redis frozen (nothing answered, nothing closed), and Redis dropping its pub/sub connections
during chat."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import check, churn_and_check
from tests.faults.seeds import kinds, seeds
from tests.faults.workload import CHURN_ENV, Churn, Timeline, churn_through, pair_up

pytestmark = pytest.mark.faults

PARTITION_GRACE_S = 3.0

@pytest.mark.parametrize(
    ("how", "seed"),
    kinds([("flushall", 1), ("flushall", 2), ("restart-empty", 1), ("restart-empty", 2)]),
)
async def test_redis_loses_its_data_during_churn(
    start_cluster: StartCluster, populate: Populate, how: str, seed: int
) -> None:
    """Sessions and queues come back from the database; no session whose participants are
    connected is ended, no tutor loses their status, no message id is reused, nobody is
    blocked by a stale one-open-request lock."""
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    down_s = timing.uniform(0.5, 1.0)
    what = "FLUSHALL" if how == "flushall" else f"restarted empty ({down_s:.1f} s down)"
    timeline = Timeline(f"Redis {what} during churn and chat", seed)

    async def fault(churn: Churn) -> None:
        churn.wave()
        await asyncio.sleep(timing.uniform(0.0, 0.03))
        if how == "flushall":
            await cluster.redis.flushall()
        else:
            await cluster.redis.restart_empty(down_s)

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(2))
async def test_redis_frozen_during_churn(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    """Redis answers nothing for longer than the grace period and a client's wait
    (frozen: connections open, nothing closed): every call is still answered meanwhile
    (the throttles and presence give up after ``REDIS_WAIT_S``, the fan-out buffers),
    nobody is judged gone for it, nothing acknowledged is lost, and afterwards every
    invariant holds."""
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    freeze_s = 5.0 + timing.uniform(0, 0.5)
    timeline = Timeline(
        f"Redis frozen {freeze_s:.1f} s during churn and chat", seed, answers_during=True
    )

    async def fault(churn: Churn) -> None:
        churn.wave()
        await cluster.redis.freeze(freeze_s)

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_pubsub_connections_killed_during_chat(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    """Twelve sessions chatting across the two processes while Redis drops every pub/sub
    connection twice, and a third of them ended right after: every acknowledged message
    still reaches the other participant once, in order, and every session:ended reaches
    the other side (pushed, or learned through session:sync after server:resync, without
    waiting for the 30 s quiet-spell sync)."""
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    pairs = await pair_up(people)
    timeline = Timeline("Redis pub/sub connections killed twice during chat", seed, prompt=True)

    async def fault(churn: Churn) -> None:
        for _ in range(2):
            await cluster.redis.kill_pubsub()
            await asyncio.sleep(timing.uniform(0.3, 0.6))
        for student, tutor, session_id in pairs[::3]:
            await timing.choice([student, tutor]).end_session(session_id)

    async with asyncio.timeout(60):
        await churn_through(
            people,
            timeline,
            fault,
            before_s=timing.uniform(0.8, 1.2),
            after_s=0.5,
            chat_only=True,
        )
        report = await check(cluster, people, timeline)
    assert report.ok, report.table()


@pytest.mark.parametrize(("how", "seed"), kinds([("cut", 1), ("hold", 2), ("slow", 1)]))
async def test_one_process_cut_off_from_redis(
    start_cluster: StartCluster, populate: Populate, how: str, seed: int
) -> None:
    """One process alone loses its route to Redis for two grace periods during churn and
    chat, while the other reaches Redis as usual (a partition, not an outage: ``cut``
    resets its connections and refuses new ones, ``hold`` answers nothing; or ``slow``, 20
    ms more each way): every call is still answered, the other process judges nobody gone
    who is connected to the cut-off one, nothing acknowledged is lost, and afterwards
    every invariant holds."""
    timing = random.Random(seed)
    # A 3 s grace: the cut-off process's people were last touched at most a sweep (0.75 s)
    # before the cut, and it declares itself within a sweep and the bound (1 s) after it,
    # so the grace must exceed 2.5 s (broker/presence_blind.py).
    cluster = await start_cluster(grace_s=PARTITION_GRACE_S, env=CHURN_ENV, redis_links=[0])
    link = cluster.redis_links[0]
    people = await populate(cluster, seed)
    seconds = 2 * cluster.grace_s + timing.uniform(0, 0.5)
    timeline = Timeline(
        f"serve-0 alone cut off from Redis ({how}) {seconds:.1f} s during churn and chat",
        seed,
        answers_during=True,
    )

    async def fault(churn: Churn) -> None:
        churn.wave()
        await link.fail_for(how, seconds)

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    assert report.ok, report.table()
