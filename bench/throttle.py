"""What a throttle check costs each ``help:request``, ``help:cancel`` and chat message.

``python -m bench.throttle [--events N] [--passes N] [--redis-url URL] [--no-write]
[--results PATH]`` times, on one core, the broker's own check (``Broker._throttle``) over
200 students' keys taken in turn, each at a busy student's pace, two ways:

* **awaited under its bound**: ``async with asyncio.timeout(REDIS_WAIT_S): await
  limiter.allow(key)``, what every event paid before ``allow_now`` (a coroutine, a timer
  scheduled and cancelled, the bound's context);
* **as the broker asks now**: ``limiter.allow_now(key)`` first, the bounded await only when
  the throttle must ask its store (broker/throttle.py).

On the memory backend (the embedded stack) every event is answered at once; on Redis an
event of a lease is, and the rest go to Redis in batches. The baseline is an awaited
coroutine that returns at once, timed in the same run: ratios compare with it. The median
of ``--passes`` passes after a warm-up. CPU time on one core, not the whole stack's
throughput: bench.broker's request scenario is the end-to-end figure, and too noisy on a
shared machine to show a few microseconds an event (bench/RESULTS.md, Broker).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import time
import types
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from bench.results import RESULTS, publish
from broker.constants import REDIS_WAIT_S
from broker.outages import OutageLog
from broker.service import Broker
from broker.throttle import Throttle, Throttles

SECTION = "## Throttle"
KEYS = 200
LIMIT = 100_000  # generous, as the benchmarks' (a district's is 30 a minute)


async def _nothing(limiter: Throttle, key: str) -> None:
    """The baseline: an awaited coroutine that returns at once."""


async def _bounded(limiter: Throttle, key: str) -> None:
    async with asyncio.timeout(REDIS_WAIT_S):
        await limiter.allow(key)


def _as_the_broker(limiter: Throttle, key: str) -> Awaitable[None]:
    stub: Any = types.SimpleNamespace(_outages=OutageLog(logging.getLogger(__name__)))
    return Broker._throttle(stub, limiter, key)


Check = Callable[[Throttle, str], Awaitable[None]]
PATHS: dict[str, Check] = {
    "baseline: an awaited no-op": _nothing,
    "awaited under its bound (before)": _bounded,
    "as the broker asks now": _as_the_broker,
}


async def _pass(check: Check, limiter: Throttle, events: int) -> float:
    """Microseconds of CPU per event over one pass."""
    keys = [f"student:{n}" for n in range(KEYS)]
    started = time.process_time()
    for n in range(events):
        await check(limiter, keys[n % KEYS])
    return (time.process_time() - started) / events * 1e6


async def measure(events: int, passes: int, redis_url: str | None) -> dict[str, dict[str, float]]:
    """Median microseconds per event, by backend and path."""
    figures: dict[str, dict[str, float]] = {}
    backends: list[tuple[str, str | None]] = [("memory", None)]
    if redis_url:
        backends.append(("redis", redis_url))
    for backend, url in backends:
        factory = Throttles(url, f"hh-bench-throttle-{time.time_ns()}")
        try:
            limiter = factory.make("request", LIMIT, 60.0)
            await _pass(_bounded, limiter, events)  # warm-up: leases granted, scripts loaded
            runs: dict[str, list[float]] = {path: [] for path in PATHS}
            for _ in range(passes):  # the paths alternate, so a slow minute hits each
                for path, check in PATHS.items():
                    runs[path].append(await _pass(check, limiter, events))
            figures[backend] = {path: statistics.median(v) for path, v in runs.items()}
        finally:
            await factory.close()
    return figures


def markdown(figures: dict[str, dict[str, float]], events: int, passes: int) -> str:
    lines = [
        SECTION,
        "",
        f"`python -m bench.throttle --events {events} --passes {passes}` ({date.today()}, "
        f"Python {platform.python_version()}, one core of a shared machine). The broker's "
        f"throttle check (`Broker._throttle`) over {KEYS} students' keys in turn, CPU "
        "microseconds per event, median of the passes; the paths alternate within each "
        "pass. Redis: the machine's, the events of a lease answered in the process, the "
        "rest in batches of script calls.",
        "",
        "| backend | path | us per event | vs baseline | vs before |",
        "|---|---|---|---|---|",
    ]
    for backend, paths in figures.items():
        base = paths["baseline: an awaited no-op"]
        before = paths["awaited under its bound (before)"]
        for path, us in paths.items():
            lines.append(
                f"| {backend} | {path} | {us:.2f} | {us / base:.1f}x | {us / before:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throttle", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                        help="'' to measure the memory backend only")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.events, args.passes, args.redis_url or None))
    text = markdown(figures, args.events, args.passes)
    return publish(SECTION, text, write=not args.no_write, path=args.results)


if __name__ == "__main__":
    raise SystemExit(main())
