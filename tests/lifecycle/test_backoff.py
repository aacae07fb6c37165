"""bench/_ws_load.py's clients reconnect with the pages' backoff (common.js ``RECONNECT``),
so that bench/peak.py measures what browsers would do."""

from __future__ import annotations

import re
from pathlib import Path

from bench._ws_load import BACKOFF

COMMON_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "common.js"


def test_load_clients_use_the_pages_reconnect_figures() -> None:
    block = re.search(r"RECONNECT = Object\.freeze\(\{(.*?)\}\)", COMMON_JS.read_text(), re.S)
    assert block is not None
    figures = dict(re.findall(r"(\w+): ([\d.]+)", block.group(1)))
    assert float(figures["reconnectionDelay"]) == BACKOFF.delay_ms
    assert float(figures["reconnectionDelayMax"]) == BACKOFF.max_ms
    assert float(figures["randomizationFactor"]) == BACKOFF.jitter


def test_backoff_is_jittered_exponential_and_capped() -> None:
    first = [BACKOFF.delay_s(0) for _ in range(2000)]
    assert min(first) >= BACKOFF.delay_ms * (1 - BACKOFF.jitter) / 1000 - 1e-9
    assert max(first) <= BACKOFF.delay_ms * (1 + BACKOFF.jitter) / 1000 + 1e-9
    assert max(first) - min(first) > BACKOFF.delay_ms / 1000  # spread, not one instant
    later = [BACKOFF.delay_s(10) for _ in range(200)]
    assert max(later) <= BACKOFF.max_ms / 1000
