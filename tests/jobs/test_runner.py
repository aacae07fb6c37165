"""The job runner over SQLite and PostgreSQL, with a fake clock and explicit rounds.

Two runners on one database and one lease store stand for two worker processes: a due job
runs once between them; a failure is recorded, logged once and retried after a backoff; a
job whose worker died mid-run (its lease expired) runs again on the other; a lease renewed
while a long job runs keeps the other runner out; the state survives in ``job_runs``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import constants as C
from broker.jobs import Job, JobRunner, JobState
from broker.leases import Leases, MemoryLeases, RedisLeases
from broker.redis_keys import RedisKeys
from tests.jobs.conftest import FakeClock, frozen
from tests.services import database_refused

EVERY = 300.0
TTL = 60.0
RENEW = 20.0


class Counting:
    """A job function that counts its calls, optionally failing or waiting on a gate."""

    def __init__(self, fail_times: int = 0, gate: asyncio.Event | None = None) -> None:
        self.calls: list[datetime] = []
        self.fail_times = fail_times
        self.gate = gate
        self.started = asyncio.Event()

    async def __call__(self, now: datetime) -> dict[str, int]:
        self.calls.append(now)
        self.started.set()
        if self.gate is not None and len(self.calls) == 1:
            await self.gate.wait()
        if len(self.calls) <= self.fail_times:
            raise RuntimeError(f"mail server down (call {len(self.calls)})")
        return {"done": len(self.calls)}


def runner(
    job: Job, leases: Leases, engine: AsyncEngine, clock: FakeClock, worker: str, **kw: object
) -> JobRunner:
    return JobRunner(
        [job], leases, engine, clock=clock.now, worker_id=worker, lease_ttl_s=TTL,
        renew_every_s=RENEW, **kw,  # type: ignore[arg-type]
    )


async def state(r: JobRunner, name: str = "reminders") -> JobState:
    return (await r.states())[name]


async def test_a_due_job_runs_once_across_two_runners(
    engine: AsyncEngine, engine2: AsyncEngine, clock: FakeClock, backend: tuple[str, str, str]
) -> None:
    kind, url, prefix = backend
    made: list[Leases] = (
        [MemoryLeases(clock.time)] * 2
        if kind == "memory"
        else [RedisLeases(url, RedisKeys(prefix)) for _ in range(2)]
    )
    fn = Counting()
    job = Job("reminders", EVERY, fn)
    a = runner(job, made[0], engine, clock, "worker-a")
    b = runner(job, made[1], engine2, clock, "worker-b")
    try:
        first = await asyncio.gather(a.run_due(), b.run_due())
        assert sorted(o["reminders"] for o in first) in (["held", "ran"], ["ran", "waiting"])
        assert len(fn.calls) == 1
        await clock.advance(EVERY - 1)
        assert (await a.run_due())["reminders"] == "waiting"
        assert (await b.run_due())["reminders"] == "waiting"
        await clock.advance(1)
        second = await asyncio.gather(b.run_due(), a.run_due())
        assert sorted(o["reminders"] for o in second) in (["held", "ran"], ["ran", "waiting"])
        assert len(fn.calls) == 2
        row = await state(a)
        assert (row.runs, row.failures, row.last_ok) == (2, 0, True)
        assert row.last_started_at == clock.now() and row.last_finished_at == clock.now()
    finally:
        for leases in set(made):
            await leases.close()


async def test_a_failure_is_recorded_logged_once_and_retried_after_backoff(
    engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fn = Counting(fail_times=2)
    job = Job("reminders", EVERY, fn)
    r = runner(job, MemoryLeases(clock.time), engine, clock, "worker-a")
    caplog.set_level(logging.DEBUG, logger="broker.jobs")

    assert (await r.run_due())["reminders"] == "failed"
    row = await state(r)
    assert (row.runs, row.failures, row.last_ok) == (1, 1, False)
    assert row.last_error == "RuntimeError: mail server down (call 1)"
    assert row.worker == "worker-a"

    await clock.advance(job.retry_after_s(1) - 1)
    assert (await r.run_due())["reminders"] == "waiting"
    await clock.advance(1)
    assert (await r.run_due())["reminders"] == "failed"  # the retry, failing again
    assert (await state(r)).failures == 2

    await clock.advance(job.retry_after_s(2) - 1)  # the backoff doubled
    assert (await r.run_due())["reminders"] == "waiting"
    await clock.advance(1)
    assert (await r.run_due())["reminders"] == "ran"
    row = await state(r)
    assert (row.runs, row.failures, row.last_ok, row.last_error) == (3, 0, True, "")

    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1, [rec.getMessage() for rec in errors]
    assert "reminders" in errors[0].getMessage() and errors[0].exc_info is not None
    assert any("recovered after 2 failures" in rec.getMessage() for rec in caplog.records)


async def test_a_job_failing_for_an_outage_is_one_line_without_a_traceback(
    engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The database or Redis down under a job: expected, so one warning (the failure is
    still recorded and retried); a RuntimeError above is a bug's traceback."""

    async def down(now: datetime) -> dict[str, int]:
        raise database_refused()

    job = Job("reminders", EVERY, down)
    r = runner(job, MemoryLeases(clock.time), engine, clock, "worker-a")
    caplog.set_level(logging.DEBUG, logger="broker.jobs")
    assert (await r.run_due())["reminders"] == "failed"
    assert (await state(r)).failures == 1
    logged = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(logged) == 1 and not logged[0].exc_info, [r.getMessage() for r in logged]
    assert "database unavailable" in logged[0].getMessage()


