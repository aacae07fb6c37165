"""The broker suites run over two stacks with identical assertions:

* ``embedded``: SQLite file + in-process queue and live state (the default install);
* ``scaled``: PostgreSQL + Redis (queue, live state and the socket.io message manager).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from broker.db.engine import create_engine
from broker.db.models import Base
from broker.migrate import migrate
from broker.settings import Settings
from tests.broker.harness import SECRET, Client, Server

SCHOOLS = [
    # id, name, region, low, high, kind
    ("elem", "Test Elementary", "East", 0, 5, "elementary"),
    ("k8", "Test K-8 Span", "North", 0, 8, "span"),
    ("ms", "Test Middle", "South", 6, 8, "middle"),
    ("hs", "Test High", "West", 9, 12, "high"),
    ("k12", "Test K-12 Span", "West", 0, 12, "span"),
]


async def prepare_database(url: str) -> None:
    """Migrate a fresh database and give it the small test district (SCHOOLS)."""
    await migrate(Settings(database_url=url))
    await insert_schools(url)


async def insert_schools(url: str) -> None:
    """Insert SCHOOLS into a migrated database (also used by bench.broker)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                Base.metadata.tables["schools"].insert(),
                [
                    {"id": i, "name": n, "region": r, "low_grade": lo, "high_grade": hi, "kind": k}
                    for i, n, r, lo, hi, k in SCHOOLS
                ],
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=["embedded", "scaled"])
def stack(request: pytest.FixtureRequest) -> tuple[str, str | None, str]:
    """(database URL, Redis URL or None, Redis prefix) of the stack under test."""
    if request.param == "embedded":
        return str(request.getfixturevalue("sqlite_url")), None, "hh"
    return (
        str(request.getfixturevalue("postgres_url")),
        str(request.getfixturevalue("redis_url")),
        str(request.getfixturevalue("redis_prefix")),
    )


@pytest.fixture
async def stack_settings(stack: tuple[str, str | None, str]) -> Settings:
    url, redis_url, prefix = stack
    await prepare_database(url)
    return Settings(
        database_url=url,
        redis_url=redis_url,
        redis_prefix=prefix,
        secret_key=SECRET,
        pseudonym_secret=SECRET,
        grace_seconds=60.0,
    )


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(stack_settings: Settings) -> AsyncIterator[StartServer]:
    """Start broker processes on the stack (each call is one more process)."""
    servers: list[Server] = []

    async def start(**changes: Any) -> Server:
        server = await Server(stack_settings.with_(**changes)).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    """Collects clients a test opens, and closes them all afterwards."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        try:
            await client.close()
        except Exception:
            pass


async def fetch_all(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(sql), params)).mappings().all()
        return [dict(r) for r in rows]
    finally:
        await engine.dispose()
