"""PostgreSQL stopped for a few seconds during churn, then started again."""

from __future__ import annotations

import random

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import churn_and_check
from tests.faults.workload import CHURN_ENV, Churn, Timeline

pytestmark = pytest.mark.faults

OUTAGE_S = 2.0  # the operator stopped it for 10 s; the shape is the same


@pytest.mark.parametrize("seed", [1, 2])
async def test_postgres_stopped_during_churn(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    """While it is down every call is answered, with a documented code; a cancel answered
    with an error leaves the request queued (the student keeps their place, tutors see it);
    afterwards every invariant holds again."""
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    mode = ("fast", "immediate")[seed % 2]  # an operator's stop, or a crash
    timeline = Timeline(
        f"PostgreSQL stopped ({mode}) {OUTAGE_S} s during churn", seed, answers_during=True
    )

    async def fault(churn: Churn) -> None:
        await cluster.pg.outage(OUTAGE_S + timing.uniform(0, 0.5), mode)

    report = await churn_and_check(
        cluster, people, timeline, fault, before_s=timing.uniform(0.8, 1.2)
    )
    assert report.ok, report.table()
