"""Background jobs: each runs every ``every_s`` seconds, once across all workers, with its
state in the database (table ``job_runs``) and its lease in :mod:`broker.leases`.

A :class:`Job` is a name, an interval and ``run(now) -> counts``. A :class:`JobRunner`
(one per worker process) looks at each job's row in ``job_runs``; when it is due, takes the
job's lease, looks again (another worker may have just run it), records the start, runs
the job while renewing the lease, and records the end. ``run_due(now)`` does one such
round (tests call it with a fake clock); ``serve()`` repeats it until stopped.

When a job is due, from its row (so every worker agrees, and a restart forgets nothing):

* never started: now;
* started and not finished (``last_ok`` is NULL): now, if its lease is free: the worker
  that started it crashed, or lost its lease, so it runs again;
* succeeded: ``every_s`` after it last *started* (a steady cadence);
* failed: after a backoff from when it failed: :data:`~broker.constants.JOB_RETRY_BASE_S`
  doubling per consecutive failure, capped at ``every_s``.

Guarantees:

* **Once per round across workers, normally**: under its lease, and after a second look
  at its row, only one worker starts a due job. A lost lease (a paused worker, Redis
  flushed or unreachable while renewing) lets another worker run it at the same time, so
  **jobs must be idempotent**; see :mod:`broker.leases`. A runner whose lease is lost lets
  its job finish (stopping it halfway would be no safer) and logs that it happened.
* **A crash loses no job**: the state is in the database; a job that was running when its
  worker died runs again on another worker once its lease expires (at most
  :data:`~broker.constants.JOB_LEASE_TTL_S`).
* **A failure is retried and logged once**: ``job_runs`` keeps ``failures`` (consecutive
  failures since the last success, 0 after one) and ``last_error``; the first failure of
  a streak is logged at ERROR with its traceback and the job's name, repeats only at
  DEBUG, and the recovery at INFO. ``runs`` counts starts.
* A late finisher does not overwrite a newer run's record: the end is written only where
  the row still shows this worker's start.
* When the lease store is unreachable, or does not answer within
  :data:`~broker.constants.REDIS_WAIT_S` (a frozen Redis, a black-holed route), no job
  starts on this worker (logged once per outage) and the worker's round is not held up;
  the jobs catch up from the database when it is back. A renewal or release that does
  not answer in time is given up the same way (the lease expires by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import constants as C
from broker.db.closing import stop_task
from broker.db.models import metadata
from broker.leases import Leases
from broker.outages import kind_of, summary

log = logging.getLogger("broker.jobs")
job_runs = metadata.tables["job_runs"]

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
Outcome = Literal["ran", "failed", "held", "waiting", "error"]
"""What one job did in a round: ran (and succeeded), failed (recorded, will be retried),
held (its lease is someone else's, or the lease store is unreachable), waiting (not
due), error (its state could not be read or written: the database is unreachable)."""

_ERROR_WIDTH = 500  # job_runs.last_error
_NAME_WIDTH = 64  # job_runs.name


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    """``host:pid``, which names a worker in ``job_runs.worker`` and in its lease owners."""
    return f"{socket.gethostname()}:{os.getpid()}"[:_NAME_WIDTH]


@dataclass(frozen=True)
class Job:
    """A background job: ``run(now)`` returns counts for the log (``{"sent": 3}``).

    ``run`` must be idempotent (see the module's guarantees). Jobs that take other
    arguments are bound with ``functools.partial(job, engine)`` or a lambda."""

    name: str
    every_s: float
    run: Callable[[datetime], Awaitable[dict[str, int]]]

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > _NAME_WIDTH:
            raise ValueError(f"a job name has 1 to {_NAME_WIDTH} characters: {self.name!r}")
        if not self.every_s > 0:
            raise ValueError(f"job {self.name}: every_s must be positive, got {self.every_s!r}")

    def retry_after_s(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures: doubling, capped at ``every_s``."""
        steps = max(failures, 1) - 1
        return min(self.every_s, C.JOB_RETRY_BASE_S * 2.0 ** min(steps, 32))


@dataclass(frozen=True)
class JobState:
    """A job's row in ``job_runs``."""

    name: str
    runs: int
    failures: int
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_ok: bool | None
    last_error: str
    worker: str

    def due_at(self, job: Job) -> datetime | None:
        """When ``job`` is next due; None means now (see the module's rules)."""
        if self.last_started_at is None or self.last_ok is None:
            return None
        if self.last_ok:
            return self.last_started_at + timedelta(seconds=job.every_s)
        failed_at = self.last_finished_at or self.last_started_at
        return failed_at + timedelta(seconds=job.retry_after_s(self.failures))


_STATE_COLUMNS = [job_runs.c[name] for name in JobState.__dataclass_fields__]


def is_due(job: Job, state: JobState | None, now: datetime) -> bool:
    due = None if state is None else state.due_at(job)
    return due is None or due <= now


def _upsert(dialect: str) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(job_runs)


class JobRunner:
    """Runs ``jobs`` on one worker; several runners sharing ``leases`` and the database run
    each due job once between them."""

    def __init__(
        self,
        jobs: Iterable[Job],
        leases: Leases,
        engine: AsyncEngine,
        *,
        clock: Clock = utcnow,
        worker_id: str | None = None,
        sleep: Sleep = asyncio.sleep,
        lease_ttl_s: float = C.JOB_LEASE_TTL_S,
        renew_every_s: float = C.JOB_LEASE_RENEW_S,
        poll_s: float = C.JOB_POLL_S,
    ) -> None:
        self.jobs = list(jobs)
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        if not 0 < renew_every_s < lease_ttl_s:
            raise ValueError("a lease must be renewed more often than it expires")
        self.leases = leases
        self.engine = engine
        self.clock = clock
        self.worker_id = (worker_id or default_worker_id())[:_NAME_WIDTH]
        self.sleep = sleep
        self.lease_ttl_s = lease_ttl_s
        self.renew_every_s = renew_every_s
        self.poll_s = poll_s
        self._troubled: set[str] = set()  # "<job>:lease" / "<job>:state" outages logged

    # -- state ---------------------------------------------------------------------------

    async def states(self) -> dict[str, JobState]:
        """Every job's row in ``job_runs`` (jobs never run have none)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(*_STATE_COLUMNS))).mappings().all()
        return {row["name"]: JobState(**row) for row in rows}

    async def _state(self, name: str) -> JobState | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(*_STATE_COLUMNS).where(job_runs.c.name == name)))
                .mappings()
                .first()
            )
        return None if row is None else JobState(**row)

    async def _record_start(self, name: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            stmt = _upsert(conn.dialect.name).values(
                name=name, runs=1, failures=0, last_started_at=now, last_finished_at=None,
                last_ok=None, last_error="", worker=self.worker_id,
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "runs": job_runs.c.runs + 1,
                        "last_started_at": now,
                        "last_ok": None,
                        "worker": self.worker_id,
                    },
                )
            )

    async def _record_end(self, name: str, started: datetime, error: str | None) -> bool:
        """Write the end of the run that started at ``started``; False if a newer run (on
        another worker, after a lost lease) has replaced it in the row."""
        values: dict[str, Any] = {"last_finished_at": self.clock(), "last_ok": error is None}
        if error is None:
            values.update(failures=0, last_error="")
        else:
            values.update(failures=job_runs.c.failures + 1, last_error=error[:_ERROR_WIDTH])
        async with self.engine.begin() as conn:
            result = await conn.execute(
                job_runs.update()
                .where(
                    job_runs.c.name == name,
                    job_runs.c.worker == self.worker_id,
                    job_runs.c.last_started_at == started,
                    job_runs.c.last_ok.is_(None),
                )
                .values(**values)
            )
        return bool(result.rowcount)

    # -- one round -----------------------------------------------------------------------

    async def run_due(self, now: datetime | None = None) -> dict[str, Outcome]:
        """Run every job that is due at ``now`` (default: the clock) once, concurrently,
        each under its lease; return what each job did."""
        now = now or self.clock()
        outcomes = await asyncio.gather(*(self.run_job(job, now) for job in self.jobs))
        return {job.name: outcome for job, outcome in zip(self.jobs, outcomes, strict=True)}

    async def run_job(self, job: Job, now: datetime) -> Outcome:
        """Run ``job`` if it is due at ``now`` and its lease is free. Never raises (but for
        cancellation): a failure of the job is recorded, one of the infrastructure logged."""
        try:
            if not is_due(job, await self._state(job.name), now):
                self._recovered(f"{job.name}:state")
                return "waiting"
        except Exception:
            self._trouble(f"{job.name}:state", "job %s: cannot read its state", job.name)
            return "error"
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:12]}"
        try:
            async with asyncio.timeout(C.REDIS_WAIT_S):
                acquired = await self.leases.acquire(job.name, owner, self.lease_ttl_s)
        except Exception:
            self._trouble(f"{job.name}:lease", "job %s: the lease store is unreachable", job.name)
            return "held"
        self._recovered(f"{job.name}:lease")
        if not acquired:
            return "held"
        try:
            return await self._run_leased(job, now, owner)
        finally:
            with contextlib.suppress(Exception):  # it expires anyway
                async with asyncio.timeout(C.REDIS_WAIT_S):
                    await self.leases.release(job.name, owner)

    async def _run_leased(self, job: Job, now: datetime, owner: str) -> Outcome:
        try:
            state = await self._state(job.name)  # a second look, under the lease
            if not is_due(job, state, now):
                return "waiting"
            await self._record_start(job.name, now)
        except Exception:
            self._trouble(f"{job.name}:state", "job %s: cannot record its start", job.name)
            return "error"
        self._recovered(f"{job.name}:state")
        failures = 0 if state is None else state.failures
        renewer = asyncio.create_task(self._keep_lease(job.name, owner))
        error: str | None = None
        counts: dict[str, int] = {}
        try:
            counts = await job.run(now)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if failures == 0 and (kind := kind_of(exc)) is not None:  # an outage: one line
                log.warning("job %s failed (%s unavailable: %s); retrying after %.0f s",
                            job.name, kind, error[:200], job.retry_after_s(1))
            elif failures == 0:
                log.exception("job %s failed; retrying after %.0f s", job.name,
                              job.retry_after_s(1))
            else:
                log.debug("job %s failed again (%d in a row): %s", job.name, failures + 1, error)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if error is None:
            if failures:
                log.info("job %s recovered after %d failures: %s", job.name, failures, counts)
            else:
                log.info("job %s: %s", job.name, counts)
        try:
            if not await self._record_end(job.name, now, error):
                log.warning("job %s: a newer run replaced this one's record", job.name)
        except Exception:
            self._trouble(f"{job.name}:state", "job %s: cannot record its end", job.name)
            return "error"
        return "ran" if error is None else "failed"

    async def _keep_lease(self, name: str, owner: str) -> None:
        """Renew the lease every ``renew_every_s`` until cancelled; a lost lease is logged
        once (the job goes on: it is idempotent, and whoever took the lease may run it)."""
        while True:
            await self.sleep(self.renew_every_s)
            try:
                async with asyncio.timeout(C.REDIS_WAIT_S):
                    kept = await self.leases.renew(name, owner, self.lease_ttl_s)
            except Exception:
                log.warning("job %s: could not renew its lease (will try again)", name)
                continue
            if not kept:
                log.warning(
                    "job %s lost its lease while running; another worker may run it too", name
                )
                return

    def _trouble(self, key: str, message: str, name: str) -> None:
        """Log the failure being handled once until ``key`` recovers: an outage of the
        database or Redis as one line (it is expected, and every job says the same), and
        anything else with its traceback."""
        if key in self._troubled:
            log.debug(message, name)
            return
        self._troubled.add(key)
        error = sys.exc_info()[1]
        if error is not None and (kind := kind_of(error)) is not None:
            log.warning(message + " (%s unavailable: %s; logged once until it recovers)",
                        name, kind, summary(error))
        else:
            log.exception(message + " (logged once until it recovers)", name)

    def _recovered(self, key: str) -> None:
        if key in self._troubled:
            self._troubled.discard(key)
            log.info("%s: recovered", key)

    # -- the loop ------------------------------------------------------------------------

    async def serve(
        self, stop: asyncio.Event | None = None, grace_s: float = C.JOB_STOP_GRACE_S
    ) -> None:
        """Run every job on its own loop until ``stop`` is set: a slow job never delays
        another. Each loop sleeps until its job is next due, or ``poll_s`` at most (how soon
        a job another worker left unfinished is picked up). Once ``stop`` is set no job
        starts; running ones get ``grace_s`` to finish and are then cancelled (their rows
        stay started-not-finished, so they run again at once on the next worker)."""
        stop = stop or asyncio.Event()
        loops = [asyncio.create_task(self._loop(job, stop)) for job in self.jobs]
        try:
            await stop.wait()
            _, running = await asyncio.wait(loops, timeout=grace_s)
            if running:
                log.warning("stopping with %d job(s) still running; they will run again",
                            len(running))
        finally:  # each cancelled until it has ended, however long its database takes
            await asyncio.gather(*(stop_task(task) for task in loops))

    async def _loop(self, job: Job, stop: asyncio.Event) -> None:
        while not stop.is_set():
            outcome = await self.run_job(job, self.clock())
            pause = self.poll_s if outcome in ("held", "error") else await self._pause(job)
            napping = asyncio.ensure_future(self.sleep(pause))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([napping, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                napping.cancel()
                stopping.cancel()

    async def _pause(self, job: Job) -> float:
        try:
            state = await self._state(job.name)
        except Exception:
            return self.poll_s
        due = None if state is None else state.due_at(job)
        wait = self.poll_s if due is None else (due - self.clock()).total_seconds()
        return min(max(wait, 0.5), self.poll_s)
