"""broker.log_pace: one due call per interval, and the count of the calls in between."""

from __future__ import annotations

from broker.log_pace import LogPace
from tests.broker.unit import FakeClock as Clock


def test_the_first_call_is_due_then_one_per_interval() -> None:
    clock = Clock()
    pace = LogPace(60.0, clock)
    assert pace.due() and pace.skipped == 0
    clock.now += 59.9
    assert not pace.due()
    assert not pace.due()
    clock.now += 0.1
    assert pace.due()
    assert pace.skipped == 2  # the two answered False since the last due call
    assert not pace.due(clock.now + 59.0)  # the caller's own reading of the clock
    assert pace.due(clock.now + 60.0) and pace.skipped == 1


def test_the_interval_runs_from_the_last_due_call_not_the_last_call() -> None:
    clock = Clock()
    pace = LogPace(10.0, clock)
    assert pace.due()
    for _ in range(9):  # a call every second never pushes the next report away
        clock.now += 1.0
        assert not pace.due()
    clock.now += 1.0
    assert pace.due() and pace.skipped == 9
