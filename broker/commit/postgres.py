"""The PostgreSQL backend: one dedicated asyncpg connection, without SQLAlchemy in between.

Each batch is ``BEGIN``, the statements (asyncpg prepares each SQL text once per
connection and reuses it) and ``COMMIT`` on a connection of its own, outside the engine's
pool, so the hot path never waits for a pooled connection that a slow statistics query
holds. A connection that breaks (a restarted database) is dropped; the failed batch is
retried unit by unit by the base class, each on a fresh connection.

Errors are raised as SQLAlchemy's exceptions (``IntegrityError`` for a violated
constraint, ``DBAPIError`` otherwise), as the engine backend would raise them.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect

from broker.commit.base import GroupCommitter, Outcome, StepResult, Unit
from broker.commit.prepared import StatementCache

CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30
APPLICATION_NAME = "homework-help writer"  # how the connection shows in pg_stat_activity


def asyncpg_dsn(url: URL) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from an engine's URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncpgCommitter(GroupCommitter):
    def __init__(self, dsn: str, dialect: Dialect) -> None:
        super().__init__()
        self.dsn = dsn
        self.statements = StatementCache(dialect)
        self._conn: asyncpg.Connection | None = None
        self._connecting = asyncio.Lock()

    async def _connection(self) -> asyncpg.Connection:
        async with self._connecting:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    self.dsn,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=COMMAND_TIMEOUT_S,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            return self._conn

    async def _commit(self, units: list[Unit]) -> list[Outcome]:
        batch = self.statements.bind(units)
        sql, args = "connect", ()
        try:
            conn = await self._connection()
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
            await self._drop()  # anything else: start the next batch on a fresh connection
            raise sa_exc.DBAPIError(sql, args, error) from error

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _dispose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()


def _rowcount(status: str) -> int:
    """``INSERT 0 1`` / ``UPDATE 3`` / ``DELETE 0`` -> the count of rows."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
