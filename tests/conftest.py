"""Shared fixtures: a fresh database per test over SQLite and PostgreSQL, a Redis key prefix.

Modelled on encode/databases' tests: fixtures are parametrised over backends so one suite
asserts identical behaviour on each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import pg_pool, schema_cache
from tests.services import PG_ADMIN_URL, REDIS_URL, forget_prefix, need, unique

schema_cache.install()  # per-test databases at head from this run's migrated dump


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (the benchmarks' smoke runs, the longest browser journeys: tens
    of seconds each) run first, in their usual order, then the rest. With ``-n 2 --dist
    worksteal`` the workers then end together on short tests, instead of one worker
    starting a minute-long test while the other has nothing left (CI's last minutes)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}"


@pytest.fixture
async def postgres_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own: new, or one an earlier test of this process
    used, made again what a new one at head is (tests/pg_pool.py). Marked ``new_database``,
    a new empty one."""
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    name = await pg_pool.take(new=request.node.get_closest_marker("new_database") is not None)
    yield pg_pool.url_of(name)
    await pg_pool.give_back(name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the databases this process kept for reuse."""
    if pg_pool.keeps_any():
        asyncio.run(pg_pool.drop_all())


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL.

    A plain (sync) fixture: pytest-asyncio cannot resolve async fixtures by name from
    inside an async fixture.
    """
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    need(REDIS_URL, 6379, "Redis")
    yield REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = unique("hhtest")
    yield prefix
    await forget_prefix(redis_url, prefix)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """``(kind, redis url, key prefix)`` of a shared-state backend, for the suites that
    assert one contract on every backend (tests/queue, tests/live). A sync fixture so that
    it may pull the async Redis fixtures with ``getfixturevalue`` (which cannot run inside
    a running loop)."""
    if request.param == "memory":
        return ("memory", "", "")
    url = str(request.getfixturevalue("redis_url"))
    prefix = str(request.getfixturevalue("redis_prefix"))
    return ("redis", url, prefix)
