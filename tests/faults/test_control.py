"""The suite's control: the same churn with no fault. If this fails, suspect the clients or
the checks before the server (or the server is wrong even without faults)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import churn_and_check
from tests.faults.workload import CHURN_ENV, Churn, Timeline

pytestmark = pytest.mark.faults


async def test_churn_without_a_fault_keeps_every_invariant(
    start_cluster: StartCluster, populate: Populate
) -> None:
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, 0)
    timeline = Timeline("churn with no fault (control)", 0)

    async def no_fault(churn: Churn) -> None:
        pass

    report = await churn_and_check(
        cluster, people, timeline, no_fault, before_s=1.0, after_s=1.5
    )
    assert report.ok, report.table()
