"""One of two serve processes lost during request/cancel and accept/end churn: kill -9 (a
crash), or SIGTERM (a deploy, where the clients are told ``server:restart``)."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import check_exit, churn_and_check
from tests.faults.seeds import seeds
from tests.faults.workload import CHURN_ENV, Churn, Timeline

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("seed", seeds(1, 2))
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

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    assert report.ok, report.table()


async def test_sigterm_one_process_during_churn(
    start_cluster: StartCluster, populate: Populate
) -> None:
    """A deploy: the process stops accepting, tells its clients to come back elsewhere,
    finishes what is in flight (every call is answered) and exits within 10 s; nobody
    notices."""
    seed = 3
    timing = random.Random(seed)
    # The clients are told to come back after up to ~3 s (web/lifecycle.py spreads them):
    # a grace period shorter than that would end their sessions, so give them 5 s.
    cluster = await start_cluster(env=CHURN_ENV, grace_s=5.0)
    people = await populate(cluster, seed)
    timeline = Timeline(
        "SIGTERM of serve-1 during churn, then restarted", seed, answers_during=True
    )
    took: list[float] = []

    async def fault(churn: Churn) -> None:
        churn.wave()
        took.append(await cluster.terminate(1))
        await cluster.restart(1)

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    check_exit(report, took[0])
    moved = sum(p.connects > 1 for p in people.everyone)
    report.notes.append(f"{moved} clients reconnected")
    assert report.ok, report.table()
