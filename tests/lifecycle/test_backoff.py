"""bench/_ws_load.py's clients reconnect with the pages' backoff (common.js ``RECONNECT``),
so that bench/peak.py measures what browsers would do."""

from __future__ import annotations

import re
from pathlib import Path

from bench._ws_load import ATTEMPT_TIMEOUT_S, BACKOFF
from web import lifecycle

COMMON_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "common.js"


def test_load_clients_use_the_pages_reconnect_figures() -> None:
    block = re.search(r"RECONNECT = Object\.freeze\(\{(.*?)\}\)", COMMON_JS.read_text(), re.S)
    assert block is not None
    figures = dict(re.findall(r"(\w+): ([\d.]+)", block.group(1)))
    assert float(figures["reconnectionDelay"]) == BACKOFF.delay_ms
    assert float(figures["reconnectionDelayMax"]) == BACKOFF.max_ms
    assert float(figures["randomizationFactor"]) == BACKOFF.jitter


def test_load_clients_wait_as_long_as_the_pages_and_the_gate_answers_first() -> None:
    """An attempt waits CONNECT_TIMEOUT_MS in the pages and in the load; the gate refuses a
    handshake that waited ADMIT_MAX_AGE_S with time to spare for the rest of its start."""
    found = re.search(r"CONNECT_TIMEOUT_MS = (\d+);", COMMON_JS.read_text())
    assert found is not None and "timeout: CONNECT_TIMEOUT_MS" in COMMON_JS.read_text()
    assert int(found.group(1)) / 1000 == ATTEMPT_TIMEOUT_S
    assert lifecycle.ADMIT_MAX_AGE_S <= ATTEMPT_TIMEOUT_S - 5


def test_backoff_is_jittered_exponential_and_capped() -> None:
    first = [BACKOFF.delay_s(0) for _ in range(2000)]
    assert min(first) >= BACKOFF.delay_ms * (1 - BACKOFF.jitter) / 1000 - 1e-9
    assert max(first) <= BACKOFF.delay_ms * (1 + BACKOFF.jitter) / 1000 + 1e-9
    assert max(first) - min(first) > BACKOFF.delay_ms / 1000  # spread, not one instant
    later = [BACKOFF.delay_s(10) for _ in range(200)]
    assert max(later) <= BACKOFF.max_ms / 1000
