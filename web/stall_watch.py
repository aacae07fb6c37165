"""Notice when a serving process's event loop stops turning, and say where it was stuck.

Every acknowledgement, relay and ping of a process waits on its one event loop, so a
callback that holds the loop for a second delays every connected person by that second;
the chat relay's 99th percentile is exactly such stalls. They are invisible from inside
the loop (nothing runs while it is stuck) and too rare for a sampling profiler's summary.

:class:`StallWatch` sees them from outside: a task on the loop stamps a heartbeat every
:data:`TICK_S`; a daemon thread checks it every :data:`TICK_S` and, while the heartbeat is
older than the threshold, samples the loop thread's Python stack (``sys._current_frames``,
which does not need the loop, only the GIL between two bytecodes). When the loop turns
again the stall is over. The garbage collector holds the GIL for a whole collection, so
the thread cannot sample during one; ``gc.callbacks`` times collections instead, and a
stall says how much of it was the collector's. Each stall is put down to a site
(:func:`site_of`): the collector, or the coroutine the loop was running and our innermost
frame in it. At most once per :data:`LOG_EVERY_S`, and when the watch stops, one WARNING
line tells the stalls since the last line: how many, the stalled time by site, and the
stack of the longest.

Guarantees: the watcher only reads (a heartbeat float and frames), never touches the loop
or its objects, and costs one wake-up per tick on a thread that holds the GIL for
microseconds; a stall shorter than the threshold is never reported; a stall is reported
once, after it ends (a loop stuck for good is the shutdown watchdog's business). It is on
in every ``serve`` process; ``HH_STALL_LOG_MS`` sets the threshold, 0 turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web

from broker.errors import ConfigError
from broker.log_pace import LogPace

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_S = 0.25
TICK_S = 0.02
LOG_EVERY_S = 60.0
STACK_DEPTH = 48  # innermost frames kept per sample
_ROOT = str(Path(__file__).resolve().parents[1]) + os.sep  # our code: broker/, web/, ...

Stack = tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class Stall:
    """One stall, as reported: how long, where, and how much of it was the collector's."""

    seconds: float
    stack: Stack
    gc_s: float  # time inside garbage collections that overlapped the stall
    gc_generation: int  # the oldest generation collected during it (-1: none)


def stack_of(frame: FrameType | None, depth: int = STACK_DEPTH) -> Stack:
    """The innermost ``depth`` frames of ``frame``'s stack, innermost first."""
    out: list[tuple[str, int, str]] = []
    while frame is not None and len(out) < depth:
        code = frame.f_code
        out.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return tuple(out)


@dataclass
class StallWatch:
    """The watcher's state; :meth:`beat` runs on the loop, :meth:`check` on the thread.

    ``clock`` and ``frames`` are injectable, so the logic is tested with a fake clock and
    made-up stacks; the defaults are ``time.monotonic`` and ``sys._current_frames``."""

    thread_id: int
    threshold_s: float = DEFAULT_THRESHOLD_S
    clock: Callable[[], float] = time.monotonic
    frames: Callable[[], Mapping[int, FrameType]] = sys._current_frames
    beat_at: float = 0.0
    samples: Counter[Stack] = field(default_factory=Counter)
    stalled_since: float | None = None
    pace: LogPace = field(init=False)
    sites: dict[str, float] = field(default_factory=dict)  # stalled seconds by site
    counts: Counter[str] = field(default_factory=Counter)  # stalls by site
    longest: Stall | None = None  # since the last report
    reported: list[Stall] = field(default_factory=list)  # for tests and operators, capped
    collections: deque[tuple[float, float, int]] = field(
        default_factory=lambda: deque(maxlen=256)
    )  # recent garbage collections: (start, end, generation)
    _gc_started: float | None = None

    def __post_init__(self) -> None:
        self.pace = LogPace(LOG_EVERY_S, self.clock)

    def beat(self) -> None:
        self.beat_at = self.clock()

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """A ``gc.callbacks`` entry: the collector holds the GIL while it runs, so the
        watcher cannot sample during a collection; this says afterwards that it was one."""
        now = self.clock()
        if phase == "start":
            self._gc_started = now
        elif self._gc_started is not None:
            self.collections.append((self._gc_started, now, int(info.get("generation", -1))))
            self._gc_started = None

    def check(self) -> None:
        """One look: sample the loop's stack while it is stalled, report a stall just ended."""
        now = self.clock()
        beat_at = self.beat_at
        if now - beat_at >= self.threshold_s:
            if self.stalled_since is None:
                self.stalled_since = beat_at
            frame = self.frames().get(self.thread_id)
            if frame is not None:
                self.samples[stack_of(frame)] += 1
            return
        if self.stalled_since is not None and beat_at > self.stalled_since:
            self._ended(self.stalled_since, beat_at, now)

    def _gc_within(self, lo: float, hi: float) -> tuple[float, int]:
        spent, oldest = 0.0, -1
        for start, end, generation in list(self.collections):
            overlap = min(end, hi) - max(start, lo)
            if overlap > 0:
                spent += overlap
                oldest = max(oldest, generation)
        return spent, oldest

    def _ended(self, since: float, until: float, now: float) -> None:
        stalled_s = until - since
        gc_s, generation = self._gc_within(since, until)
        stack = self.samples.most_common(1)[0][0] if self.samples else ()
        self.samples.clear()
        self.stalled_since = None
        stall = Stall(stalled_s, stack, gc_s, generation)
        if len(self.reported) < 100:
            self.reported.append(stall)
        site = site_of(stall)
        self.sites[site] = self.sites.get(site, 0.0) + stalled_s
        self.counts[site] += 1
        if self.longest is None or stalled_s > self.longest.seconds:
            self.longest = stall
        if self.pace.due(now):
            self.report()

    def report(self) -> None:
        """Log the stalls since the last line: where the stalled time went, by site, and
        the stack of the longest."""
        longest = self.longest
        if longest is None:
            return
        total = sum(self.counts.values())
        sites = "; ".join(
            f"{site}: {self.counts[site]} x, {spent * 1000:.0f} ms"
            for site, spent in sorted(self.sites.items(), key=lambda kv: -kv[1])[:5]
        )
        where = "".join(
            f'  File "{f}", line {n}, in {name}\n' for f, n, name in reversed(longest.stack)
        )
        log.warning(
            "the event loop stalled %d times over %.0f ms since the last report, longest "
            "%.0f ms (%s); stalled time by site: %s; the longest's stack:\n%s",
            total, self.threshold_s * 1000, longest.seconds * 1000, _collector(longest),
            sites, where.rstrip() or "  (not sampled)",
        )
        self.longest = None
        self.sites.clear()
        self.counts.clear()


