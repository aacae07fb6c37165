"""A recycled test database is what a new one at head is (tests/pg_pool.py)."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa

from broker.db import create_engine
from broker.migrate import migrate_engine
from tests import pg_pool
from tests.services import PG_ADMIN_URL, asyncpg_dsn, need

pytestmark = pytest.mark.postgres


async def _at_head_now(name: str) -> None:
    engine = create_engine(pg_pool.url_of(name))
    try:
        await migrate_engine(engine)
    finally:
        await engine.dispose()


async def _dirty(conn: asyncpg.Connection, name: str) -> None:
    """What a test may leave: rows everywhere (the append-only audit log included), used
    sequences, statistics, a database setting, and a connection still open."""
    await conn.execute(
        "INSERT INTO audit_log (at, actor, actor_role, action, endpoint) "
        "VALUES (now(), 'a', 'staff', 'read', '/x')")
    await conn.execute(
        "INSERT INTO schools (id, name, region, low_grade, high_grade, kind) "
        "VALUES ('s1', 'School', 'r', 9, 12, 'high')")
    await conn.execute("SELECT nextval('tutor_duty_id_seq')")
    await conn.execute("ANALYZE schools")
    await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')


async def _state(name: str) -> dict[str, object]:
    conn = await asyncpg.connect(asyncpg_dsn(pg_pool.url_of(name)))
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = "
            "'public'::regnamespace AND relkind = 'r' ORDER BY relname")]
        rows = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        return {
            "rows": {t: n for t, n in rows.items() if n},
            "version": await conn.fetchval("SELECT version_num FROM alembic_version"),
            "next_duty": await conn.fetchval("SELECT nextval('tutor_duty_id_seq')"),
            "read_only": await conn.fetchval("SHOW default_transaction_read_only"),
            "statistics": await conn.fetchval(
                "SELECT count(*) FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid "
                "WHERE c.relnamespace = 'public'::regnamespace"),
            "schools_estimate": await conn.fetchval(
                "SELECT reltuples FROM pg_class WHERE relname = 'schools' "
                "AND relnamespace = 'public'::regnamespace"),
        }
    finally:
        await conn.close()


async def test_a_used_database_comes_back_as_a_new_one_at_head() -> None:
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    fresh = await pg_pool.take(new=True)
    await _at_head_now(fresh)
    new_state = await _state(fresh)
    url = asyncpg_dsn(pg_pool.url_of(fresh))
    left_open = await asyncpg.connect(url)
    await _dirty(left_open, fresh)
    await pg_pool.give_back(fresh)
    assert left_open.is_closed() or not await _still_usable(left_open)

    again = await pg_pool.take()
    try:
        assert again == fresh  # recycled, not made anew
        assert new_state["rows"] == {"alembic_version": 1}
        assert await _state(again) == new_state
        engine = create_engine(pg_pool.url_of(again))
        try:
            await migrate_engine(engine)  # at head already: nothing to do
            async with engine.connect() as conn:
                assert (await conn.execute(sa.text(
                    "SELECT count(*) FROM alembic_version"))).scalar_one() == 1
        finally:
            await engine.dispose()
    finally:
        await pg_pool.give_back(again)


async def _still_usable(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
        return True
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
        return False
    finally:
        await conn.close()


async def test_a_database_whose_schema_changed_is_dropped_not_recycled() -> None:
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    name = await pg_pool.take(new=True)
    await _at_head_now(name)
    conn = await asyncpg.connect(asyncpg_dsn(pg_pool.url_of(name)))
    try:
        await conn.execute("CREATE INDEX extra ON schools (name)")
    finally:
        await conn.close()
    await pg_pool.give_back(name)
    assert name not in pg_pool._pool.free
    admin = await asyncpg.connect(asyncpg_dsn(PG_ADMIN_URL))
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                    name) == 0
    finally:
        await admin.close()
