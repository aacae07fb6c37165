"""The per-sender chat limiter: a sliding window that forgets idle senders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import ConfigError
from broker.ratelimit import RateLimiter


def test_allows_the_limit_then_refuses() -> None:
    limiter = RateLimiter(3, 10.0)
    assert [limiter.allow("a", 0.0 + i) for i in range(5)] == [True, True, True, False, False]
    assert limiter.allow("b", 4.0)  # per key


def test_window_slides() -> None:
    limiter = RateLimiter(2, 10.0)
    assert limiter.allow("a", 0.0)
    assert limiter.allow("a", 5.0)
    assert not limiter.allow("a", 9.9)
    assert limiter.retry_after("a", 9.9) == pytest.approx(0.1)
    assert limiter.allow("a", 10.0)  # the message at 0 left the window
    assert not limiter.allow("a", 14.0)
    assert limiter.allow("a", 15.0)


def test_refused_calls_do_not_count() -> None:
    limiter = RateLimiter(1, 10.0)
    assert limiter.allow("a", 0.0)
    for t in range(1, 10):
        assert not limiter.allow("a", float(t))
    assert limiter.allow("a", 10.0)
    assert limiter.retry_after("b", 0.0) == 0.0


def test_no_fixed_bucket_edge_burst() -> None:
    limiter = RateLimiter(10, 10.0)
    assert all(limiter.allow("a", 9.5) for _ in range(10))
    assert not any(limiter.allow("a", 10.5) for _ in range(10))


def test_forgets_idle_keys() -> None:
    limiter = RateLimiter(5, 10.0)
    for i in range(1000):
        limiter.allow(f"sender-{i}", 0.0)
    assert len(limiter) == 1000
    limiter.allow("late", 25.0)
    assert len(limiter) == 1


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        RateLimiter(0, 10.0)
    with pytest.raises(ConfigError):
        RateLimiter(5, 0.0)


@given(
    limit=st.integers(min_value=1, max_value=8),
    window=st.floats(min_value=0.5, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=5), max_size=80),
)
def test_never_more_than_limit_in_any_window(limit: int, window: float, gaps: list[float]) -> None:
    limiter = RateLimiter(limit, window)
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        if limiter.allow("k", now):
            allowed.append(now)
    for i, start in enumerate(allowed):
        inside = [t for t in allowed[i:] if t < start + window]
        assert len(inside) <= limit
    assert len(limiter._log.get("k", ())) <= limit
