"""A throw-away PostgreSQL database for one benchmark run, created and dropped here."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

PG_ADMIN = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    from tests.services import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(PG_ADMIN))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_reachable() -> bool:
    from tests.services import reachable

    return reachable(PG_ADMIN, 5432)


@contextmanager
def scratch_postgres(name: str) -> Iterator[str]:
    """The asyncpg URL of a new database ``name`` on the server at ``DATABASE_URL`` (or
    127.0.0.1:5432), dropped (``WITH (FORCE)``) when the block ends, however it ends."""
    from tests.services import asyncpg_dsn

    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        base = asyncpg_dsn(PG_ADMIN).rsplit("/", 1)[0].split("://", 1)[1]
        yield f"postgresql+asyncpg://{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
