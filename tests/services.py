"""Where the tests find PostgreSQL and Redis, and how they skip (or fail on CI) without them.

``HH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns every skip for a missing service into a
failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import pytest

PG_ADMIN_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
REQUIRE = os.environ.get("HH_REQUIRE_SERVICES") == "1"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        address = (parts.hostname or "127.0.0.1", parts.port or default_port)
        with socket.create_connection(address, 1):
            return True
    except OSError:
        return False


def need(url: str, default_port: int, what: str) -> None:
    if reachable(url, default_port):
        return
    reason = f"{what} not reachable at {url}"
    if REQUIRE:
        pytest.fail(f"HH_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def forget_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix``: what a flushed or restarted Redis does to a test."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Backend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


B = TypeVar("B", bound=Backend)


@asynccontextmanager
async def shared_handles(
    backend: tuple[str, str, str],
    memory: Callable[[], B],
    redis: Callable[[str, str], B],
    count: int,
) -> AsyncIterator[list[B]]:
    """``count`` started handles on one shared state, closed afterwards: for Redis separate
    instances with their own connection pools (as several broker processes would have),
    in-process the same instance ``count`` times (there is only ever one)."""
    kind, url, prefix = backend
    if kind == "memory":
        owned = [memory()]
        handles = owned * count
    else:
        owned = handles = [redis(url, prefix) for _ in range(count)]
    for handle in owned:
        await handle.start()
    try:
        yield handles
    finally:
        for handle in owned:
            await handle.close()


def database_refused() -> Exception:
    """The error the app meets when PostgreSQL is down: SQLAlchemy's ``OperationalError``
    around a refused connection (a dependency outage for :func:`broker.outages.kind_of`)."""
    from sqlalchemy.exc import OperationalError

    return OperationalError("select", {}, ConnectionRefusedError(111, "Connection refused"))
