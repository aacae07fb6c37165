"""Apply the database schema with Alembic: ``await migrate(settings)``.

Guarantees:
- **Idempotent**: upgrading a database already at head does nothing, so the Procfile
  ``release:`` step and ``homework-help demo-seed`` may run it every time.
- **All or nothing** per run: every pending revision runs in one transaction (on SQLite
  too: the migration engine has SQLAlchemy emit ``BEGIN`` so DDL is transactional).
- **Serialised on PostgreSQL**: a transaction-scoped advisory lock means two processes
  migrating at once run one after the other; the second then finds nothing to do.
- Works from an installed package: the Alembic ``Config`` is built in code and points at
  the ``broker/migrations`` directory next to this module; no ``alembic.ini`` is read.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db.engine import create_engine
from broker.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x4848_4D49  # "HHMI": any constant shared by every process of the broker


def alembic_config() -> Config:
    """An Alembic ``Config`` for the shipped migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(conn: AsyncConnection, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` on an open connection, in its transaction."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    await conn.run_sync(_upgrade, revision)


async def migrate_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction.

    On SQLite the engine should come from ``create_engine(url, transactional_ddl=True)``
    for the DDL to be rolled back on failure; :func:`migrate` does that.
    """
    async with engine.begin() as conn:
        await upgrade(conn, revision)


async def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade ``settings.database_url`` to the newest schema (idempotent, all or nothing)."""
    engine = create_engine(settings.database_url, transactional_ddl=True)
    try:
        await migrate_engine(engine, revision)
    finally:
        await engine.dispose()


async def create_schema(engine: AsyncEngine) -> None:
    """Bring the fresh database behind ``engine`` to head: the per-test helper.

    It simply runs the migrations on the given engine (no new engine, no settings): every
    revision, including ones models cannot express (triggers), so a test database is
    exactly a production one. Fast enough per test (about 40 ms on SQLite, 100 ms on
    PostgreSQL for the initial schema).
    """
    await migrate_engine(engine)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
