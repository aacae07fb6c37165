"""Alembic environment for the broker (async engines through ``connection.run_sync``).

Two ways in:
- :func:`broker.migrate.migrate` passes an open sync connection in
  ``config.attributes["connection"]``; the migrations run on it, inside its transaction.
- The ``alembic`` command line (``alembic -c broker/migrations/alembic.ini ...``, for
  writing new revisions) gets the URL from ``DATABASE_URL`` or the ini file and makes its
  own async engine.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from broker.db.engine import create_engine
from broker.db.models import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # Every run is inside one transaction (SQLAlchemy emits BEGIN on SQLite too).
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), transactional_ddl=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_sync)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
