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
from broker.settings import Settings
from tests.broker.district import insert_schools as insert_schools  # for bench.broker
from tests.broker.district import prepare_database
from tests.broker.harness import SECRET, Client, Server
from tests.broker.unit import FakeClock, Rig, broker_rig


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
        # A tutor silent for a minute loses the student (issue 12); these tests move the
        # clock for other reasons, so only tests/broker/test_safety.py turns it on.
        tutor_silent_s=0.0,
    )


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(stack_settings: Settings) -> AsyncIterator[StartServer]:
    """Start broker processes on the stack (each call is one more process), optionally on a
    fake clock."""
    servers: list[Server] = []

    async def start(clock: FakeClock | None = None, **changes: Any) -> Server:
        server = await Server(stack_settings.with_(**changes), clock).start()
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


@pytest.fixture
async def unit_db(sqlite_url: str) -> str:
    """A migrated SQLite file with the test district, for broker unit tests."""
    await prepare_database(sqlite_url)
    return sqlite_url


@pytest.fixture
async def rig(unit_db: str) -> AsyncIterator[Rig]:
    """A broker on memory backends with a fake clock (see tests/broker/unit.py)."""
    async with broker_rig(unit_db) as made:
        yield made
