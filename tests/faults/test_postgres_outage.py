"""PostgreSQL stopped for a few seconds during churn, then started again; frozen (no
answer, nothing closed) for a few seconds; taking no writes (a failover) for a few
seconds; HTTP while it is down."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from broker import tokens
from tests.broker.harness import SECRET, staff
from tests.faults.conftest import StartCluster, StartScenario
from tests.faults.seeds import kinds, seeds
from tests.faults.workload import Churn

pytestmark = pytest.mark.faults

OUTAGE_S = 2.0  # the issue's operator stopped it for 10 s; the shape is the same
FREEZE_S = 2.2  # past the cluster's 2 s grace: presence must not wait on the database


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_postgres_stopped_during_churn(scenario: StartScenario, seed: int) -> None:
    """While it is down every call is answered, with a documented code; a cancel answered
    with an error leaves the request queued (the student keeps their place, tutors see it);
    afterwards every invariant holds again."""
    run = await scenario(seed)
    mode = ("fast", "immediate")[seed % 2]  # an operator's stop, or a crash

    async def fault(churn: Churn) -> None:
        await run.cluster.pg.outage(OUTAGE_S + run.timing.uniform(0, 0.5), mode)

    report = await run.churn(
        f"PostgreSQL stopped ({mode}) {OUTAGE_S} s during churn", fault, answers_during=True
    )
    assert report.ok, report.table()


async def test_http_during_a_postgres_outage_is_503_then_works(
    start_cluster: StartCluster,
) -> None:
    """A staff read and a metrics scrape over HTTP while PostgreSQL is stopped are answered
    503 ``unavailable`` with ``Retry-After`` by both processes (one log line, no traceback:
    the suite checks), and the same calls work once PostgreSQL is back."""
    cluster = await start_cluster()
    bearer = {"Authorization": "Bearer " + tokens.issue(SECRET, staff())}

    async def answers(http: aiohttp.ClientSession) -> list[tuple[int, str, str | None]]:
        found = []
        for index in range(len(cluster.servers)):
            for path in ("/api/stats/summary", "/metrics"):
                async with http.get(cluster.url(index) + path, headers=bearer) as response:
                    code = None
                    if response.status != 200:
                        code = (await response.json(content_type=None)).get("code")
                    found.append(
                        (response.status, response.headers.get("Retry-After", ""), code)
                    )
        return found

    async with aiohttp.ClientSession() as http:
        assert {status for status, _, _ in await answers(http)} == {200}
        await asyncio.to_thread(cluster.pg.stop, "immediate")
        try:
            for _ in range(3):
                assert await answers(http) == [(503, "5", "unavailable")] * 4
        finally:
            await asyncio.to_thread(cluster.pg.start)
        for _ in range(50):  # each process's pool finds PostgreSQL again on its next read
            found = await answers(http)
            if {status for status, _, _ in found} == {200}:
                break
            await asyncio.sleep(0.1)
        assert {status for status, _, _ in found} == {200}, found


@pytest.mark.parametrize("seed", seeds(1))
async def test_postgres_frozen_during_churn(scenario: StartScenario, seed: int) -> None:
    """PostgreSQL stops answering without closing anything (SIGSTOP, as over a black-holed
    network) for longer than the grace period: calls wait, and when it answers again
    nobody connected is judged gone (each process's heartbeat went on while its sweep
    waited on the database) and every invariant holds."""
    run = await scenario(seed)

    async def fault(churn: Churn) -> None:
        await run.cluster.pg.freeze(FREEZE_S + run.timing.uniform(0, 0.5))

    report = await run.churn(f"PostgreSQL frozen {FREEZE_S} s during churn", fault)
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(2))
async def test_postgres_taking_no_writes_during_churn(
    scenario: StartScenario, seed: int
) -> None:
    """PostgreSQL answers but takes no writes (a failover: SQLSTATE 25006) for a few
    seconds: every call is answered, a refused change changed nothing (a cancel leaves the
    place), the outage is one paced line (no traceback: the suite checks), and afterwards
    every invariant holds."""
    run = await scenario(seed)

    async def fault(churn: Churn) -> None:
        await run.cluster.pg.read_only(OUTAGE_S + run.timing.uniform(0, 0.5))

    report = await run.churn(
        f"PostgreSQL taking no writes {OUTAGE_S} s during churn", fault, answers_during=True
    )
    assert report.ok, report.table()


@pytest.mark.parametrize(("how", "seed"), kinds([("cut", 2), ("hold", 1), ("slow", 2)]))
async def test_one_process_cut_off_from_postgres(
    scenario: StartScenario, how: str, seed: int
) -> None:
    """One process alone loses its route to PostgreSQL (``cut``: connections reset, new ones
    refused; ``hold``: nothing answered; ``slow``: 20 ms more each way, a distant or
    congested route) for longer than the grace period during churn, while the other works
    as usual: the cut-off process's people are not judged gone (their heartbeats go on
    through Redis), a change it could not make changed nothing (``cut`` and ``slow``:
    every call answered meanwhile), and afterwards every invariant holds."""
    run = await scenario(seed, db_links=[0])
    link = run.cluster.db_links[0]
    seconds = FREEZE_S + run.timing.uniform(0, 0.5)

    async def fault(churn: Churn) -> None:
        await link.fail_for(how, seconds)

    report = await run.churn(
        f"serve-0 alone cut off from PostgreSQL ({how}) {seconds:.1f} s during churn",
        fault,
        answers_during=how != "hold",
    )
    assert report.ok, report.table()
