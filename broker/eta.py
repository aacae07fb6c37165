"""Estimated wait for a queued student: pure functions and a small per-queue accept counter.

The estimate is deliberately simple, so that students and staff can be told how it works:

* ``r`` = the queue's recent accept rate: accepts in the trailing :data:`ETA_WINDOW_S`
  seconds divided by the window (:class:`AcceptRateTracker`);
* ``c`` = what the tutors available now could do: ``tutors_available / fallback_handle_s``
  (each is assumed to take a new request every :data:`ETA_FALLBACK_S` seconds);
* the queue moves at ``rate = max(r, c)`` requests per second, and the student at
  ``position`` waits ``ceil(position / rate)`` seconds, at most ``cap_s`` (a request is
  expired after :data:`QUEUE_MAX_WAIT_S` anyway).

Taking the larger of the two keeps a quiet queue honest: after a slow quarter of an hour the
accept rate alone would predict a long wait although tutors are sitting idle, and with no
history at all the tutors available still give an estimate. When both are zero (no recent
accepts, no tutor available) the wait is unknown and the estimate is ``None``; the student
is told "waiting for a tutor" rather than a made-up number.

Guarantees: never negative, never divides by zero, an ``int`` number of seconds or ``None``,
and monotone: a later position never gets a smaller estimate.
"""

from __future__ import annotations

import math
from collections import deque

from broker.constants import ETA_FALLBACK_S, ETA_WINDOW_S, QUEUE_MAX_WAIT_S


def estimate_wait_s(
    position: int,
    accepts_per_s: float,
    tutors_available: int,
    fallback_handle_s: float = ETA_FALLBACK_S,
    cap_s: float = QUEUE_MAX_WAIT_S,
) -> int | None:
    """Seconds until the student at 1-based ``position`` is likely to be accepted.

    ``0`` for a position of 0 or less (not waiting); ``None`` when nothing moves the queue
    (no recent accepts and no tutor available). Negative or NaN inputs count as 0.
    """
    if position <= 0:
        return 0
    rate = accepts_per_s if accepts_per_s > 0 else 0.0  # also NaN -> 0.0
    if tutors_available > 0 and fallback_handle_s > 0:
        rate = max(rate, tutors_available / fallback_handle_s)
    if rate <= 0:
        return None
    cap = max(0, int(cap_s)) if math.isfinite(cap_s) else None
    wait = position / rate
    if cap is not None and wait >= cap:
        return cap
    return math.ceil(wait)


class AcceptRateTracker:
    """Accept timestamps per queue over a trailing window; :meth:`rate` in accepts/second.

    Memory is bounded by the accepts of one window: older timestamps are dropped on every
    :meth:`record` and :meth:`rate`, every queue is swept once a window, and a queue with
    none left is forgotten. Timestamps
    are the caller's clock (epoch seconds); they are expected to arrive in order, and one
    earlier than the last recorded is treated as equal to it. Not shared between processes:
    each broker process measures the accepts it handled, which is what its students see.
    """

    def __init__(self, window_s: float = ETA_WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._accepts: dict[str, deque[float]] = {}
        self._swept_at = -math.inf

    def record(self, queue: str, now: float) -> None:
        """Note one accept in ``queue`` at ``now``."""
        times = self._accepts.setdefault(queue, deque())
        if times and now < times[-1]:
            now = times[-1]
        times.append(now)
        if now - self._swept_at >= self.window_s:
            self._swept_at = now
            for name in list(self._accepts):
                self._prune(name, now)
        else:
            self._prune(queue, now)

    def count(self, queue: str, now: float) -> int:
        """Accepts in ``queue`` within the window ending at ``now``."""
        return self._prune(queue, now)

    def rate(self, queue: str, now: float) -> float:
        """Accepts per second in ``queue`` over the window ending at ``now`` (0.0 if none)."""
        return self._prune(queue, now) / self.window_s

    def queues(self) -> list[str]:
        """Queues with at least one accept still remembered."""
        return list(self._accepts)

    def _prune(self, queue: str, now: float) -> int:
        times = self._accepts.get(queue)
        if times is None:
            return 0
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._accepts[queue]
            return 0
        return len(times)
