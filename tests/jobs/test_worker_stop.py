"""``homework-help worker`` stops within 10 s of SIGTERM, as ``serve`` does, even when its
jobs wait on a PostgreSQL that answers nothing (frozen: connections accepted, nothing
answered). Running jobs get ``JOB_STOP_GRACE_S`` to finish, then are cancelled, and closing
the pool waits 0.5 s at most (docs/jobs.md). A real worker process; the database is reached
through a :class:`~tests.tcp_link.Link` that holds every byte from the start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from broker import constants as C
from tests.broker.harness import SECRET
from tests.lifecycle.conftest import ROOT, homework_help, spawn
from tests.tcp_link import Link

EXIT_LIMIT_S = 10.0


def _text(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def _logged(log_path: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in _text(log_path):
        assert proc.poll() is None, _text(log_path)
        assert time.monotonic() < deadline, _text(log_path)
        await asyncio.sleep(0.05)


async def test_a_worker_whose_jobs_wait_on_a_frozen_database_exits_within_10s(
    postgres_url: str, tmp_path: Path
) -> None:
    parts = sa.engine.make_url(postgres_url)
    link = await Link(parts.port or 5432, stall=True, scheme="postgresql").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=parts.set(host="127.0.0.1", port=link.port).render_as_string(
            hide_password=False
        ),
        HH_SECRET_KEY=SECRET,
        HH_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    log_path = tmp_path / "worker.log"
    proc = spawn([*homework_help(), "worker"], env, tmp_path, log_path)
    try:
        # logged just before the signal handlers go in and the jobs start, each of which
        # then waits on the database
        await _logged(log_path, "outbox sent by", proc)
        await asyncio.sleep(1.0)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            assert time.monotonic() - began < 30, _text(log_path)
            await asyncio.sleep(0.02)
        exit_s = time.monotonic() - began
        log = _text(log_path)
        assert proc.returncode == 0, log
        assert "still running" in log, log  # it waited on jobs stuck on the database
        assert C.JOB_STOP_GRACE_S <= exit_s < EXIT_LIMIT_S, f"exit took {exit_s:.1f} s:\n{log}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await link.close()
