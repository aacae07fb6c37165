"""Keep the garbage collector's full collections short in a serving process.

CPython's oldest generation is collected when enough objects survived younger
collections; each such collection walks every tracked object, including the ~100,000
that importing the application and starting it created (modules, classes, SQLAlchemy's
metadata, the catalog, the school directory) and that live as long as the process. On a
busy broker that meant a pause of ~75 ms every second or two, which showed up directly
in the 99th percentile of every acknowledgement.

:func:`freeze_startup_heap` runs once, after start-up: it collects what start-up left
as garbage, then moves every surviving object into the permanent generation
(``gc.freeze()``), so later collections no longer walk them. Objects made afterwards
(connections, requests, sessions) are collected as usual; reference cycles among them are
still found. The cost is that garbage cycles among start-up objects released later would
never be collected; start-up objects live for the process's lifetime, so that is nil.

It also raises the youngest generation's threshold from 700 to :data:`GEN0_THRESHOLD`
allocations: a broker handling thousands of events a second otherwise runs a young
collection every few events, each walking every object still in flight. Measured by
``bench.broker``: freezing took the request p99 from ~100 ms to ~40 ms, the threshold
added ~8% throughput.

:class:`Pacer` (started by :func:`gc_pacing_ctx`) then collects on a clock rather than
only on CPython's allocation count. That count is allocations *minus deallocations*, and
a process holding 20,000 connections is in a steady state where each connection's
engine.io ping cycle makes tasks, timers and futures that live ~25 s and then die: about
as many old objects die as young ones are born, so the count hardly moves and the young
generation grows to hundreds of thousands of objects before it is collected. Measured at
the evening peak (``bench.peak --only peak``, 19,850 connections, one process): young
collections of 0.5-0.8 s and middle ones of ~1 s over 1.1 million objects (3.2 million
tracked in all); chat relay p99 471 ms. With a middle collection every second instead, those took
36-94 ms each (p99 68 ms). Now every :data:`TICK_S` the young and middle generations are
collected together (what was born since the last tick and is still alive goes straight to
the old generation, where objects that die by reference counting are freed as always), and
the whole heap every :data:`TICKS_PER_FULL` ticks (half an hour). Measured: no collection
over 28 ms from start-up to the end of the peak window, relay p99 27 ms (max 56 ms). A full
collection at that peak takes 2.0-2.6 s (timed by making one every 30 s) and found nothing
to free while people chatted: the old generation's reference cycles come from closed
connections (about 22 objects each at the end of the run), so what waits for the next full
collection is what the connections closed in the last half hour left; and the process
stalls ~2.5 s once per half hour (0.14% of the time) instead of for hundreds of
milliseconds every few seconds.
CPython's own trigger stays on for bursts between ticks, with a young threshold of
:data:`GEN0_THRESHOLD` and the same schedule.

Guarantee: every reference cycle is still found: one that becomes garbage within a tick of
its birth at the next tick, any other (a closed connection's) within half an hour and a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from broker.log_pace import LogPace

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 10_000
TICK_S = 0.1  # the young and middle generations are collected this often
TICKS_PER_FULL = 18_000  # the whole heap every 18,000 ticks (half an hour)
GEN1_THRESHOLD = 1  # CPython's own trigger: the same schedule
GEN2_THRESHOLD = TICKS_PER_FULL


def freeze_startup_heap() -> int:
    """Collect, then freeze everything alive; return how many objects are now frozen."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def on_startup_freeze(app: web.Application) -> None:
    """An ``on_startup`` hook; append it last, after the contexts that start the broker."""
    frozen = freeze_startup_heap()
    watch_pauses()
    log.info("froze %d start-up objects out of the garbage collector's way", frozen)


LONG_PAUSE_S = 0.25  # a collection this long is logged (at most once a minute)
_LOG_EVERY_S = 60.0


class PauseWatch:
    """Times the collector's oldest-generation collections (``gc.callbacks``) and logs one
    that stops the event loop longer than :data:`LONG_PAUSE_S`, at most once a minute, with
    how many such pauses there were since the last line: an operator's sign that a
    process holds so many live objects (connections) that full collections hurt latency."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self.clock = clock
        self.started: float | None = None
        self.longest = 0.0
        self.count = 0
        self.pace = LogPace(_LOG_EVERY_S, clock)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        now = self.clock()
        if phase == "start":
            self.started = now
            return
        if self.started is None:
            return
        pause, self.started = now - self.started, None
        if pause < LONG_PAUSE_S:
            return
        self.count += 1
        self.longest = max(self.longest, pause)
        if self.pace.due(now):
            log.warning(
                "garbage collection paused the process %.0f ms (%d such pauses, longest "
                "%.0f ms, since the last report; %d objects tracked)",
                pause * 1000, self.count, self.longest * 1000, len(gc.get_objects(2)),
            )
            self.count, self.longest = 0, 0.0


def watch_pauses() -> PauseWatch:
    """Install a :class:`PauseWatch` (once per process)."""
    for callback in gc.callbacks:
        if isinstance(callback, PauseWatch):
            return callback
    watch = PauseWatch()
    gc.callbacks.append(watch)
    return watch


class Pacer:
    """Runs the collection the clock says is due (module docstring); ``collect``,
    ``counts`` and ``active`` are :func:`gc.collect`, :func:`gc.get_count` and
    :func:`gc.isenabled`, replaceable in tests.

    Whether a tick makes the full collection comes from CPython's own counter (middle
    collections since the last full one), which every collection updates, the automatic
    ones included, so the two never double up. While the collector is turned off (a
    stopping process turns it off: :class:`web.lifecycle.Shutdown`) the pacer collects
    nothing either: a stop of 18,500 connections spent 22% of its core in the pacer's
    collections (py-spy, bench.peak's rolling restart) for objects that die with it."""

    def __init__(
        self,
        collect: Callable[[int], int] = gc.collect,
        counts: Callable[[], tuple[int, int, int]] = gc.get_count,
        active: Callable[[], bool] = gc.isenabled,
    ) -> None:
        self.collect = collect
        self.counts = counts
        self.active = active
        self.collections = [0, 0, 0]  # made by this pacer, per generation

    def tick(self) -> int:
        """Collect what is due; return the oldest generation collected (-1: none, the
        collector is off)."""
        if not self.active():
            return -1
        middle_since_full = self.counts()[2]
        generation = 2 if middle_since_full + 1 >= TICKS_PER_FULL else 1
        self.collect(generation)
        self.collections[generation] += 1
        return generation


async def pace(pacer: Pacer, tick_s: float = TICK_S) -> None:
    """Tick ``pacer`` every ``tick_s`` until cancelled."""
    while True:
        await asyncio.sleep(tick_s)
        pacer.tick()


async def gc_pacing_ctx(app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx``: paces the collector while the app runs."""
    task = asyncio.create_task(pace(Pacer()), name="gc-pacer")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
