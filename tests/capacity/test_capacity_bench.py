"""bench.capacity keeps working: its quick mode (2,000 sessions, SQLite; a few replayed
hours) runs to the end and rewrites only its two sections of the results file it is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_capacity_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--quick", "--replay-hours", "3",
         "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Other\n\nkept\n" in text
    assert "## Capacity" in text and "| sqlite | 2," in text and "| yes |" in text
    replayed = text.split("## Capacity: a year replayed", 1)[1]
    assert "| wall time, start to merged database |" in replayed
    assert "n/a (not a full year)" in replayed  # a few hours are no evidence for the goal
    assert "| summary |" in replayed and "on SQLite" in replayed
