"""Handing work between the event loop and a dedicated database thread (the SQLite
writer, :mod:`broker.commit.sqlite`).

The loop puts a job on the thread's queue with a future; the thread settles the future
through :meth:`asyncio.AbstractEventLoop.call_soon_threadsafe`. A job whose loop has
closed is dropped (nobody waits for it), and a future already settled (its caller was
cancelled) is left alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C")


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread running ``target``, started."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


async def stop_thread(jobs: queue.SimpleQueue[Any], thread: threading.Thread | None) -> None:
    """Ask the thread serving ``jobs`` to stop (``None`` after the jobs queued) and wait
    for it, without blocking the loop."""
    if thread is not None:
        jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)


def serve_jobs(jobs: queue.SimpleQueue[Any], connect: Callable[[], C],
               run: Callable[[C, Any], Any], close: Callable[[C], None]) -> None:
    """On the thread: take ``(payload, loop, future)`` jobs until ``None``, settling each
    future with ``run(connection, payload)`` or its error. Every job is settled whatever
    happens: a connection that cannot be made fails that job and is tried again for the
    next one; the connection is closed when the thread stops."""
    conn: C | None = None
    try:
        while (job := jobs.get()) is not None:
            payload, loop, done = job
            try:
                if conn is None:
                    conn = connect()
                result = run(conn, payload)
            except BaseException as error:  # handed to the waiting coroutine
                settle_from_thread(loop, done, None, error)
            else:
                settle_from_thread(loop, done, result, None)
    finally:
        if conn is not None:
            close(conn)


def settle_from_thread(loop: asyncio.AbstractEventLoop, done: asyncio.Future[T],
                       result: T | None, error: BaseException | None) -> None:
    """From the thread: give ``done`` its result (or ``error``) on its loop."""
    try:
        loop.call_soon_threadsafe(_settle, done, result, error)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle(done: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)  # type: ignore[arg-type]


__all__ = ["serve_jobs", "settle_from_thread", "start_thread", "stop_thread"]
