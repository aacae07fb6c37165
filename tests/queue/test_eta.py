"""The wait estimate and the accept-rate tracker: pure, so tested with plain numbers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.constants import ETA_FALLBACK_S, ETA_WINDOW_S, QUEUE_MAX_WAIT_S
from broker.eta import AcceptRateTracker, estimate_wait_s


def test_from_the_accept_rate() -> None:
    # one accept every 30 s: the third in line waits about 90 s
    assert estimate_wait_s(3, 1 / 30, 0) == 90
    assert estimate_wait_s(1, 0.5, 0) == 2


def test_from_tutors_available_without_history() -> None:
    assert estimate_wait_s(1, 0.0, 1) == math.ceil(ETA_FALLBACK_S)
    assert estimate_wait_s(4, 0.0, 2) == math.ceil(2 * ETA_FALLBACK_S)
    assert estimate_wait_s(4, 0.0, 2, fallback_handle_s=60) == 120


def test_faster_of_the_two_wins() -> None:
    # a slow quarter hour (1 accept) must not hide three idle tutors
    slow = 1 / ETA_WINDOW_S
    assert estimate_wait_s(3, slow, 3, fallback_handle_s=120) == 120
    # a busy queue moves faster than the fallback guess
    assert estimate_wait_s(3, 0.1, 1, fallback_handle_s=120) == 30


def test_unknown_when_nothing_moves_the_queue() -> None:
    assert estimate_wait_s(1, 0.0, 0) is None
    assert estimate_wait_s(5, -1.0, -2) is None
    assert estimate_wait_s(5, math.nan, 0) is None
    assert estimate_wait_s(5, 0.0, 3, fallback_handle_s=0) is None


def test_not_waiting_is_zero() -> None:
    assert estimate_wait_s(0, 0.0, 0) == 0
    assert estimate_wait_s(-3, 1.0, 1) == 0


def test_capped() -> None:
    assert estimate_wait_s(10_000, 1e-9, 0) == int(QUEUE_MAX_WAIT_S)
    assert estimate_wait_s(10, 0.001, 0, cap_s=60) == 60
    assert estimate_wait_s(10, math.inf, 0) == 0


@given(
    position=st.integers(min_value=1, max_value=10_000),
    rate=st.floats(allow_nan=True, allow_infinity=True),
    tutors=st.integers(min_value=-3, max_value=500),
    fallback=st.floats(min_value=0, max_value=3600),
)
def test_waiting_is_never_negative_and_monotone(
    position: int, rate: float, tutors: int, fallback: float
) -> None:
    here = estimate_wait_s(position, rate, tutors, fallback)
    behind = estimate_wait_s(position + 1, rate, tutors, fallback)
    if here is None:
        assert behind is None
        return
    assert isinstance(here, int) and 0 <= here <= QUEUE_MAX_WAIT_S
    assert behind is not None and behind >= here


def test_tracker_counts_a_trailing_window_per_queue() -> None:
    tracker = AcceptRateTracker(window_s=100)
    for t in (0, 10, 20):
        tracker.record("acme:en", t)
    tracker.record("acme:es", 50)
    assert tracker.count("acme:en", 20) == 3
    assert tracker.rate("acme:en", 20) == pytest.approx(0.03)
    assert tracker.rate("acme:es", 60) == pytest.approx(0.01)
    assert tracker.rate("nobody:xx", 60) == 0.0
    # the accept at 0 leaves the window at 100, the one at 10 at 110
    assert tracker.count("acme:en", 100) == 2
    assert tracker.count("acme:en", 110) == 1
    assert tracker.count("acme:en", 500) == 0
    assert "acme:en" not in tracker.queues()


def test_tracker_forgets_idle_queues_on_record() -> None:
    tracker = AcceptRateTracker(window_s=10)
    for i in range(50):
        tracker.record(f"v{i}:en", 0)
    assert len(tracker.queues()) == 50
    tracker.record("busy:en", 11)  # a window later: every other queue is swept
    assert tracker.queues() == ["busy:en"]


def test_tracker_tolerates_a_clock_step_back() -> None:
    tracker = AcceptRateTracker(window_s=10)
    tracker.record("q", 5)
    tracker.record("q", 3)
    assert tracker.count("q", 5) == 2


def test_tracker_default_window_and_validation() -> None:
    assert AcceptRateTracker().window_s == ETA_WINDOW_S
    with pytest.raises(ValueError):
        AcceptRateTracker(window_s=0)


def test_tracker_feeds_the_estimate() -> None:
    tracker = AcceptRateTracker(window_s=900)
    for i in range(30):  # 30 accepts in the last 15 minutes: one every 30 s
        tracker.record("acme:en", 1000 + i * 30)
    rate = tracker.rate("acme:en", 1000 + 29 * 30)
    assert estimate_wait_s(2, rate, 0) == 60
