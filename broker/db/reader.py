r"""Point reads on the broker's hot path: each read one hand-off to the database and back.

Every request, accept and end reads a row or two (the request, the student's open
request, the queue, the tutors available). Through SQLAlchemy over aiosqlite one such read
costs ~0.45 ms of CPU (measured): a pool checkout and a reset on return, the statement
built and its cache key computed, a cursor, and three or four hand-offs between the event
loop and aiosqlite's thread. That was about a quarter of the CPU of a replayed request.

Like :mod:`broker.commit` (and python-socketio's managers), the base class owns the
protocol and the backends fill in two hooks, :meth:`Reader._fetch` (run a batch of
statements, return each one's rows) and :meth:`Reader._dispose`:

* :class:`EngineReader`, any database SQLAlchemy can reach: the batch on one connection;
* :class:`SqliteReader`, a SQLite file: statements compiled once to the driver's SQL
  (:mod:`broker.commit.prepared`), run on the event loop's thread on a read-only
  ``sqlite3`` connection of its own (why not a thread: see the class);
* :class:`AsyncpgReader`, PostgreSQL: the same compiled SQL on a few asyncpg connections
  of its own (asyncpg prepares each text once per connection), read-only, outside the
  engine's pool, so a slow staff report never holds up a student's read.

Guarantees, whatever the backend:

* **Rows as SQLAlchemy gives them**: each row a ``dict`` keyed as ``.mappings()`` keys it,
  every value through its column type's result processor (an aware UTC datetime from a
  ``UTCDateTime``, a ``bool`` from a ``Boolean``); tested equal, query by query, against
  the engine's.
* **Reads what has committed**: each statement reads the database as of when it runs
  (SQLite in WAL mode, autocommit: a statement's snapshot ends with it, and every row is
  fetched before the next one runs), so a read that starts after a write committed sees
  it. Statements of one batch are not one snapshot (nor were they on the engine, whose
  SQLite connections do not begin a transaction to read).
* **Never writes**: the SQLite connection is ``query_only``; PostgreSQL's are read-only
  sessions (``default_transaction_read_only``).
* **Errors as SQLAlchemy's exceptions** (``OperationalError`` ...), raised to the caller of
  the batch. A statement a native backend cannot prepare (one with a parameter expanded
  at execution) is read through the engine instead, so every statement works on all.
* **What survives a database restart**: a PostgreSQL connection that fails is dropped and
  the failed batch raises (nothing was changed: these are reads); the next batch connects
  afresh.

Only for standalone reads: a read that must see a transaction's own uncommitted writes
runs on that transaction's connection, as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from broker.commit.postgres import asyncpg_dsn
from broker.commit.prepared import Prepared, PrepareError, prepare
from broker.db.closing import close_within
from broker.outages import ENDED_STATES

Row = dict[str, Any]
Query = tuple[Executable, Mapping[str, Any] | None]


class Reader:
    """Standalone reads (see the module docstring). Backends fill in :meth:`_fetch` and
    :meth:`_dispose`."""

    async def all(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row of ``stmt``."""
        return (await self._fetch([(stmt, params)]))[0]

    async def first(self, stmt: Executable,
                    params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row of ``stmt``, or ``None``."""
        rows = await self.all(stmt, params)
        return rows[0] if rows else None

    async def scalar(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of ``stmt``, or ``None``."""
        row = await self.first(stmt, params)
        return next(iter(row.values())) if row else None

    async def batch(self, queries: Sequence[Query]) -> list[list[Row]]:
        """Each query's rows, in order, in one hand-off (not one snapshot)."""
        return await self._fetch(queries)

    async def close(self) -> None:
        await self._dispose()

    # -- the backends' hooks --------------------------------------------------------------
    async def _fetch(self, queries: Sequence[Query]) -> list[list[Row]]:
        raise NotImplementedError

    async def _dispose(self) -> None:
        raise NotImplementedError


class EngineReader(Reader):
    """Through SQLAlchemy: the batch on one pooled connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _fetch(self, queries: Sequence[Query]) -> list[list[Row]]:
        async with self.engine.connect() as conn:
            return [
                [dict(row) for row in (await conn.execute(stmt, params)).mappings().all()]
                for stmt, params in queries
            ]

    async def _dispose(self) -> None:
        return None


Processor = Callable[[Any], Any] | None
READ_BUSY_TIMEOUT_S = 0.5  # SQLite: how long a read may wait for a lock (see SqliteReader)


@dataclass(frozen=True, slots=True)
class PreparedRead:
    """A statement's driver SQL, how to build its arguments, and its result columns: their
    keys, their types, and the types' result processors when they do not depend on the
    type the driver reports (``None`` if one does: PostgreSQL's numbers)."""

    statement: Prepared
    keys: tuple[str, ...]
    types: tuple[TypeEngine[Any], ...]
    processors: tuple[Processor, ...] | None

    def processors_for(self, dialect: Dialect, type_codes: Sequence[Any]) -> tuple[
            Processor, ...]:
        """The result processors for the columns' types as the driver reports them."""
        return tuple(kind._cached_result_processor(dialect, code)
                     for kind, code in zip(self.types, type_codes, strict=True))

    def rows(self, raw: Sequence[Sequence[Any]],
             processors: tuple[Processor, ...] | None = None) -> list[Row]:
        keys = self.keys
        processors = processors or self.processors or ()
        if not any(processors):
            return [dict(zip(keys, values, strict=True)) for values in raw]
        return [
            {key: value if process is None or value is None else process(value)
             for key, process, value in zip(keys, processors, values, strict=True)}
            for values in raw
        ]


def prepare_read(stmt: Executable, dialect: Dialect) -> PreparedRead:
    """Compile a SELECT once for ``dialect``: :class:`PrepareError` if its SQL is only
    known at execution (an expanding ``IN``) or it returns no rows."""
    statement = prepare(stmt, dialect)
    if "POSTCOMPILE" in statement.sql:
        raise PrepareError("the statement has a parameter expanded at execution")
    compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler) or not compiled._result_columns:
        raise PrepareError("not a statement that returns rows")
    keys = tuple(column.keyname for column in compiled._result_columns)
    types = tuple(column.type for column in compiled._result_columns)
    processors: tuple[Processor, ...] | None
    try:
        processors = tuple(kind._cached_result_processor(dialect, None) for kind in types)
    except (TypeError, sa_exc.InvalidRequestError):  # needs the driver's type code
        processors = None
    return PreparedRead(statement, keys, types, processors)


_Job = tuple[list[tuple[PreparedRead, tuple[Any, ...]]], asyncio.AbstractEventLoop,
             asyncio.Future[list[list[Row]]]]


Bound = list[tuple[PreparedRead, tuple[Any, ...]]]


class NativeReader(Reader):
    """Statements compiled once to the driver's SQL and run without SQLAlchemy; a
    statement that cannot be compiled once goes through ``engine``. Backends fill in
    :meth:`_run_bound` (the batch, already bound) and :meth:`_dispose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.fallback = EngineReader(engine)
        self.dialect = engine.dialect
        # statements are kept alive by the cache, so their ids are never reused while cached
        self._cache: dict[int, tuple[Executable, PreparedRead | None]] = {}

    def _usable(self, prepared: PreparedRead) -> bool:
        """Whether this backend can run ``prepared`` (its result processors known)."""
        return prepared.processors is not None

    def _prepared(self, stmt: Executable) -> PreparedRead | None:
        hit = self._cache.get(id(stmt))
        if hit is None:
            try:
                prepared: PreparedRead | None = prepare_read(stmt, self.dialect)
            except PrepareError:
                prepared = None
            if prepared is not None and not self._usable(prepared):
                prepared = None
            hit = (stmt, prepared)
            self._cache[id(stmt)] = hit
        return hit[1]

    async def _fetch(self, queries: Sequence[Query]) -> list[list[Row]]:
        bound: Bound = []
        for stmt, params in queries:
            prepared = self._prepared(stmt)
            if prepared is None:
                return await self.fallback.batch(queries)
            bound.append((prepared, prepared.statement.args(params or {})))
        return await self._run_bound(bound)

    async def _run_bound(self, bound: Bound) -> list[list[Row]]:
        raise NotImplementedError


class SqliteReader(NativeReader):
    """A read-only ``sqlite3`` connection to the file at ``path``, read on the event loop's
    own thread.

    Why not a thread of its own, as the writer has: ``sqlite3`` releases the GIL for every
    row it steps, and a thread has to win the GIL back from a busy event loop each time
    (up to the interpreter's switch interval, 5 ms): at the evening peak (19,850
    connections on one process) a sweep's read of 2,300 open sessions held the thread
    for seconds and the chat reads queued behind it (relay p99 2.4 s, measured). Read
    here, a point read takes tens of microseconds of the loop and a sweep's list a few
    milliseconds, and nothing waits behind a hand-off. A reader never waits for SQLite's
    writer (WAL: readers see the last commit and are not blocked by a writer), so the
    busy timeout is short: only a WAL recovery after a crash could make it wait."""

    def __init__(self, path: str, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def _run_bound(self, bound: Bound) -> list[list[Row]]:
        if self._conn is None:
            self._conn = self._open()
        return self._read(self._conn, bound)

    async def _dispose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _read(self, conn: sqlite3.Connection, bound: Bound) -> list[list[Row]]:
        return [prepared.rows(self._run(conn, prepared.statement.sql, args))
                for prepared, args in bound]

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=READ_BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
        except sqlite3.Error as error:
            raise sa_exc.DBAPIError.instance(
                f"connect {self.path}", (), error, sqlite3.Error, connection_invalidated=False
            ) from error
        return conn

    @staticmethod
    def _run(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise sa_exc.DBAPIError.instance(
                sql, args, error, sqlite3.Error, connection_invalidated=False
            ) from error



READ_CONNECTIONS = 4  # asyncpg connections per process for the hot reads
CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30
APPLICATION_NAME = "homework-help reader"  # how the connection shows in pg_stat_activity
_BROKEN = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class _StaleConnection(Exception):
    """A read failed because its connection did (closed, ended by the server, in a state
    asyncpg cannot use), not because of the statement; ``error`` is what to raise."""

    def __init__(self, error: sa_exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncpgReader(NativeReader):
    """Up to :data:`READ_CONNECTIONS` asyncpg connections of its own, opened as needed;
    a batch waits for a free one."""

    def _usable(self, prepared: PreparedRead) -> bool:
        return True  # processors from the types PostgreSQL reports, at the first run

    def __init__(self, dsn: str, engine: AsyncEngine,
                 connections: int = READ_CONNECTIONS) -> None:
        super().__init__(engine)
        self.dsn = dsn
        # per statement, the result processors for the types PostgreSQL reports
        self._processors: dict[int, tuple[Processor, ...]] = {}
        self._idle: list[asyncpg.Connection] = []
        self._slots = asyncio.Semaphore(connections)

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.dsn, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S,
            server_settings={"application_name": APPLICATION_NAME,
                             "default_transaction_read_only": "on"},
        )

    async def _run_bound(self, bound: Bound) -> list[list[Row]]:
        """Run ``bound`` on an idle connection (or a new one). A reused connection that
        fails for a reason of its own, not PostgreSQL's answer to the statement, is
        replaced and the reads run once more on a new one: an idle connection can have
        been ended by the server (a restart, an administrator) just before it was taken,
        before asyncpg noticed it closing, and the reads are read-only, so running them
        twice changes nothing. A failure of the connection is raised as an invalidated
        ``DBAPIError`` (:func:`broker.outages.kind_of`: an outage, not a bug)."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None and not conn.is_closed():
                try:
                    return await self._fetch_on(conn, bound)
                except _StaleConnection:
                    pass  # the connection is terminated; once more on a new one
            try:
                conn = await self._connect()
            except _BROKEN as error:
                raise sa_exc.DBAPIError(
                    "connect", (), error, connection_invalidated=True
                ) from error
            try:
                return await self._fetch_on(conn, bound)
            except _StaleConnection as stale:
                raise stale.error from stale.error.orig

    async def _fetch_on(self, conn: asyncpg.Connection, bound: Bound) -> list[list[Row]]:
        """The reads of ``bound`` on ``conn``, which goes back to the idle ones unless it
        failed (then it is terminated). :class:`_StaleConnection` when the connection
        itself failed."""
        sql, args = "", ()
        try:
            result = []
            for prepared, args in bound:
                sql = prepared.statement.sql
                processors = self._processors.get(id(prepared))
                if processors is None:  # the first run: ask for the columns' types
                    ready = await conn.prepare(sql)
                    processors = self._processors[id(prepared)] = prepared.processors_for(
                        self.dialect, [a.type.oid for a in ready.get_attributes()])
                    rows = await ready.fetch(*args)
                else:
                    rows = await conn.fetch(sql, *args)
                result.append(prepared.rows(rows, processors))
        except asyncpg.DataError as error:  # a bad value: the connection is fine
            self._idle.append(conn)
            raise sa_exc.DataError(sql, args, error) from error
        except BaseException as error:  # a broken connection, or a cancelled read
            conn.terminate()
            ended = getattr(error, "sqlstate", "") or ""
            if isinstance(error, asyncpg.PostgresError) and not ended.startswith(ENDED_STATES):
                raise sa_exc.DBAPIError(sql, args, error) from error  # the statement's
            if isinstance(error, Exception):  # asyncpg's errors are not all PostgresError
                raise _StaleConnection(
                    sa_exc.DBAPIError(sql, args, error, connection_invalidated=True)
                ) from error
            raise
        self._idle.append(conn)
        return result

    async def _dispose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(close_within(conn) for conn in idle))


def reader_for(engine: AsyncEngine) -> Reader:
    """The fastest backend that can share ``engine``'s database (an in-memory SQLite
    database cannot be opened by a second connection: the engine's own)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database not in ("", ":memory:") and "mode=memory" not in str(url):
            return SqliteReader(database, engine)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgReader(asyncpg_dsn(url), engine)
    return EngineReader(engine)


__all__ = ["AsyncpgReader", "EngineReader", "NativeReader", "PreparedRead", "Reader",
           "SqliteReader", "prepare_read", "reader_for"]
