"""The PostgreSQL backend: dedicated asyncpg connections, without SQLAlchemy in between.

Each batch is ``BEGIN``, the statements (asyncpg prepares each SQL text once per
connection and reuses it) and ``COMMIT`` on a connection of its own, outside the engine's
pool, so the hot path never waits for a pooled connection that a slow statistics query
holds. There are :data:`LANES` such connections, each running its own batches: a batch
costs a round trip per statement, so batches run side by side rather than queue behind
one connection (the database serialises what must be: the guards' row locks). A
connection that breaks (a restarted database) is dropped; the failed batch is retried unit
by unit by the base class, each on a fresh connection.

Errors are raised as SQLAlchemy's exceptions (``IntegrityError`` for a violated
constraint, ``DBAPIError`` otherwise), as the engine backend would raise them.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect

from broker.commit.base import GroupCommitter, Outcome, StepResult, Unit
from broker.commit.prepared import StatementCache

CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30
APPLICATION_NAME = "homework-help writer"  # how the connection shows in pg_stat_activity
LANES = 4  # writer connections per process


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

    async def _connection(self, lane: int) -> asyncpg.Connection:
        conn = self._conns.get(lane)
        if conn is None or conn.is_closed():
            conn = self._conns[lane] = await asyncpg.connect(
                self.dsn,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings={"application_name": APPLICATION_NAME},
            )
        return conn

    async def _commit(self, units: list[Unit], lane: int = 0) -> list[Outcome]:
        batch = self.statements.bind(units)
        sql, args = "connect", ()
        try:
            conn = await self._connection(lane)
            sql = "BEGIN"
            results = []
            async with conn.transaction():
                for unit in batch:
                    savepoint = conn.transaction() if unit.savepoint else None
                    if savepoint is not None:
                        await savepoint.start()
                    outcome = Outcome()
                    for index, step in enumerate(unit.steps):
                        sql, args = step.sql, step.args
                        value: StepResult
                        if step.returning:
                            value = [tuple(r) for r in await conn.fetch(sql, *args)]
                        else:
                            value = _rowcount(await conn.execute(sql, *args))
                        outcome.append(value)
                        count = len(value) if isinstance(value, list) else value
                        if step.expect is not None and count != step.expect:
                            outcome.failed = index
                            break
                    if savepoint is not None:
                        await (
                            savepoint.rollback() if outcome.failed is not None
                            else savepoint.commit()
                        )
                    results.append(outcome)
            return results
        except asyncpg.IntegrityConstraintViolationError as error:
            raise sa_exc.IntegrityError(sql, args, error) from error
        except asyncpg.DataError as error:  # a bad value: the connection is fine
            raise sa_exc.DataError(sql, args, error) from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            self._drop(lane)  # anything else: start the next batch on a fresh connection
            raise sa_exc.DBAPIError(sql, args, error) from error

    def _drop(self, lane: int) -> None:
        conn = self._conns.pop(lane, None)
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _dispose(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            if not conn.is_closed():
                await conn.close()


def _rowcount(status: str) -> int:
    """``INSERT 0 1`` / ``UPDATE 3`` / ``DELETE 0`` -> the count of rows."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
