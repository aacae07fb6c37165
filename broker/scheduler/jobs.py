"""The scheduler's background jobs, in the shape ``broker.jobs.Job`` runs:
``run(now) -> counts``, bound to an engine with ``functools.partial``::

    Job("scheduler_attendance", 60.0, partial(scheduler_jobs.close_attendance, engine)),
    Job("scheduler_reminders", 300.0, partial(scheduler_jobs.queue_reminders, engine)),
    Job("scheduler_parent_links", 3600.0, partial(scheduler_jobs.expire_parent_links, engine)),

All are idempotent (see :mod:`broker.scheduler.attendance` and
:func:`broker.scheduler.parents.expire_links`): a lost lease or a crash that runs them
again closes nothing twice, writes no reminder twice and marks or deletes no link twice.
A parent link's expiry is also checked whenever one is used, so the links job only keeps
the table tidy (``expired`` marked, hashes deleted after the retention period).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.scheduler import attendance, parents
from broker.scheduler.service import Scheduler


def _at(engine: AsyncEngine, now: datetime) -> Scheduler:
    return Scheduler(engine, secret="", clock=lambda: now)  # these jobs sign nothing


async def close_attendance(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Close attendance of ended occurrences; alert tutor no-shows."""
    return await attendance.close_ended(_at(engine, now))


async def queue_reminders(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Write the reminders of occurrences starting within 24 hours."""
    return {"occurrences": await attendance.queue_reminders(_at(engine, now))}


async def expire_parent_links(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Mark expired unused parent links; delete those past the retention period."""
    return await parents.expire_links(_at(engine, now))
