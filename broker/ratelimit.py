"""Per-sender rate limit for chat messages: a sliding-window log per key.

``RateLimiter(limit, window_s).allow(key, now)`` is ``True`` for at most ``limit`` calls per
key within any ``window_s`` seconds (a true sliding window, not fixed buckets, so a burst at
a bucket edge cannot double the rate). A refused call is not counted, so a sender who keeps
trying while limited is let through as soon as the oldest accepted message leaves the
window.

Memory: at most ``limit`` timestamps per key, and keys idle for a whole window are
forgotten by a sweep that runs at most once per window (amortised O(1) per call), so the
limiter holds only the senders active in the last two windows. In-process only: each
broker process limits the connections it serves, and a sender's socket lives on one
process.
"""

from __future__ import annotations

import math
from collections import deque

from broker.errors import ConfigError


class RateLimiter:
    """At most ``limit`` allowed calls per key in any trailing ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1:
            raise ConfigError(f"chat rate limit must be at least 1 message, got {limit}")
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ConfigError(f"chat rate window must be a positive number, got {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._log: dict[str, deque[float]] = {}
        self._swept_at = -math.inf

    def allow(self, key: str, now: float) -> bool:
        """Whether ``key`` may send at ``now``; if so, the call is counted."""
        if now - self._swept_at >= self.window_s:
            self._sweep(now)
        times = self._log.get(key)
        if times is None:
            times = self._log[key] = deque(maxlen=self.limit)
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(max(now, times[-1]) if times else now)
        return True

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may send again (0.0 if it may now). Does not count a call."""
        times = self._log.get(key)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - now)

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._log)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        horizon = now - self.window_s
        idle = [key for key, times in self._log.items() if not times or times[-1] <= horizon]
        for key in idle:
            del self._log[key]
