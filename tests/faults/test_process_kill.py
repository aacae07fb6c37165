"""One of two serve processes lost during request/cancel and accept/end churn: kill -9 (a
crash), or SIGTERM (a deploy, where the clients are told ``server:restart``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import StartScenario
from tests.faults.invariants import check_exit
from tests.faults.seeds import seeds
from tests.faults.workload import Churn

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_kill_9_one_process_during_churn(scenario: StartScenario, seed: int) -> None:
    run = await scenario(seed)
    cluster, timing, victim = run.cluster, run.timing, seed % 2

    async def fault(churn: Churn) -> None:
        churn.wave()  # requests, cancels, accepts, ends and messages in flight ...
        await asyncio.sleep(timing.uniform(0.0, 0.03))
        await cluster.kill9(victim)  # ... when the process dies
        await asyncio.sleep(timing.uniform(0.5, 1.0))  # + 1-2 s to start again
        await cluster.restart(victim)

    report = await run.churn(f"kill -9 of serve-{victim} during churn, then restarted", fault)
    assert report.ok, report.table()


async def test_sigterm_one_process_during_churn(scenario: StartScenario) -> None:
    """A deploy: the process stops accepting, tells its clients to come back elsewhere,
    finishes what is in flight (every call is answered) and exits within 10 s; nobody
    notices."""
    # The clients are told to come back after up to ~3 s (web/lifecycle.py spreads them):
    # a grace period shorter than that would end their sessions, so give them 5 s.
    run = await scenario(3, grace_s=5.0)
    cluster = run.cluster
    took: list[float] = []

    async def fault(churn: Churn) -> None:
        churn.wave()
        took.append(await cluster.terminate(1))
        await cluster.restart(1)

    report = await run.churn(
        "SIGTERM of serve-1 during churn, then restarted", fault, answers_during=True
    )
    check_exit(report, took[0])
    moved = sum(p.connects > 1 for p in run.people.everyone)
    report.notes.append(f"{moved} clients reconnected")
    assert report.ok, report.table()
