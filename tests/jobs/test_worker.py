"""``homework-help worker``: the registered jobs run through the runner, with leases from
the settings (memory, or Redis with ``REDIS_URL``), and ``--once`` runs what is due."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from broker.db import create_engine
from broker.jobs import JobRunner
from broker.leases import MemoryLeases
from broker.migrate import create_schema
from broker.outbox import KeepSender, enqueue, outbox, outbox_values
from broker.settings import Settings
from broker.worker_jobs import WorkerContext, registered_jobs, run_worker
from tests.jobs.conftest import T0
from tests.jobs.smtp_sink import SmtpSink
from web.cli import main


async def prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        await create_schema(engine)
        async with engine.begin() as conn:
            await enqueue(conn, outbox_values(
                dedupe_key="notice:1", kind="booking_cancelled", recipient_kind="parent",
                recipient_id="p1", channel="email", locale="en", subject="Session cancelled",
                body="The session on Monday is cancelled.", due_at=T0, now=T0,
                address="ana@example.org",
            ))
    finally:
        await engine.dispose()


async def job_rows(url: str) -> dict[str, tuple[int, bool | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT name, runs, last_ok FROM job_runs"))
            return {name: (runs, None if ok is None else bool(ok)) for name, runs, ok in result}
    finally:
        await engine.dispose()


async def test_worker_once_runs_the_due_jobs_once(
    tmp_path: Path, backend: tuple[str, str, str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}"
    await prepare(url)
    sink = SmtpSink()
    await sink.start()
    settings = Settings(
        database_url=url, smtp_url=f"smtp://127.0.0.1:{sink.port}", mail_from="hh@district.example"
    )
    kind, redis_url, prefix = backend
    if kind == "redis":
        settings = settings.with_(redis_url=redis_url, redis_prefix=prefix)
    try:
        assert await run_worker(settings, once=True) == 0
        assert [r.rcpt_to for r in sink.received] == [["ana@example.org"]]
        once = {name: (1, True) for name in (
            "retention_purge", "outbox_send", "scheduler_attendance", "scheduler_reminders",
            "scheduler_parent_links", "scheduler_rooms", "planner_statistics")}
        assert await job_rows(url) == once
        assert await run_worker(settings, once=True) == 0  # nothing due yet: nothing runs
        assert len(sink.received) == 1
        assert await job_rows(url) == once
    finally:
        await sink.close()


async def test_registered_jobs_have_unique_names_and_run(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}")
    try:
        await create_schema(engine)
        ctx = WorkerContext(Settings(), engine, KeepSender(), retention_every_s=60.0)
        jobs = registered_jobs(ctx)
        runner = JobRunner(jobs, MemoryLeases(), engine)  # refuses duplicate names
        assert set(await runner.run_due()) == {job.name for job in jobs}
        async with engine.connect() as conn:
            kept = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
        assert kept == 0
    finally:
        await engine.dispose()


def test_the_command_keeps_once_and_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hh.db'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("HH_SMTP_URL", raising=False)
    assert main(["migrate"]) == 0
    assert main(["worker", "--once", "--interval", "120"]) == 0


async def test_the_worker_serves_until_stopped(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}"
    await prepare(url)
    sink = SmtpSink()
    await sink.start()
    settings = Settings(database_url=url, smtp_url=f"smtp://127.0.0.1:{sink.port}")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        async with asyncio.timeout(20):
            await sink.arrived.wait()
    finally:
        stop.set()
        assert await asyncio.wait_for(worker, 20) == 0
        await sink.close()
    assert (await job_rows(url))["outbox_send"] == (1, True)
