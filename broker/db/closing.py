"""Closing database connections on shutdown without waiting on a database that does not
answer (frozen, or behind a black-holed network): each close is bounded, then dropped.

The server rolls back whatever a dropped connection had not committed, so nothing is
half-written; only callers that were never answered are left, which a shutdown leaves
anyway (:data:`broker.constants.CLOSE_SETTLE_S`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.constants import CLOSE_CONNECTION_S

log = logging.getLogger(__name__)


async def close_within(conn: asyncpg.Connection, seconds: float = CLOSE_CONNECTION_S) -> None:
    """Close ``conn`` gracefully (PostgreSQL's Terminate message) if the server answers
    within ``seconds``, else drop it (asyncpg aborts the transport itself on a timeout or
    any error). Never raises."""
    if conn.is_closed():
        return
    with contextlib.suppress(Exception):
        await conn.close(timeout=seconds)
    if not conn.is_closed():
        conn.terminate()


async def dispose_within(engine: AsyncEngine, seconds: float = CLOSE_CONNECTION_S) -> None:
    """Dispose of ``engine``'s pool: its idle connections closed (SQLAlchemy rolls each
    back first, unbounded) if that is done within ``seconds``, else the pool is dropped
    without closing them (the process is exiting; the kernel closes the sockets). The
    close this cancels is not logged as SQLAlchemy's error: it is ours."""
    pool_log = engine.pool.logger  # a Logger, or (echo_pool) an InstanceLogger around one
    target = pool_log if isinstance(pool_log, logging.Logger) else pool_log.logger
    ours = _OwnCancellation()
    target.addFilter(ours)
    try:
        async with asyncio.timeout(seconds):
            await engine.dispose()
    except TimeoutError:
        log.warning("closing: the database did not answer within %.1f s; its pool dropped",
                    seconds)
        await engine.dispose(close=False)
    finally:
        target.removeFilter(ours)


class _OwnCancellation(logging.Filter):
    """Drops the pool's "Exception closing connection" for a close that
    :func:`dispose_within` cancelled itself; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)
