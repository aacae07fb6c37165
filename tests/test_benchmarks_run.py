"""The benchmarks must keep working: a smoke run of the broker benchmark's quick mode.

It measures nothing worth keeping (``--quick --no-write``); it proves that the harness,
the baseline server, the load processes and every scenario still run to completion
against the current broker, with no errors reported by the load.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import PG_ADMIN_URL, REDIS_URL, need

ROOT = Path(__file__).resolve().parents[1]


def quick_run(tmp_path: Path, args: list[str], timeout: float) -> str:
    """Run ``python -m <args> --results <tmp>/RESULTS.md``; the results file's text."""
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", *args, "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results.read_text(encoding="utf-8")


@pytest.mark.slow
def test_broker_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    text = quick_run(tmp_path, ["bench.broker", "--quick", "--no-pin"], 240)
    assert "## Broker" in text and "`help:request` acked/s" in text
    assert "| the load's core during the request test | load " in text
    assert "Errors seen by the load: none." in text


@pytest.mark.slow
def test_bell_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    """bench.bell at 20 rooms (100 people): the rooms open and everyone is told."""
    text = quick_run(tmp_path, ["bench.bell", "--quick"], 180)
    assert "## The bell" in text and "| 100 / 100 |" in text


def test_throttle_benchmark_runs(tmp_path: Path) -> None:
    """bench.throttle, a few events on both backends: its section and every path."""
    need(REDIS_URL, 6379, "Redis")
    text = quick_run(
        tmp_path,
        ["bench.throttle", "--events", "2000", "--passes", "1", "--redis-url", REDIS_URL],
        120,
    )
    assert "## Throttle" in text
    for backend in ("memory", "redis"):
        assert f"| {backend} | as the broker asks now |" in text


def test_scheduler_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    """A few schools over four weeks on SQLite: the district is set up and booked through
    the scheduler, the views, the 12-occurrence sample and the refused collisions run, and
    only the "## Scheduler" section of the results file is written."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.scheduler", "--quick", "--backends", "sqlite",
         "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Other\n\nkept" in text and "## Scheduler" in text
    assert "| set-up + booking s |" in text and "overlap_tutor 2" in text


@pytest.mark.slow
def test_moderation_relay_benchmark_quick_mode_runs() -> None:
    """bench.moderation_relay's smoke run: both servers (moderation on, and patched off)
    relay chat with no errors (its ratio is not judged on a 2-second run)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.moderation_relay", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert "| messages relayed/s |" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("errors {}") == 2


@pytest.mark.slow
@pytest.mark.postgres
def test_queue_design_benchmark_runs_both_designs(tmp_path: Path) -> None:
    """bench.queue_design, small: in both designs every request is placed behind the ones
    waiting (the benchmark checks each position and raises otherwise) and then cancelled,
    the built design's statements still fit the migrated schema, and only the "## Queue
    design" section of the results file is written."""
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.queue_design", "--cycles", "2000", "--rounds", "2",
         "--queued", "7", "--history", "1000", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Other\n\nkept" in text and "## Queue design" in text
    assert "with 7 requests waiting ahead" in text
    assert re.search(r"^\| median \| [0-9.]+ us \| [0-9.]+ us \| [0-9.]+x \|$", text, re.M)
