"""Estimated wait for a queued student: pure functions and a small per-queue accept counter.

The estimate is deliberately simple, so that students and staff can be told how it works:

* ``r`` = the queue's recent accept rate: accepts in the trailing :data:`ETA_WINDOW_S`
  seconds divided by the window (counted in the database, so every process estimates from
  every process's accepts);
* ``c`` = what the tutors available now could do: ``tutors_available / fallback_handle_s``
  (each is assumed to take a new request every :data:`ETA_FALLBACK_S` seconds);
* the queue moves at ``rate = max(r, c)`` requests per second, and the student at
  ``position`` waits ``ceil(position / rate)`` seconds, at most ``cap_s`` (a request is
  expired after :data:`QUEUE_MAX_WAIT_S` anyway).

Taking the larger of the two keeps a quiet queue honest: after a slow quarter of an hour the
accept rate alone would predict a long wait although tutors are sitting idle, and with no
history at all the tutors available still give an estimate. With **no tutor available**
(status ``available`` and connected now: the broker counts only tutors who are really
there) the estimate is ``None`` whatever the accept history says: the accepts of tutors who
have since left move nobody. The student is then told that nobody is online (and when
tutors are next expected, if known) rather than a made-up number.

Guarantees: never negative, never divides by zero, an ``int`` number of seconds or ``None``,
and monotone: a later position never gets a smaller estimate.
"""

from __future__ import annotations

import math

from broker.constants import ETA_FALLBACK_S, QUEUE_MAX_WAIT_S


def estimate_wait_s(
    position: int,
    accepts_per_s: float,
    tutors_available: int,
    fallback_handle_s: float = ETA_FALLBACK_S,
    cap_s: float = QUEUE_MAX_WAIT_S,
) -> int | None:
    """Seconds until the student at 1-based ``position`` is likely to be accepted.

    ``0`` for a position of 0 or less (not waiting); ``None`` when nothing moves the queue
    (no tutor available, or no recent accepts and no handling time). Negative or NaN
    inputs count as 0.
    """
    if position <= 0:
        return 0
    if tutors_available <= 0:
        return None
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
