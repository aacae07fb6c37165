"""The PostgreSQL backend: dedicated asyncpg connections, without SQLAlchemy in between.

A batch whose units are each one statement (after fusion, the usual batch: the fused
requests and the fused cancels, or a session's fused messages) runs each statement as its
own transaction, committed when it returns, one after another: one round trip each. Any
other batch (a unit of several statements: an accept, an end) is ``BEGIN``, the
statements and ``COMMIT``. asyncpg prepares each SQL text once per connection and reuses
it. Each unit still happens whole or not at all; what no longer holds is that a batch's
units commit together, which nothing relied on: they were submitted concurrently and none
was answered, so any order that keeps each key's is one they could have run in. A unit
that fails after others of its batch committed fails alone
(:class:`~broker.commit.base.PartialCommit`): those committed are answered, those after it
run alone. Each unit's callers are answered as soon as its statement committed, not when
the batch's last one has (the fused requests' callers one round trip before the fused
cancels'). Measured (bench/RESULTS.md, Broker): under the request scenario a round trip
cost ~2 ms of a busy event loop's time, ``BEGIN`` and ``COMMIT`` included, so a batch of
two fused statements took four; now it takes two, and half its callers wait one.

The connections are outside the engine's pool, so the hot path never waits for a pooled
connection that a slow statistics query holds. There are :data:`LANES` such connections
("lanes"), each running its own batches (the database serialises what must be: the
guards' row locks). One by default: while its batch is under way the next one gathers, so
the writes of a busy process go as a few big fused statements rather than more, smaller
ones on several connections. A connection that breaks (a restarted database) is dropped;
the failed units are retried one by one by the base class, each on a fresh connection. One
that broke while a statement or ``COMMIT`` was under way may have committed (its answer
lost): then the retries wait for the database (:meth:`AsyncpgCommitter._in_doubt`).

**Lock waits across processes.** Within a process, units that contend for a row share a
lane, so two batches of one process never wait on each other in a cycle (see
:mod:`broker.commit.base`). Across processes nothing orders them: a transaction of
process A may hold a row (a session's, for a unit's first statement or a fused statement's
first rows) and wait for one that process B's holds (a racing accept's request), while B
waits for A's. Statements committed alone hold nothing once they return, so a batch of
them is never half of such a cycle across its statements; but one multi-row statement, or
a unit of several, can be. PostgreSQL breaks a cycle only after ``deadlock_timeout`` (a
second by default, a superuser's setting), and every caller of the batch waits that long;
found by the SIGTERM fault test, whose clients wait a second for their answers before
following ``server:restart``. So every transaction the writer runs waits for a row lock
at most :data:`BATCH_LOCK_WAIT_MS` (``lock_timeout``: the connection's setting for a
statement alone, set with ``BEGIN`` for a transaction): one that waits longer gives up
its own locks (rolled back whole), which ends any cycle it is part of, and runs once
more, whole, without that limit: the other side of a cycle has gone on meanwhile, and a
wait that was only long (another batch slow on a starved core) is waited out, rather than
the batch's units being retried one by one, a round trip each, just when the machine is
busiest. Only if that second run fails too (PostgreSQL's deadlock check, when both sides
of a cycle gave up at once) are its units retried one by one by the base class, each
giving up and running again in the same way: a unit alone waits as long as it must. A
lock timeout or a deadlock keeps the connection.

Errors are raised as SQLAlchemy's exceptions (``IntegrityError`` for a violated
constraint, ``DBAPIError`` otherwise), as the engine backend would raise them.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect

from broker.commit.base import (
    Answer,
    GroupCommitter,
    Outcome,
    PartialCommit,
    StepResult,
    Unit,
)
from broker.commit.prepared import BoundBatch, StatementCache
from broker.db.closing import close_within
from broker.metrics import count_lock_give_up

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30
APPLICATION_NAME = "homework-help writer"  # how the connection shows in pg_stat_activity
# Writer connections per process. More lanes split the same writes into more, smaller
# fused statements and commits: four were slower than two, and two than one (when each
# batch was BEGIN, its statements and COMMIT; bench/RESULTS.md, Broker: scaled
# `help:request` +15% with one, PostgreSQL's CPU per request ~30% lower). The price of
# one: a statement waiting for a row lock (up to BATCH_LOCK_WAIT_MS) holds up every write
# of its process, not only its lane's keys; such waits are rare and short (another
# process's transaction committing).
LANES = 1
# How long a transaction of the writer waits for a row lock before it gives up its own and
# runs again without the limit (see above). A batch's transaction lasts a few
# milliseconds; on a starved core tens: past this, it is most likely a cycle.
BATCH_LOCK_WAIT_MS = 200
BEGIN_BATCH = f"BEGIN; SET LOCAL lock_timeout = {BATCH_LOCK_WAIT_MS}"
BEGIN_UNLIMITED = "BEGIN; SET LOCAL lock_timeout = 0"  # a run again after giving up
SAVEPOINT = "unit"  # one at a time: each is released or rolled back before the next


def asyncpg_dsn(url: URL) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from an engine's URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncpgCommitter(GroupCommitter):
    fuses = True  # a statement is a round trip: a batch's cancels go as one

    def __init__(self, dsn: str, dialect: Dialect, lanes: int = LANES) -> None:
        super().__init__(lanes)
        self.dsn = dsn
        self.statements = StatementCache(dialect)
        self._conns: dict[int, asyncpg.Connection] = {}
        self.lock_give_ups = 0  # transactions that gave up a lock wait and ran again

    async def _connection(self, lane: int) -> asyncpg.Connection:
        conn = self._conns.get(lane)
        if conn is None or conn.is_closed():
            conn = self._conns[lane] = await asyncpg.connect(
                self.dsn,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings={
                    "application_name": APPLICATION_NAME,
                    # a statement alone gives up a lock wait as a batch does
                    "lock_timeout": str(BATCH_LOCK_WAIT_MS),
                },
            )
        return conn

    async def _commit(
        self, units: list[Unit], lane: int = 0, answer: Answer | None = None
    ) -> list[Outcome]:
        batch = self.statements.bind(units)
        if all(len(unit.steps) == 1 for unit in batch):  # no savepoint either: one step
            return await self._each_alone(batch, lane, answer)
        return await self._transact_or_wait(batch, lane, BEGIN_BATCH)

    async def _each_alone(
        self, batch: BoundBatch, lane: int, answer: Answer | None
    ) -> list[Outcome]:
        """Each unit (one statement) as its own transaction, in order, each answered
        (``answer``) once it committed; a statement that gave up a lock wait runs again
        without the limit. :class:`PartialCommit` when one fails after others committed."""
        done: list[Outcome] = []
        for index, unit in enumerate(batch):
            try:
                [outcome] = await self._transact_or_wait([unit], lane, None)
            except Exception as error:
                if not done:
                    raise
                raise PartialCommit(done, error) from error
            done.append(outcome)
            if answer is not None and index < len(batch) - 1:  # the last: with the batch
                answer(index, outcome)
        return done

    async def _transact_or_wait(
        self, batch: BoundBatch, lane: int, begin: str | None
    ) -> list[Outcome]:
        """:meth:`_transact` under the lock limit; if it gave up a lock wait (see the
        module), once more without the limit."""
        try:
            return await self._transact(batch, lane, begin)
        except sa_exc.OperationalError as error:  # it gave up its locks
            log.info(
                "a batch of %d writes gave up waiting for a row lock (%s); running it again",
                len(batch), str(error.orig).splitlines()[0][:200],
            )
            self.lock_give_ups += 1
            count_lock_give_up()
            return await self._transact(batch, lane, BEGIN_UNLIMITED)

    async def _transact(
        self, batch: BoundBatch, lane: int, begin: str | None
    ) -> list[Outcome]:
        """Run ``batch`` as one transaction (opened with ``begin``; None: ``batch`` is one
        statement, its own transaction) on ``lane``'s connection; ``OperationalError``
        (rolled back, the connection kept) when it gave up waiting for a row lock or
        PostgreSQL broke a cycle it was in."""
        sql, args = "connect", ()
        conn: asyncpg.Connection | None = None
        try:
            conn = await self._connection(lane)
            # One statement is a transaction by itself, committed when it returns: one
            # round trip instead of three (BEGIN, it, COMMIT). Else the transaction by
            # hand (asyncpg's conn.transaction() would not let BEGIN carry the SET LOCAL).
            if begin is not None:
                sql = begin
                await conn.execute(sql)
            results = []
            for unit in batch:
                if unit.savepoint:
                    await conn.execute(f"SAVEPOINT {SAVEPOINT}")
                outcome = Outcome()
                for step in unit.steps:
                    sql, args = step.sql, step.args
                    value: StepResult
                    if step.returning:
                        value = [tuple(r) for r in await conn.fetch(sql, *args)]
                    else:
                        value = _rowcount(await conn.execute(sql, *args))
                    if not outcome.add(value, step.expect):
                        break
                if unit.savepoint:
                    sql = (
                        f"ROLLBACK TO SAVEPOINT {SAVEPOINT}" if outcome.failed is not None
                        else f"RELEASE SAVEPOINT {SAVEPOINT}"
                    )
                    await conn.execute(sql)
                results.append(outcome)
            if begin is not None:
                sql = "COMMIT"
                await conn.execute(sql)
            return results
        except asyncpg.IntegrityConstraintViolationError as error:
            await self._rollback(conn, lane)
            raise sa_exc.IntegrityError(sql, args, error) from error
        except asyncpg.DataError as error:  # a bad value: the connection is fine
            await self._rollback(conn, lane)
            raise sa_exc.DataError(sql, args, error) from error
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError) as error:
            # BATCH_LOCK_WAIT_MS passed, or a cycle PostgreSQL broke: the connection is fine
            await self._rollback(conn, lane)
            raise sa_exc.OperationalError(sql, args, error) from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            self._drop(lane)  # anything else: start the next batch on a fresh connection
            raise sa_exc.DBAPIError(sql, args, error) from error
        except Exception:  # not the database's (a bug): end the transaction, raise as is
            await self._rollback(conn, lane)
            raise
        except BaseException:  # cancelled mid-round-trip: the connection's state is unknown
            self._drop(lane)
            raise

    def _in_doubt(self, error: Exception) -> bool:
        """The connection was lost while a statement (or ``COMMIT``) was under way: it
        may have committed. Not a failure to connect (nothing was sent), an error the
        server answered (it rolled back), or a timeout (a frozen server: retrying would
        hold the lane on it)."""
        orig = getattr(error, "orig", None)
        return (
            isinstance(error, sa_exc.DBAPIError)
            and error.statement != "connect"
            and isinstance(orig, (asyncpg.ConnectionDoesNotExistError, ConnectionResetError))
        )

    async def _rollback(self, conn: asyncpg.Connection | None, lane: int) -> None:
        """End the failed transaction, keeping the connection if that works."""
        if conn is None or conn.is_closed() or not conn.is_in_transaction():
            return  # a statement alone failed: nothing to end
        try:
            await conn.execute("ROLLBACK")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            self._drop(lane)

    def _drop(self, lane: int) -> None:
        conn = self._conns.pop(lane, None)
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _release(self, lane: int) -> None:
        conn = self._conns.pop(lane, None)
        if conn is not None:
            await close_within(conn)

    async def _dispose(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        await asyncio.gather(*(close_within(conn) for conn in conns))


def _rowcount(status: str) -> int:
    """``INSERT 0 1`` / ``UPDATE 3`` / ``DELETE 0`` -> the count of rows."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
