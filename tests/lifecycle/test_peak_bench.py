"""bench/peak.py keeps working: a smoke run of its quick mode (embedded scenarios only, so
it needs neither PostgreSQL nor Redis). It measures nothing worth keeping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_peak_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    cmd = [sys.executable, "-m", "bench.peak", "--quick", "--no-pin", "--results", str(results)]
    cmd += ["--only", "storm", "--only", "peak"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Peak and restarts" in text
    assert "| connected, of 1,000 | 17,674 (99 never) |" in text
    assert "| 1,000 | all |" in text  # every widget of the storm connected
    assert "/ 0 / 0 | not run |" in text  # peak, one process: nothing lost, nothing twice
