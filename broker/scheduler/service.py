"""The scheduler's context: the database, the district secret, the clock and the
attendance grace period, shared by the scheduler's operations
(:mod:`~broker.scheduler.setup`, :mod:`~broker.scheduler.booking`,
:mod:`~broker.scheduler.attendance`, :mod:`~broker.scheduler.reports`,
:mod:`~broker.scheduler.parents`).

Every operation that writes runs in **one** transaction (``engine.begin()``): its rows,
its history and its outbox notices commit together or not at all, so a crash or a refusal
leaves nothing half-written. The clock is injected (tests pass a fake one); nothing here
sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

Clock = Callable[[], datetime]

ATTENDANCE_GRACE = timedelta(minutes=5)
PARENT_LINK_TTL = timedelta(days=14)
PARENT_LINK_RETENTION = timedelta(days=90)  # after expiry, then the link's hash is deleted
REMINDER_LEAD = timedelta(hours=24)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Scheduler:
    """What every scheduler operation needs."""

    engine: AsyncEngine
    secret: str
    clock: Clock = field(default=utc_now)
    grace: timedelta = ATTENDANCE_GRACE
    link_ttl: timedelta = PARENT_LINK_TTL
    link_retention: timedelta = PARENT_LINK_RETENTION
    reminder_lead: timedelta = REMINDER_LEAD

    def now(self) -> datetime:
        when = self.clock()
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
