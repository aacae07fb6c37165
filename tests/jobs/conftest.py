"""Fixtures of the jobs suite: a migrated database and a fake clock (nothing waits on the
wall clock but the Redis lease expiry tests, which wait a fraction of a second)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import create_engine
from broker.migrate import create_schema

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


class FakeClock:
    """One fake time for the runner (``now``), the memory leases (``time``) and the
    runner's sleeps (``sleep`` returns once the test has moved the time far enough)."""

    def __init__(self, start: datetime = T0) -> None:
        self.at = start
        self._moved = asyncio.Condition()
        self.sleepers = 0

    def now(self) -> datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()

    async def sleep(self, seconds: float) -> None:
        until = self.at + timedelta(seconds=seconds)
        async with self._moved:
            self.sleepers += 1
            self._moved.notify_all()
            try:
                await self._moved.wait_for(lambda: self.at >= until)
            finally:
                self.sleepers -= 1

    async def settle(self, sleepers: int, timeout_s: float = 10.0) -> None:
        """Wait (in real time, for database round trips) until ``sleepers`` tasks sleep."""
        async with asyncio.timeout(timeout_s), self._moved:
            await self._moved.wait_for(lambda: self.sleepers >= sleepers)

    async def advance(self, seconds: float) -> None:
        """Move the time and let every task that was waiting for it run."""
        self.at += timedelta(seconds=seconds)
        async with self._moved:
            self._moved.notify_all()
        for _ in range(20):
            await asyncio.sleep(0)


async def frozen(_seconds: float) -> None:
    """The sleep of a worker that was killed (or paused): it never wakes up again."""
    await asyncio.Event().wait()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database at the newest schema."""
    eng = create_engine(database_url)
    await create_schema(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def engine2(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """A second engine (its own pool) on the same database, as a second worker has."""
    eng = create_engine(engine.url.render_as_string(hide_password=False))
    yield eng
    await eng.dispose()
