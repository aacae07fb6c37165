"""Saying a repeated thing at most once in a while.

A warning that can fire hundreds of times a second (a dependency outage, a malformed
engine.io frame, a failing checkpoint, a long garbage collection, a stalled event loop)
would bury everything else in the log. Each of those logs through a :class:`LogPace`:

* :meth:`LogPace.due` answers True for its first call and then at most once per
  ``every_s`` of its clock; the caller logs only then.
* The calls answered False in between are counted, and the due call that ends them sets
  :attr:`LogPace.skipped` to that count, so the one line can say how many it stands for.
* No lock: each pace is used from one thread (the event loop's, the collector's callback,
  the checkpointer's or the stall watch's thread).

The clock is the caller's (``time.monotonic`` by default), so tests step a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LogPace:
    """At most one due call per ``every_s`` seconds of ``clock`` (module docstring)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.last: float | None = None  # when the last due call was
        self.skipped = 0  # calls not due before the last due one
        self._quiet = 0  # calls not due since the last due one

    def due(self, now: float | None = None) -> bool:
        """Whether to log now (``now``: the caller's reading of the clock, if it has one)."""
        now = self.clock() if now is None else now
        if self.last is not None and now - self.last < self.every_s:
            self._quiet += 1
            return False
        self.last, self.skipped, self._quiet = now, self._quiet, 0
        return True
