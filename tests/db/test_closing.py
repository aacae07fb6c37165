"""Stopping tasks that wait on a database that answers nothing (broker/db/closing.py):
``stop_task`` cancels until the task has ended, ``finish_within`` bounds a piece of work
and stops it. The PostgreSQL test goes through SQLAlchemy to a server behind a held TCP
link (tests/tcp_link.py): a cancellation there makes SQLAlchemy close the connection under
``asyncio.shield``, waiting 2 s for an answer, which held a SIGTERM past 10 s in the fault
suite (test_compound_faults, SIGTERM while PostgreSQL is frozen)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from broker.db import create_engine
from broker.db.closing import finish_within, stop_task
from tests.services import PG_ADMIN_URL, need
from tests.tcp_link import Link


def _shielded_close_on_cancel(closed: asyncio.Future[None]) -> asyncio.Task[None]:
    """A task that, cancelled, waits for ``closed`` under ``asyncio.shield`` (as
    SQLAlchemy's ``terminate`` waits for a graceful close) and ends at once when cancelled
    again."""

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(closed)
            raise

    return asyncio.ensure_future(work())


async def test_one_cancel_waits_for_the_shielded_close_stop_task_does_not() -> None:
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    once = _shielded_close_on_cancel(closed)
    await asyncio.sleep(0)
    once.cancel()
    done, _ = await asyncio.wait({once}, timeout=0.3)
    assert not done, "the shielded close did not hold a single cancellation"

    stopped = _shielded_close_on_cancel(closed)
    await asyncio.sleep(0)
    await stop_task(stopped)
    assert stopped.done() and not closed.done()
    await stop_task(once)
    assert once.cancelled()


async def test_stop_task_never_raises_what_the_task_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)
    await stop_task(task)  # done already: nothing to cancel, its error retrieved, not raised
    assert isinstance(task.exception(), RuntimeError)


async def test_finish_within_returns_raises_and_stops() -> None:
    async def answer() -> int:
        return 42

    async def fails() -> None:
        raise ValueError("bad")

    assert await finish_within(answer(), 1.0) == 42
    with pytest.raises(ValueError):
        await finish_within(fails(), 1.0)

    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    hung = _shielded_close_on_cancel(closed)
    with pytest.raises(TimeoutError):
        await finish_within(hung, 0.05)
    assert hung.done() and not closed.done(), "finish_within returned with its work running"


@pytest.mark.postgres
async def test_a_query_on_a_database_that_answers_nothing_stops_at_once() -> None:
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    parts = urlsplit(PG_ADMIN_URL)
    link = await Link(parts.port or 5432).start()
    engine = create_engine(
        f"postgresql+asyncpg://{parts.username}@127.0.0.1:{link.port}{parts.path}"
    )
    try:
        async with engine.connect() as conn:  # a pooled connection, through the link
            assert await conn.scalar(sa.text("SELECT 1")) == 1

        async def query() -> None:
            async with engine.connect() as conn:  # its ping, or the query, waits
                await conn.execute(sa.text("SELECT 1"))

        link.hold()  # PostgreSQL, for this engine, answers nothing from now on
        task = asyncio.ensure_future(query())
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done
        async with asyncio.timeout(1.0):  # SQLAlchemy alone would wait 2 s
            await stop_task(task)
        assert task.cancelled()
    finally:
        link.release()
        await engine.dispose()
        await link.close()
