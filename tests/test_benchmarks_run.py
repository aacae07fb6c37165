"""The benchmarks must keep working: a smoke run of the broker benchmark's quick mode.

It measures nothing worth keeping (``--quick --no-write``); it proves that the harness,
the baseline server, the load processes and every scenario still run to completion
against the current broker, with no errors reported by the load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_broker_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.broker", "--quick", "--no-pin", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Broker" in text and "`help:request` acked/s" in text
    assert "Errors seen by the load: none." in text
