"""The background jobs of ``homework-help worker``, in one place, and the worker itself.

:func:`registered_jobs` is the list: to add a job, add one line there, e.g. a job
``async def my_job(engine, now) -> dict[str, int]`` becomes::

    Job("my_job", 60.0, partial(my_job, ctx.engine)),

Every job must be idempotent (a lost lease or a crash runs it again: see
:mod:`broker.jobs` and :mod:`broker.leases`). :func:`run_worker` runs them: leases in Redis
when ``REDIS_URL`` is set (several workers run each job once between them), else in
process memory (one worker); the jobs' state in the database (``job_runs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import constants as C
from broker import rooms
from broker.db.closing import dispose_within
from broker.db.engine import create_engine
from broker.db.planner_stats import analyze_stale
from broker.jobs import Job, JobRunner
from broker.leases import make_leases
from broker.outbox import Sender, drain, make_sender
from broker.retention import purge_engine
from broker.scheduler import jobs as scheduler_jobs
from broker.settings import Settings

log = logging.getLogger("broker.worker")

# Booked rooms open 5 minutes before their start (broker.rooms.OPEN_LEAD): run every 30 s,
# a room opens between 5 and 4.5 minutes ahead.
ROOMS_EVERY_S = 30.0


@dataclass(frozen=True)
class WorkerContext:
    """What jobs are made from: the settings, one engine, the outbox's sender."""

    settings: Settings
    engine: AsyncEngine
    sender: Sender
    retention_every_s: float = C.RETENTION_EVERY_S


def registered_jobs(ctx: WorkerContext) -> list[Job]:
    """Every background job of the worker (name, interval, ``run(now)``)."""
    return [
        Job("retention_purge", ctx.retention_every_s,
            partial(purge_engine, ctx.engine, ctx.settings)),
        Job("outbox_send", C.OUTBOX_EVERY_S, partial(drain, ctx.engine, ctx.sender)),
        Job("scheduler_attendance", 60.0, partial(scheduler_jobs.close_attendance, ctx.engine)),
        Job("scheduler_reminders", 300.0, partial(scheduler_jobs.queue_reminders, ctx.engine)),
        Job("scheduler_parent_links", 3600.0,
            partial(scheduler_jobs.expire_parent_links, ctx.engine)),
        Job("scheduler_rooms", ROOMS_EVERY_S, partial(rooms.run_rooms, ctx.engine)),
        Job("planner_statistics", C.PLANNER_STATS_EVERY_S, partial(analyze_stale, ctx.engine)),
    ]


async def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    retention_every_s: float = C.RETENTION_EVERY_S,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the registered jobs until SIGTERM/SIGINT (or ``stop`` is set), or (``once``)
    one round: every job that is due runs once, then it returns 1 if any failed, else 0."""
    engine = create_engine(settings.database_url)
    leases = make_leases(settings.redis_url, settings.redis_prefix)
    try:
        ctx = WorkerContext(settings, engine, make_sender(settings), retention_every_s)
        runner = JobRunner(registered_jobs(ctx), leases, engine)
        await leases.start()
        log.info(
            "worker %s: jobs %s; leases in %s; outbox sent by %s", runner.worker_id,
            ", ".join(job.name for job in runner.jobs),
            "Redis" if settings.redis_url else "memory (one worker)", type(ctx.sender).__name__,
        )
        if once:
            outcomes = await runner.run_due()
            log.info("worker round: %s", outcomes)
            return 1 if {"failed", "error"} & set(outcomes.values()) else 0
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
        await runner.serve(stop)
        log.info("worker %s stopped", runner.worker_id)
        return 0
    finally:
        await leases.close()
        await dispose_within(engine)  # a database that answers nothing must not hold the exit
