"""The SQLite backend: the standard library's ``sqlite3`` on one dedicated writer thread.

SQLAlchemy over aiosqlite costs, per statement, a compile-cache lookup, a cursor, and two
hand-offs between the event loop and aiosqlite's thread. Here each batch is one hand-off:
the loop builds every statement's positional arguments (:mod:`broker.commit.prepared`),
the writer thread runs ``BEGIN IMMEDIATE``, the statements and ``COMMIT`` on its own
connection, and one callback resolves the batch. The connection has the engine's settings
(WAL, ``synchronous=NORMAL``, foreign keys, the busy timeout), so it shares the database
file safely with the engine's other connections and with other processes.

Errors are raised as SQLAlchemy's exceptions (``IntegrityError`` ...), as the engine
backend would raise them. An in-memory database cannot be shared with a second connection,
so :func:`broker.commit.committer_for` uses the engine backend for it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from broker.commit.base import GroupCommitter, Unit
from broker.commit.prepared import Prepared, StatementCache
from broker.db.engine import SQLITE_BUSY_TIMEOUT_MS

Batch = list[list[tuple[Prepared, tuple[Any, ...]]]]


class SqliteCommitter(GroupCommitter):
    def __init__(self, path: str, dialect: Dialect) -> None:
        super().__init__()
        self.path = path
        self.statements = StatementCache(dialect)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    async def _commit(self, units: list[Unit]) -> list[list[int]]:
        statements = self.statements
        batch: Batch = []
        for unit in units:
            prepared = []
            for stmt, params in unit:
                p = statements.get(stmt, params)
                prepared.append((p, p.args(params)))
            batch.append(prepared)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._commit_in_thread, batch)

    async def _dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_in_thread)
        self._executor.shutdown(wait=True)

    # -- on the writer thread -----------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN / COMMIT ourselves
                check_same_thread=True,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    def _commit_in_thread(self, batch: Batch) -> list[list[int]]:
        conn = self._connection()
        statement = ""
        args: tuple[Any, ...] = ()
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = []
            for unit in batch:
                counts = []
                for prepared, args in unit:
                    statement = prepared.sql
                    counts.append(conn.execute(statement, args).rowcount)
                results.append(counts)
            statement, args = "COMMIT", ()
            conn.execute("COMMIT")
            return results
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise sa_exc.DBAPIError.instance(
                statement, args, error, sqlite3.Error, connection_invalidated=False
            ) from error

    def _close_in_thread(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
