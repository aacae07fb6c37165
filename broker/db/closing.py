"""Closing database connections, and stopping the tasks that use them, on shutdown without
waiting on a database that does not answer (frozen, or behind a black-holed network): each
close is bounded, then dropped; each task is cancelled until it has ended.

The server rolls back whatever a dropped connection had not committed, so nothing is
half-written; only callers that were never answered are left, which a shutdown leaves
anyway (:data:`broker.constants.CLOSE_SETTLE_S`).

Why cancelling once is not enough: a cancellation that lands in a SQLAlchemy call on an
asyncpg connection makes SQLAlchemy invalidate that connection and close it gracefully
under ``asyncio.shield``, waiting up to 2 s for the server's answer; the task ends only
then. On a frozen database every such task held a stop 2 s, one after another: a SIGTERM of
a process with its sweep, its room watch and its row's removal waiting on PostgreSQL took
past the 10 s a deploy allows (the fault suite's SIGTERM-while-frozen scenario, seeds 7 and
9). A second cancellation makes SQLAlchemy drop the connection at once
(:func:`stop_task`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.constants import CANCEL_AGAIN_S, CLOSE_CONNECTION_S

log = logging.getLogger(__name__)

T = TypeVar("T")


async def stop_task(task: asyncio.Future[Any], again_s: float = CANCEL_AGAIN_S) -> None:
    """Cancel ``task`` and return once it has ended, cancelling it again every ``again_s``
    while it has not (module docstring). Never raises what the task raised or its
    cancellation (its caller is stopping it); a cancellation of the caller itself
    propagates, the task then cancelled once more."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_s)
    if not task.cancelled():
        task.exception()  # retrieved: a stopped task's failure is not logged as unretrieved


async def finish_within(work: Awaitable[T], seconds: float) -> T:
    """``await work`` for at most ``seconds``; past that it is stopped (:func:`stop_task`:
    it has ended when this returns) and :class:`TimeoutError` is raised. What ``work``
    raises is raised; a cancellation of the caller stops ``work`` as well."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            await stop_task(task)
    if task.cancelled():
        raise TimeoutError(f"no answer within {seconds:.1f} s")
    return task.result()


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
