"""Async engines and session factories for SQLite (aiosqlite) and PostgreSQL (asyncpg).

``create_engine`` is the only place engines are made, so every connection gets the same
settings: on SQLite WAL journalling (readers never block the writer), foreign keys
enforced, and a busy timeout so concurrent writers wait instead of failing; on PostgreSQL a
bounded pool with pre-ping, so a restarted database does not break the first request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from broker.settings import normalise_database_url

# What the rest of the product names an engine by (``web/`` never imports SQLAlchemy).
Engine = AsyncEngine

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10
PG_POOL_RECYCLE_S = 1800


def dialect_insert(db: AsyncEngine | AsyncConnection, table: Table) -> Any:
    """``INSERT`` for ``db``'s dialect (PostgreSQL's or SQLite's), so a caller can add
    ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if db.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def create_engine(url: str, *, transactional_ddl: bool = False, **kwargs: Any) -> AsyncEngine:
    """Return an :class:`AsyncEngine` for ``url`` (normalised to the async drivers).

    ``transactional_ddl=True`` (used by migrations) makes SQLAlchemy, not the ``sqlite3``
    driver, emit ``BEGIN`` on SQLite, so DDL and SAVEPOINTs take part in the transaction.
    The default keeps the driver's own mode, where a transaction begins at the first write:
    that is what the broker wants under concurrency (a read never holds a snapshot that a
    later write would have to upgrade). Extra ``kwargs`` go to SQLAlchemy unchanged.
    """
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = _create_async_engine(url, **kwargs)
        _configure_sqlite(engine, transactional_ddl=transactional_ddl)
        return engine
    kwargs.setdefault("pool_size", PG_POOL_SIZE)
    kwargs.setdefault("max_overflow", PG_MAX_OVERFLOW)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", PG_POOL_RECYCLE_S)
    return _create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine, *, transactional_ddl: bool) -> None:
    in_memory = engine.url.database in (None, "", ":memory:") or "mode=memory" in str(engine.url)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        if transactional_ddl:
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    if transactional_ddl:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (``expire_on_commit=False``), so
    objects can be used after the transaction without lazy loads (which async forbids)."""
    return async_sessionmaker(engine, expire_on_commit=False)
