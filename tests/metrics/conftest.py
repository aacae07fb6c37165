"""Fixtures of the /metrics suite: the broker suites' stacks (embedded: SQLite + in-process;
scaled: PostgreSQL + Redis), servers and socket.io clients, shared with tests/broker."""

from __future__ import annotations

import pytest

from tests.broker.conftest import clients, server, stack, stack_settings, start_server

__all__ = ["clients", "server", "stack", "stack_settings", "start_server"]


@pytest.fixture(autouse=True)
def open_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics is open unless a test sets HH_METRICS_TOKEN itself (the environment of the
    run does not decide)."""
    monkeypatch.delenv("HH_METRICS_TOKEN", raising=False)
