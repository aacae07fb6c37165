"""Per-test databases at head in milliseconds: the migrations run once per test session.

Every test that needs a database gets a fresh one and brings it to head through
``broker.migrate`` (``migrate``, ``create_schema``, ``prepare_database``...). Running the
twelve revisions (SQLite's batch operations rebuild tables) costs ~0.4 s a database, which
over the whole suite was several minutes of CI. :func:`install` (called once from
``tests/conftest.py``) wraps :func:`broker.migrate.migrate_engine`: the first time a
dialect's empty database is brought to head, the real migrations run on a scratch database
and its complete contents (tables, indexes, triggers, ``alembic_version``) are dumped as
SQL; every later empty database at head replays that script instead, in one transaction.
So each test database is still exactly what the migrations produce (the script is their
output, made in this run), and a test that asks for another revision, or a database that is
not empty, gets the real migrations (``tests/db/test_migrations.py`` runs them for real).
A PostgreSQL database recycled by :mod:`tests.pg_pool` is at head already: bringing it to
head does nothing, as the real migrations would (they are not asked, saving Alembic's look).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import broker.migrate as migrate_module
from tests import pg_pool

_real = migrate_module.migrate_engine
_scripts: dict[str, Any] = {}  # dialect -> this run's dump (tests run one at a time)


async def _is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    return not names


async def _sqlite_script() -> list[str]:
    from broker.db.engine import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}", transactional_ddl=True)
        try:
            await _real(engine)
        finally:
            await engine.dispose()
        conn = sqlite3.connect(path)
        try:
            return [s for s in conn.iterdump() if s not in ("BEGIN TRANSACTION;", "COMMIT;")]
        finally:
            conn.close()


async def _postgres_script(engine: AsyncEngine) -> str:
    import asyncpg

    from broker.db.engine import create_engine

    url = engine.url
    name = f"hh_schema_template_{os.getpid()}"
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        template = create_engine(url.set(database=name).render_as_string(hide_password=False))
        try:
            await _real(template)
        finally:
            await template.dispose()
        dsn = url.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False
        )
        dump = await asyncio.to_thread(
            subprocess.run,
            ["pg_dump", "--no-owner", "--no-privileges", "--no-comments", "--inserts", dsn],
            check=True, capture_output=True, text=True,
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    # pg_dump empties search_path for its session (the replaying connection goes back to
    # the pool) and writes psql meta-commands (a backslash line such as restrict): keep
    # only the SQL statements.
    keep = [
        line for line in dump.stdout.splitlines()
        if not line.startswith(("SET ", "SELECT pg_catalog.set_config", "--", "\\"))
    ]
    return "\n".join(keep)


async def migrate_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """:func:`broker.migrate.migrate_engine`, replaying this run's dump for an empty
    database brought to head."""
    dialect = engine.dialect.name
    if revision == "head" and dialect == "postgresql" and await pg_pool.recycled_at_head(engine):
        return  # what the real migrations would find: nothing to do
    if revision != "head" or dialect not in ("sqlite", "postgresql") or not await _is_empty(
        engine
    ):
        await _real(engine, revision)
        return
    if dialect not in _scripts:
        _scripts[dialect] = (
            await _sqlite_script() if dialect == "sqlite" else await _postgres_script(engine)
        )
    script = _scripts[dialect]
    async with engine.begin() as conn:
        if dialect == "sqlite":
            for statement in script:
                await conn.exec_driver_sql(statement)
        else:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute(script)  # type: ignore[union-attr]
            await pg_pool.learn_head(raw, script)


def install() -> None:
    migrate_module.migrate_engine = migrate_engine  # type: ignore[assignment]
