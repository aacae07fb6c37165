"""Two faults at once, during churn and chat: what a lost host or a bad night looks like.

The other files take one fault at a time. Here:

* **a host lost**: one ``serve`` process killed -9 and Redis restarted empty at the same
  moment (they shared a machine that went away), the process started again a moment
  later. Everything in Redis is gone while half the clients are moving to the survivor.
* **PostgreSQL crashes while a process dies**: PostgreSQL stopped ``immediate`` (a crash)
  for two seconds, and one ``serve`` process killed -9 while it is down, started again
  once PostgreSQL is back. The survivor answers its calls with documented errors
  meanwhile, and the dead process's clients arrive on it during the outage.

* **SIGTERM while PostgreSQL is down or frozen, or Redis frozen**: an operator restarts a
  process during the outage (a frozen service stays frozen until the process has gone).
  It must exit within 10 s by itself (not by its watchdog), a frozen database (nothing
  answered, nothing closed) included: closing waits on it only so long
  (``broker.constants.CLOSE_SETTLE_S``, ``broker/db/closing.py``).

Afterwards the same invariants as every other fault must hold (``invariants.py``):
nothing queued invisible, nobody blocked, no session open in one place and closed in
another, no acknowledged message lost or shown twice, capacity equal to open sessions.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.faults.conftest import StartScenario
from tests.faults.invariants import check_exit
from tests.faults.seeds import kinds, seeds
from tests.faults.workload import Churn

pytestmark = pytest.mark.faults

FROZEN_AT_MOST_S = 12.0


@pytest.mark.parametrize("seed", seeds(1))
async def test_a_process_and_redis_lost_together_during_churn(
    scenario: StartScenario, seed: int
) -> None:
    run = await scenario(seed)
    cluster, timing, victim = run.cluster, run.timing, seed % 2
    down_s = timing.uniform(0.5, 1.0)

    async def fault(churn: Churn) -> None:
        churn.wave()  # requests, cancels, accepts, ends and messages in flight ...
        await asyncio.sleep(timing.uniform(0.0, 0.03))
        # ... when the host goes: the process and Redis at the same moment
        await asyncio.gather(cluster.kill9(victim), cluster.redis.restart_empty(down_s))
        await asyncio.sleep(timing.uniform(0.3, 0.8))
        await cluster.restart(victim)

    report = await run.churn(
        f"serve-{victim} killed -9 and Redis restarted empty ({down_s:.1f} s) together "
        "during churn, then serve restarted", fault,
    )
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(1))
async def test_postgres_crash_while_a_process_dies_during_churn(
    scenario: StartScenario, seed: int
) -> None:
    run = await scenario(seed)
    cluster, timing, victim = run.cluster, run.timing, (seed + 1) % 2
    outage_s = 2.0 + timing.uniform(0, 0.5)

    async def process_dies() -> None:
        await asyncio.sleep(timing.uniform(0.2, 0.8))  # PostgreSQL is down by now
        await cluster.kill9(victim)

    async def fault(churn: Churn) -> None:
        churn.wave()
        await asyncio.gather(cluster.pg.outage(outage_s, "immediate"), process_dies())
        await cluster.restart(victim)

    report = await run.churn(
        f"PostgreSQL crashed {outage_s:.1f} s and serve-{victim} killed -9 while it was "
        "down, during churn; restarted after", fault,
    )
    assert report.ok, report.table()


@pytest.mark.parametrize(
    ("how", "seed"), kinds([("down", 3), ("frozen", 3), ("redis-frozen", 3)])
)
async def test_sigterm_while_a_service_is_unavailable_during_churn(
    scenario: StartScenario, how: str, seed: int
) -> None:
    """An operator restarts a process while PostgreSQL is down (to "fix" it), or while it
    answers nothing, or while Redis does (frozen until the process has gone, and at most
    12 s, longer than the 10 s a deploy allows): the process still exits within 10 s by
    itself, having answered what it could (with documented codes: what needed the
    database changed nothing), and once the service is back every invariant holds."""
    run = await scenario(seed, grace_s=5.0)
    cluster, timing = run.cluster, run.timing
    pg = cluster.pg
    fault_s = 3.0 + timing.uniform(0, 0.5) if how == "down" else FROZEN_AT_MOST_S
    service = "Redis was frozen" if how == "redis-frozen" else f"PostgreSQL was {how}"
    took: list[float] = []

    async def deploy() -> None:
        await asyncio.sleep(timing.uniform(0.2, 0.6))  # the service is unavailable by now
        took.append(await cluster.terminate(0))

    async def fault(churn: Churn) -> None:
        churn.wave()
        if how == "down":
            await asyncio.gather(pg.outage(fault_s, "fast"), deploy())
        else:
            # Frozen for as long as the process takes to go (a process waiting on the
            # service would still be waiting), then a moment more; never past 12 s.
            freeze = pg.freeze if how == "frozen" else cluster.redis.freeze
            frozen = asyncio.create_task(freeze(fault_s))
            await deploy()
            await asyncio.sleep(0.5)
            frozen.cancel()  # the freeze's own ``finally`` lets the service go on
            with contextlib.suppress(asyncio.CancelledError):
                await frozen
        await cluster.restart(0)

    report = await run.churn(
        f"SIGTERM of serve-0 while {service} ({fault_s:.1f} s at most), during churn; "
        "restarted after", fault,
    )
    check_exit(report, took[0])
    log = cluster.servers[0].log.read_text(errors="replace")
    report.add(
        "the process stopped by itself, not by its shutdown watchdog",
        [line for line in log.splitlines() if "shutdown still running after" in line],
        1,
    )
    assert report.ok, report.table()
