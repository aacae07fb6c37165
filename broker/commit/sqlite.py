"""The SQLite backend: the standard library's ``sqlite3`` on one dedicated writer thread.

SQLAlchemy over aiosqlite costs, per statement, a compile-cache lookup, a cursor, and two
hand-offs between the event loop and aiosqlite's thread. Here each batch is one hand-off
each way: the loop builds every statement's positional arguments
(:mod:`broker.commit.prepared`) and puts the batch on a queue; the writer thread runs
``BEGIN IMMEDIATE``, the statements and ``COMMIT`` on its own connection, and wakes the
loop once with the outcome. The connection has the engine's settings (WAL,
``synchronous=NORMAL``, foreign keys, the busy timeout), so it shares the database file
safely with the engine's other connections and with other processes.

It checkpoints the WAL every :data:`WAL_AUTOCHECKPOINT_PAGES` pages instead of SQLite's
1,000: each checkpoint copies pages back and syncs the database file, and doing it four
times less often cut the CPU cost of a request + cancel by ~10% (measured with the
broker's statements); the WAL file grows to ~16 MiB between checkpoints. Most of that copying
and syncing is done beforehand, off the commit path, by a
:class:`~broker.commit.wal_checkpoint.WalCheckpointer` told of every commit, so the writer's
own checkpoint finds only a short tail to copy (why and what it measured: that module).

Errors are raised as SQLAlchemy's exceptions (``IntegrityError`` ...), as the engine
backend would raise them. An in-memory database cannot be shared with a second connection,
so :func:`broker.commit.committer_for` uses the engine backend for it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from broker.commit.base import Answer, GroupCommitter, Outcome, StepResult, Unit
from broker.commit.prepared import BoundBatch, StatementCache
from broker.commit.wal_checkpoint import WalCheckpointer
from broker.db.engine import SQLITE_BUSY_TIMEOUT_MS
from broker.db.handoff import serve_jobs, start_thread, stop_thread

WAL_AUTOCHECKPOINT_PAGES = 4000

_Job = tuple[BoundBatch, asyncio.AbstractEventLoop, asyncio.Future[list[Outcome]]]


class SqliteCommitter(GroupCommitter):
    def __init__(self, path: str, dialect: Dialect) -> None:
        super().__init__()
        self.path = path
        self.statements = StatementCache(dialect)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.checkpointer = WalCheckpointer(path)

    async def _commit(
        self, units: list[Unit], lane: int = 0, answer: Answer | None = None
    ) -> list[Outcome]:
        batch = self.statements.bind(units)
        if self._thread is None:
            self._thread = start_thread(self._serve, "sqlite-writer")
            self.checkpointer.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Outcome]] = loop.create_future()
        self._jobs.put((batch, loop, done))
        return await done

    async def _dispose(self) -> None:
        thread, self._thread = self._thread, None
        await stop_thread(self._jobs, thread)
        await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.stop)

    # -- on the writer thread -----------------------------------------------------------
    def _serve(self) -> None:
        serve_jobs(self._jobs, self._open, self._execute_and_tell, sqlite3.Connection.close)

    def _execute_and_tell(self, conn: sqlite3.Connection, batch: BoundBatch) -> list[Outcome]:
        outcomes = self._execute_batch(conn, batch)
        self.checkpointer.wrote()
        return outcomes

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN / COMMIT ourselves
            )
        except sqlite3.Error as error:
            raise sa_exc.DBAPIError.instance(
                f"connect {self.path}", (), error, sqlite3.Error, connection_invalidated=False
            ) from error
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _execute_batch(conn: sqlite3.Connection, batch: BoundBatch) -> list[Outcome]:
        statement = "BEGIN IMMEDIATE"
        args: tuple[Any, ...] = ()
        try:
            conn.execute(statement)
            results = []
            for unit in batch:
                if unit.savepoint:
                    conn.execute("SAVEPOINT unit")
                outcome = Outcome()
                for step in unit.steps:
                    statement, args = step.sql, step.args
                    cursor = conn.execute(statement, args)
                    value: StepResult
                    if step.returning:
                        value = [tuple(row) for row in cursor.fetchall()]
                    else:
                        value = cursor.rowcount
                    if not outcome.add(value, step.expect):
                        break
                if unit.savepoint:
                    if outcome.failed is not None:
                        conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                results.append(outcome)
            statement, args = "COMMIT", ()
            conn.execute(statement)
            return results
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise sa_exc.DBAPIError.instance(
                statement, args, error, sqlite3.Error, connection_invalidated=False
            ) from error