def test_the_backoff_doubles_and_is_capped_at_the_interval() -> None:
    async def noop(_now: datetime) -> dict[str, int]:
        return {}

    job = Job("j", 100.0, noop)
    assert [job.retry_after_s(n) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert Job("j", 5.0, noop).retry_after_s(1) == 5.0
    assert job.retry_after_s(10_000) == 100.0


async def test_a_job_killed_mid_run_runs_again_on_the_other_runner(
    engine: AsyncEngine, engine2: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    leases = MemoryLeases(clock.time)
    gate = asyncio.Event()
    fn = Counting(gate=gate)
    job = Job("reminders", EVERY, fn)
    a = runner(job, leases, engine, clock, "worker-a", sleep=frozen)  # never renews again
    b = runner(job, leases, engine2, clock, "worker-b")

    stuck = asyncio.create_task(a.run_due())
    await fn.started.wait()
    row = await state(b)
    assert (row.last_ok, row.worker) == (None, "worker-a")  # started, not finished
    assert (await b.run_due())["reminders"] == "held"  # its lease is still live
    await clock.advance(TTL - 1)
    assert (await b.run_due())["reminders"] == "held"
    await clock.advance(1)  # the dead worker's lease has expired
    assert (await b.run_due())["reminders"] == "ran"
    assert len(fn.calls) == 2
    row = await state(b)
    assert (row.runs, row.last_ok, row.worker) == (2, True, "worker-b")

    # Had the first worker only been paused, its late end does not overwrite the new run.
    caplog.set_level(logging.WARNING, logger="broker.jobs")
    gate.set()
    assert (await stuck)["reminders"] == "ran"
    assert (await state(b)).worker == "worker-b"
    assert any("newer run replaced" in rec.getMessage() for rec in caplog.records)


async def test_renewal_keeps_a_long_job_on_one_runner(
    engine: AsyncEngine, engine2: AsyncEngine, clock: FakeClock
) -> None:
    leases = MemoryLeases(clock.time)
    gate = asyncio.Event()
    fn = Counting(gate=gate)
    job = Job("reminders", EVERY, fn)
    a = runner(job, leases, engine, clock, "worker-a", sleep=clock.sleep)
    b = runner(job, leases, engine2, clock, "worker-b")

    long_run = asyncio.create_task(a.run_due())
    await fn.started.wait()
    for _ in range(int(3 * TTL / RENEW)):  # three lease lifetimes, renewed as they go
        await clock.advance(RENEW)
        assert (await b.run_due())["reminders"] == "held"
    gate.set()
    assert (await long_run)["reminders"] == "ran"
    assert len(fn.calls) == 1
    assert (await b.run_due())["reminders"] == "waiting"


async def test_a_crash_loses_no_job_state(
    engine: AsyncEngine, engine2: AsyncEngine, clock: FakeClock
) -> None:
    """A new runner (a restarted worker, fresh leases) reads when the job is due from the
    database: it neither runs a job that ran a minute ago nor forgets a failing one."""
    ok, bad = Counting(), Counting(fail_times=1)
    jobs = [Job("reminders", EVERY, ok), Job("attendance", EVERY, bad)]
    first = JobRunner(jobs, MemoryLeases(clock.time), engine, clock=clock.now, worker_id="w1")
    assert await first.run_due() == {"reminders": "ran", "attendance": "failed"}

    await clock.advance(60)
    restarted = JobRunner(
        jobs, MemoryLeases(clock.time), engine2, clock=clock.now, worker_id="w2"
    )
    assert await restarted.run_due() == {"reminders": "waiting", "attendance": "ran"}
    assert (len(ok.calls), len(bad.calls)) == (1, 2)


async def test_serve_runs_each_job_on_its_own_cadence(
    engine: AsyncEngine, clock: FakeClock
) -> None:
    fast, slow = Counting(), Counting()
    jobs = [Job("fast", 10.0, fast), Job("slow", 25.0, slow)]
    r = JobRunner(
        jobs, MemoryLeases(clock.time), engine, clock=clock.now, worker_id="w",
        sleep=clock.sleep, poll_s=5.0,
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(r.serve(stop))
    for _ in range(20):  # 50 s in 2.5 s steps; each waits until both loops sleep again
        await clock.settle(sleepers=2)
        await clock.advance(2.5)
    await clock.settle(sleepers=2)
    stop.set()
    await asyncio.wait_for(serving, 5)
    assert len(fast.calls) in (5, 6) and len(slow.calls) in (2, 3)


def test_jobs_are_checked_when_made() -> None:
    async def noop(_now: datetime) -> dict[str, int]:
        return {}

    with pytest.raises(ValueError):
        Job("", 10, noop)
    with pytest.raises(ValueError):
        Job("x", 0, noop)
    with pytest.raises(ValueError):
        JobRunner([Job("x", 1, noop), Job("x", 2, noop)], MemoryLeases(), None)  # type: ignore[arg-type]


async def test_stopping_lets_a_running_job_finish(engine: AsyncEngine, clock: FakeClock) -> None:
    gate = asyncio.Event()
    fn = Counting(gate=gate)
    r = JobRunner([Job("reminders", EVERY, fn)], MemoryLeases(clock.time), engine,
                  clock=clock.now, worker_id="w", sleep=clock.sleep)
    stop = asyncio.Event()
    serving = asyncio.create_task(r.serve(stop, grace_s=10))
    await fn.started.wait()
    stop.set()
    await asyncio.sleep(0)
    gate.set()  # finishes within the grace
    await asyncio.wait_for(serving, 10)
    row = await state(r)
    assert (row.runs, row.last_ok) == (1, True)


async def test_a_job_cut_off_at_stop_runs_again_at_once(
    engine: AsyncEngine, clock: FakeClock
) -> None:
    fn = Counting(gate=asyncio.Event())  # never finishes
    job = Job("reminders", EVERY, fn)
    r = JobRunner([job], MemoryLeases(clock.time), engine, clock=clock.now, worker_id="w1",
                  sleep=clock.sleep)
    stop = asyncio.Event()
    serving = asyncio.create_task(r.serve(stop, grace_s=0.05))
    await fn.started.wait()
    stop.set()
    await asyncio.wait_for(serving, 10)
    assert (await state(r)).last_ok is None  # started, not finished
    other = JobRunner([job], MemoryLeases(clock.time), engine, clock=clock.now, worker_id="w2")
    assert (await other.run_due())["reminders"] == "ran"  # its lease was released at stop


class Unreachable(MemoryLeases):
    """A lease store that cannot be reached (Redis down), until ``up`` is set."""

    up = False

    async def _acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        if not self.up:
            raise ConnectionError("Redis is down")
        return await super()._acquire(name, owner, ttl_ms)


async def test_an_unreachable_lease_store_starts_no_job_and_is_logged_once(
    engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fn = Counting()
    leases = Unreachable(clock.time)
    r = runner(Job("reminders", EVERY, fn), leases, engine, clock, "w")
    caplog.set_level(logging.INFO, logger="broker.jobs")
    for _ in range(3):
        assert (await r.run_due())["reminders"] == "held"
    assert fn.calls == []
    # an outage: one line, without a traceback (each job would repeat the same one)
    logged = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(logged) == 1 and not logged[0].exc_info, [r.getMessage() for r in logged]
    assert "unavailable" in logged[0].getMessage()
    leases.up = True
    assert (await r.run_due())["reminders"] == "ran"
    assert any("recovered" in rec.getMessage() for rec in caplog.records)


class Silent(MemoryLeases):
    """A lease store that answers nothing (a frozen Redis, a black-holed route)."""

    async def _acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_lease_store_that_answers_nothing_holds_no_round(
    engine: AsyncEngine, clock: FakeClock, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(C, "REDIS_WAIT_S", 0.05)
    fn = Counting()
    r = runner(Job("reminders", EVERY, fn), Silent(clock.time), engine, clock, "w")
    caplog.set_level(logging.INFO, logger="broker.jobs")
    for _ in range(2):
        assert (await asyncio.wait_for(r.run_due(), 5))["reminders"] == "held"
    assert fn.calls == []
    logged = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(logged) == 1 and "unavailable" in logged[0].getMessage(), logged