def _collector(stall: Stall) -> str:
    if stall.gc_generation < 0:
        return "no garbage collection in it"
    return f"{stall.gc_s * 1000:.0f} ms of it in garbage collection (generation " \
        f"{stall.gc_generation})"


_ASYNCIO = f"{os.sep}asyncio{os.sep}"
_SITE_PACKAGES = f"{os.sep}site-packages{os.sep}"


def _own(filename: str) -> bool:
    return filename.startswith(_ROOT) and _SITE_PACKAGES not in filename


def _short(frame: tuple[str, int, str]) -> str:
    filename, _, name = frame
    library = filename.rpartition(_SITE_PACKAGES)[2]
    return f"{library.removeprefix(_ROOT)}:{name}"


def site_of(stall: Stall) -> str:
    """Where a stall happened, in a few words: ``garbage collection (generation N)`` when
    the collector took most of it; else the coroutine or callback the loop was running
    (the first frame under asyncio's) and our innermost frame in it (else the innermost
    frame), e.g. ``broker/service.py:_sweep_forever > broker/db/reader.py:rows``."""
    if stall.gc_generation >= 0 and stall.gc_s * 2 >= stall.seconds:
        return f"garbage collection (generation {stall.gc_generation})"
    if not stall.stack:
        return "not sampled"
    outer_first = list(reversed(stall.stack))
    loop = max((k for k, f in enumerate(outer_first) if _ASYNCIO in f[0]), default=-1)
    under = outer_first[loop + 1:] or outer_first
    entry = under[0]
    inner = next((f for f in reversed(under) if _own(f[0])), under[-1])
    return _short(entry) if entry == inner else f"{_short(entry)} > {_short(inner)}"


def threshold_from_env(environ: Mapping[str, str]) -> float:
    """``HH_STALL_LOG_MS`` in seconds (0: off); a bad value is a clear start-up error."""
    raw = environ.get("HH_STALL_LOG_MS", "").strip()
    if not raw:
        return DEFAULT_THRESHOLD_S
    try:
        ms = float(raw)
    except ValueError as exc:
        msg = f"HH_STALL_LOG_MS must be a number of milliseconds, got {raw!r}"
        raise ConfigError(msg) from exc
    if ms < 0:
        raise ConfigError(f"HH_STALL_LOG_MS must not be negative, got {raw!r}")
    return ms / 1000


async def _heartbeat(watch: StallWatch) -> None:
    while True:
        watch.beat()
        await asyncio.sleep(TICK_S)


def _watch_thread(watch: StallWatch, stop: threading.Event) -> None:
    while not stop.wait(TICK_S):
        try:
            watch.check()
        except Exception:  # never let the watcher die on a frame it could not read
            log.exception("the stall watcher failed once; it goes on")


@contextlib.asynccontextmanager
async def watching(threshold_s: float) -> AsyncIterator[StallWatch | None]:
    """Watch the running loop while the block runs (``threshold_s`` 0: do nothing)."""
    if threshold_s <= 0:
        yield None
        return
    watch = StallWatch(threading.get_ident(), threshold_s)
    watch.beat()
    task = asyncio.create_task(_heartbeat(watch), name="stall-watch heartbeat")
    stop = threading.Event()
    thread = threading.Thread(
        target=_watch_thread, args=(watch, stop), name="stall-watch", daemon=True
    )
    thread.start()
    gc.callbacks.append(watch.on_gc)
    try:
        yield watch
    finally:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(watch.on_gc)
        stop.set()
        watch.report()  # the stalls not yet told
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        thread.join(1.0)


def stall_watch_ctx(threshold_s: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry that watches the serving loop for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with watching(threshold_s):
            yield

    return ctx
