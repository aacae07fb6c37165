"""The wait estimate and the accept-rate tracker: pure, so tested with plain numbers."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from broker.constants import ETA_FALLBACK_S, ETA_WINDOW_S, QUEUE_MAX_WAIT_S
from broker.eta import estimate_wait_s


def test_from_the_accept_rate() -> None:
    # one accept every 30 s: the third in line waits about 90 s (one tutor is there, slow)
    assert estimate_wait_s(3, 1 / 30, 1, fallback_handle_s=3600) == 90
    assert estimate_wait_s(1, 0.5, 1) == 2


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
    # accepts by tutors who have since left move nobody: no tutor there, no estimate
    assert estimate_wait_s(1, 0.5, 0) is None
    assert estimate_wait_s(5, -1.0, -2) is None
    assert estimate_wait_s(5, math.nan, 0) is None
    assert estimate_wait_s(5, 0.0, 3, fallback_handle_s=0) is None


def test_not_waiting_is_zero() -> None:
    assert estimate_wait_s(0, 0.0, 0) == 0
    assert estimate_wait_s(-3, 1.0, 1) == 0


def test_capped() -> None:
    assert estimate_wait_s(10_000, 1e-9, 1, fallback_handle_s=math.inf) == int(QUEUE_MAX_WAIT_S)
    assert estimate_wait_s(10, 0.001, 1, fallback_handle_s=1e9, cap_s=60) == 60
    assert estimate_wait_s(10, math.inf, 1) == 0


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
