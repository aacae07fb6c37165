"""The scheduler's background jobs, in the shape ``broker.jobs.Job`` runs:
``run(now) -> counts``, bound to an engine with ``functools.partial``::

    Job("scheduler_attendance", 60.0, partial(scheduler_jobs.close_attendance, engine)),
    Job("scheduler_reminders", 300.0, partial(scheduler_jobs.queue_reminders, engine)),

Both are idempotent (see :mod:`broker.scheduler.attendance`): a lost lease or a crash
that runs them again closes nothing twice and writes no reminder twice. Parent links need
no job: their expiry is checked whenever one is used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.scheduler import attendance
from broker.scheduler.service import Scheduler


def _at(engine: AsyncEngine, now: datetime) -> Scheduler:
    return Scheduler(engine, secret="", clock=lambda: now)  # these jobs sign nothing


async def close_attendance(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Close attendance of ended occurrences; alert tutor no-shows."""
    return await attendance.close_ended(_at(engine, now))


async def queue_reminders(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Write the reminders of occurrences starting within 24 hours."""
    return {"occurrences": await attendance.queue_reminders(_at(engine, now))}
