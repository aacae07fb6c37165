"""kill -9 of one of two serve processes during request/cancel and accept/end churn."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import check
from tests.faults.workload import CHURN_ENV, Churn, Timeline, churn_through

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("seed", [1, 2])
async def test_kill_9_one_process_during_churn(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    victim = seed % 2
    timeline = Timeline(f"kill -9 of serve-{victim} during churn, then restarted", seed)

    async def fault(churn: Churn) -> None:
        churn.wave()  # requests, cancels, accepts, ends and messages in flight ...
        await asyncio.sleep(timing.uniform(0.0, 0.03))
        await cluster.kill9(victim)  # ... when the process dies
        await asyncio.sleep(timing.uniform(0.5, 1.0))  # + 1-2 s to start again
        await cluster.restart(victim)

    async with asyncio.timeout(60):
        churn = await churn_through(
            people, timeline, fault, before_s=timing.uniform(0.8, 1.2), after_s=0.5
        )
        report = await check(cluster, people, timeline, churn)
    assert report.ok, report.table()
