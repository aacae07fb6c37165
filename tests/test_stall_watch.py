"""web.stall_watch: stalls of the event loop are seen from a thread and reported once."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from types import FrameType

import pytest

from broker.errors import ConfigError
from web import stall_watch
from web.stall_watch import StallWatch, stack_of, threshold_from_env, watching


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def here() -> FrameType:
    return sys._getframe()


def watching_here(thread_id: int) -> tuple[Clock, StallWatch]:
    """A watch on a fake clock whose loop thread always stands in :func:`here`."""
    clock = Clock()
    frame = here()
    watch = StallWatch(
        thread_id=thread_id, threshold_s=0.25, clock=clock, frames=lambda: {thread_id: frame}
    )
    return clock, watch


def test_a_stall_is_sampled_while_it_lasts_and_reported_once_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, watch = watching_here(7)
    watch.beat()
    clock.now += 0.1
    watch.check()  # under the threshold: nothing
    assert watch.stalled_since is None and not watch.samples
    for _ in range(5):  # the loop is stuck: the thread samples it
        clock.now += 0.1
        watch.check()
    assert watch.stalled_since == 1000.0
    assert sum(watch.samples.values()) == 4  # 0.2 s was still under the threshold
    assert not watch.reported
    with caplog.at_level(logging.WARNING, logger="web.stall_watch"):
        clock.now += 0.05
        watch.beat()  # the loop turns again
        watch.check()
        watch.check()  # reported once, not at every look
    assert [round(s.seconds, 2) for s in watch.reported] == [0.65]
    assert watch.reported[0].stack[0][2] == "here"
    assert watch.reported[0].gc_generation == -1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "stalled 1 times over 250 ms" in lines[0]
    assert "longest 650 ms (no garbage collection in it)" in lines[0]
    assert "in here" in lines[0] and __file__ in lines[0]


def test_short_pauses_are_never_reported_and_logging_is_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, watch = watching_here(1)

    def cycle(stalled: float) -> None:
        watch.beat()
        steps = round(stalled / 0.05)
        for _ in range(steps):
            clock.now += 0.05
            watch.check()
        watch.beat()
        watch.check()

    with caplog.at_level(logging.WARNING, logger="web.stall_watch"):
        cycle(0.2)  # never over the threshold
        assert not watch.reported
        cycle(0.5)  # reported and logged
        cycle(1.0)  # reported, not logged: within a minute of the last line
        clock.now += stall_watch.LOG_EVERY_S
        cycle(0.3)  # logged, counting the one that was not
    assert len(watch.reported) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "stalled 2 times over 250 ms since the last report, longest 1000 ms" in lines[1]
    assert "tests/test_stall_watch.py:here: 2 x, 1300 ms" in lines[1]


def test_a_stall_says_how_much_of_it_was_garbage_collection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    watch = StallWatch(thread_id=1, threshold_s=0.25, clock=clock, frames=dict)
    watch.beat()
    clock.now += 0.05
    watch.on_gc("start", {"generation": 0})  # before the stall: young, short
    clock.now += 0.01
    watch.on_gc("stop", {"generation": 0})
    clock.now += 0.1
    watch.on_gc("start", {"generation": 2})  # inside it: the thread could not sample
    clock.now += 0.6
    watch.on_gc("stop", {"generation": 2})
    watch.check()  # the first look after the collection released the GIL
    clock.now += 0.02
    watch.beat()
    with caplog.at_level(logging.WARNING, logger="web.stall_watch"):
        watch.check()
    [stall] = watch.reported
    assert stall.seconds == pytest.approx(0.78)
    assert stall.gc_s == pytest.approx(0.61) and stall.gc_generation == 2
    line = caplog.records[0].getMessage()
    assert "longest 780 ms (610 ms of it in garbage collection (generation 2))" in line
    assert "by site: garbage collection (generation 2): 1 x, 780 ms" in line
    assert "(not sampled)" in line


def test_a_thread_without_frames_still_counts_the_stall() -> None:
    clock = Clock()
    watch = StallWatch(thread_id=3, threshold_s=0.1, clock=clock, frames=dict)
    watch.beat()
    clock.now += 0.3
    watch.check()
    watch.beat()
    watch.check()
    [stall] = watch.reported
    assert stall.seconds == pytest.approx(0.3) and stall.stack == ()


def test_a_stall_is_put_down_to_the_coroutine_and_our_innermost_frame() -> None:
    root = stall_watch._ROOT
    lib = "/usr/lib/python3.11/"
    stack = (  # innermost first, as sampled
        (f"{root}.venv/lib/python3.11/site-packages/sqlalchemy/types.py", 9, "process"),
        (f"{root}broker/db/reader.py", 147, "rows"),
        (f"{root}broker/service.py", 260, "sweep"),
        (f"{root}broker/service.py", 221, "_sweep_forever"),
        (f"{lib}asyncio/events.py", 80, "_run"),
        (f"{lib}asyncio/runners.py", 118, "run"),
        (f"{root}web/commands/serve.py", 66, "run"),
    )
    stall = stall_watch.Stall(0.3, stack, 0.0, -1)
    assert stall_watch.site_of(stall) == (
        "broker/service.py:_sweep_forever > broker/db/reader.py:rows"
    )
    mostly_gc = stall_watch.Stall(0.3, stack, 0.2, 1)
    assert stall_watch.site_of(mostly_gc) == "garbage collection (generation 1)"
    assert stall_watch.site_of(stall_watch.Stall(0.3, (), 0.0, -1)) == "not sampled"
    library_only = ((f"{lib}json/encoder.py", 5, "encode"),)
    assert stall_watch.site_of(stall_watch.Stall(0.3, library_only, 0, -1)) == (
        f"{lib}json/encoder.py:encode"
    )
    in_aiohttp = (
        (f"{root}.venv/lib/python3.11/site-packages/engineio/socket.py", 3, "receive"),
        (f"{root}.venv/lib/python3.11/site-packages/aiohttp/web_protocol.py", 4, "data_received"),
        *stack[-2:],
    )
    assert stall_watch.site_of(stall_watch.Stall(0.3, in_aiohttp, 0, -1)) == (
        "aiohttp/web_protocol.py:data_received > engineio/socket.py:receive"
    )


def test_stack_of_is_innermost_first_and_capped() -> None:
    def inner() -> FrameType:
        return sys._getframe()

    stack = stack_of(inner(), depth=2)
    names = [name for _, _, name in stack]
    assert names == ["inner", "test_stack_of_is_innermost_first_and_capped"]


def test_threshold_from_env() -> None:
    assert threshold_from_env({}) == stall_watch.DEFAULT_THRESHOLD_S
    assert threshold_from_env({"HH_STALL_LOG_MS": "100"}) == 0.1
    assert threshold_from_env({"HH_STALL_LOG_MS": "0"}) == 0.0
    for bad in ("soon", "-5"):
        with pytest.raises(ConfigError, match="HH_STALL_LOG_MS"):
            threshold_from_env({"HH_STALL_LOG_MS": bad})


async def test_a_real_loop_blocked_by_a_callback_is_caught_where_it_blocked() -> None:
    def blocking_callback() -> None:
        time.sleep(0.6)  # a stall many ticks long: the thread sees it whatever the load

    async with watching(0.1) as watch:
        assert watch is not None
        await asyncio.sleep(0.1)
        blocking_callback()
        for _ in range(100):  # the loop turns again; the thread reports within ticks
            await asyncio.sleep(0.02)
            if watch.reported:
                break
    assert watch.reported, "the stall was not reported"
    stall = watch.reported[0]
    assert stall.seconds >= 0.5
    assert "blocking_callback" in [name for _, _, name in stall.stack]
    assert not [t for t in threading.enumerate() if t.name == "stall-watch"]
    assert watch.on_gc not in gc.callbacks


async def test_off_is_off() -> None:
    async with watching(0) as watch:
        assert watch is None
