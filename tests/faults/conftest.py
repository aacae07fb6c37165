"""Fixtures of the fault suite: one private PostgreSQL cluster and redis-server for the
session (with a migrated template database holding the test district), and per test a
fresh database, an empty Redis, two ``serve`` processes, a worker and the clients.

Everything is torn down at the end, on failure too. A failing test gets the tail of every
process's log attached to its report.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.broker.district import insert_schools
from tests.faults.cluster import (
    HOMEWORK_HELP,
    Cluster,
    Postgres,
    Redis,
    ServiceUnavailable,
    clean_up_on_sigterm,
)
from tests.faults.invariants import Scenario
from tests.faults.workload import CHURN_ENV, Population
from tests.services import REQUIRE
from tests.tcp_link import Link

TEMPLATE = "hh_faults_template"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault suite (own PostgreSQL, Redis and broker processes)"
    )
    clean_up_on_sigterm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for cluster in getattr(item, "fault_clusters", []):
            report.sections.append((f"broker processes of {cluster.database}", cluster.logs()))
        for people in getattr(item, "fault_people", []):
            saved = people.save(Path(people.cluster.root))
            report.sections.append(("for a closer look", f"saved in {saved}"))


def _migrate_template(pg: Postgres) -> None:
    url = asyncio.run(pg.create_database(TEMPLATE))
    done = subprocess.run(
        [str(HOMEWORK_HELP), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"homework-help migrate failed:\n{done.stdout}\n{done.stderr}")
    asyncio.run(insert_schools(url))


@pytest.fixture(scope="session")
def fault_services() -> Iterator[tuple[Postgres, Redis]]:
    """A private PostgreSQL cluster (with the template database) and redis-server."""
    pg: Postgres | None = None
    redis: Redis | None = None
    try:
        try:
            pg, redis = Postgres(), Redis()
        except ServiceUnavailable as exc:
            if REQUIRE:
                pytest.fail(f"HH_REQUIRE_SERVICES=1 but {exc}")
            pytest.skip(str(exc))
        pg.init()
        redis.start()
        _migrate_template(pg)
        yield pg, redis
    finally:
        if redis is not None:
            redis.destroy()
        if pg is not None:
            pg.destroy()


StartCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def start_cluster(
    fault_services: tuple[Postgres, Redis], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StartCluster]:
    """``await start_cluster(grace_s=2, env={...}, redis_links=[0])``: a fresh database and
    an empty Redis, two serve processes and a worker on them; each server named in
    ``redis_links`` reaches Redis through a :class:`~tests.tcp_link.Link` of its own
    (``cluster.redis_links[index]``), which the test can cut or hold, and each named in
    ``db_links`` PostgreSQL (``cluster.db_links[index]``)."""
    pg, redis = fault_services
    made: list[Cluster] = []
    request.node.fault_clusters = made

    async def start(
        grace_s: float = 2.0,
        env: Mapping[str, str] | None = None,
        redis_links: Sequence[int] = (),
        db_links: Sequence[int] = (),
    ) -> Cluster:
        if not pg.up:
            await asyncio.to_thread(pg.start)
        if redis.proc is None or redis.proc.poll() is not None:
            await redis.launch()
        await redis.flushall()
        name = f"hh_faults_{uuid.uuid4().hex[:10]}"
        await pg.create_database(name, template=TEMPLATE)
        cluster = Cluster(pg, redis, name, tmp_path, grace_s=grace_s, env=env)
        made.append(cluster)
        for index in redis_links:
            cluster.redis_links[index] = link = await Link(redis.port).start()
            cluster.servers[index].env["REDIS_URL"] = link.url
        for index in db_links:
            cluster.db_links[index] = link = await Link(pg.port, scheme="postgresql").start()
            cluster.servers[index].env["DATABASE_URL"] = cluster.dsn.replace(
                f":{pg.port}/", f":{link.port}/"
            )
        await cluster.start()
        return cluster

    yield start
    for cluster in made:
        await cluster.stop()
        if not pg.up:
            await asyncio.to_thread(pg.start)
        await pg.drop_database(cluster.database)
        for link in [*cluster.redis_links.values(), *cluster.db_links.values()]:
            await link.close()


Populate = Callable[..., Awaitable[Population]]


@pytest.fixture
async def populate(
    start_cluster: StartCluster, request: pytest.FixtureRequest
) -> AsyncIterator[Populate]:
    """``await populate(cluster, seed)``: 30 students and 6 tutors, connected; closed after
    the test (before the processes stop). A failing test saves what every client did and
    saw, and the database's requests and sessions, next to the process logs."""
    made: list[Population] = []
    request.node.fault_people = made
    state = random.getstate()

    async def make(cluster: Cluster, seed: int, **sizes: int) -> Population:
        random.seed(seed)  # python-socketio draws its reconnection jitter from it
        people = Population.make(cluster, seed, **sizes)
        made.append(people)
        return await people.connect()

    yield make
    for people in made:
        await people.close()
    random.setstate(state)  # the global generator as the rest of the run had it


StartScenario = Callable[..., Awaitable[Scenario]]


@pytest.fixture
def scenario(start_cluster: StartCluster, populate: Populate) -> StartScenario:
    """``await scenario(seed, grace_s=..., env=..., redis_links=...)``: a cluster started
    with these (``env`` by default :data:`~tests.faults.workload.CHURN_ENV`), its people
    connected, and the seed's timing, for :meth:`Scenario.churn`."""

    async def start(seed: int, **cluster: Any) -> Scenario:
        timing = random.Random(seed)
        cluster.setdefault("env", CHURN_ENV)
        made = await start_cluster(**cluster)
        return Scenario(made, await populate(made, seed), seed, timing)

    return start
