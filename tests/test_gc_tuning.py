"""The serving process freezes its start-up heap and collects young objects less often."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from web.gc_tuning import GEN0_THRESHOLD, freeze_startup_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_freeze_moves_live_objects_out_of_collections(restore_gc: None) -> None:
    before = gc.get_freeze_count()
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > before
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    # Objects made afterwards are still tracked and collected: a new cycle is freed.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def test_serve_installs_the_freeze_after_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    import uvloop
    from aiohttp import web

    from broker.settings import Settings
    from web import lifecycle
    from web.commands import serve
    from web.gc_tuning import gc_pacing_ctx, on_startup_freeze

    seen: list[web.Application] = []

    async def record(app: web.Application, *_: object, **__: object) -> None:
        seen.append(app)

    monkeypatch.setattr(lifecycle, "serve", record)
    monkeypatch.setattr(uvloop, "install", lambda: None)  # leave the tests' loop alone

    serve.run(argparse.Namespace(host="127.0.0.1", port=0), Settings.from_env({}))
    [app] = seen
    assert app.on_startup[-1] is on_startup_freeze
    assert gc_pacing_ctx in app.cleanup_ctx


def test_long_full_collections_are_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from web.gc_tuning import LONG_PAUSE_S, PauseWatch

    now = [0.0]
    watch = PauseWatch(clock=lambda: now[0])

    def collect(generation: int, pause: float) -> None:
        watch("start", {"generation": generation})
        now[0] += pause
        watch("stop", {"generation": generation})

    with caplog.at_level("WARNING", logger="web.gc_tuning"):
        collect(2, LONG_PAUSE_S / 2)  # short: not logged
        collect(1, 5.0)  # a young generation: not watched
        assert not caplog.records
        collect(2, 0.4)  # logged
        collect(2, 0.9)  # within the minute: counted, not logged
        now[0] += 60
        collect(2, 0.3)  # logged, with the one before it
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "400 ms" in lines[0]
    assert "2 such pauses, longest 900 ms" in lines[1]


class FakeCollector:
    """gc.collect and gc.get_count as CPython keeps them: a collection of generation g
    zeroes the counts of g and younger and adds one to the next older's."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.made: list[int] = []

    def collect(self, generation: int) -> int:
        self.made.append(generation)
        if generation < 2:
            self.count[generation + 1] += 1
        for g in range(generation + 1):
            self.count[g] = 0
        return 0

    def counts(self) -> tuple[int, int, int]:
        return self.count[0], self.count[1], self.count[2]


def test_the_pacer_collects_the_young_each_tick_and_all_every_half_hour() -> None:
    from web.gc_tuning import TICK_S, TICKS_PER_FULL, Pacer

    fake = FakeCollector()
    pacer = Pacer(fake.collect, fake.counts)
    for _ in range(2 * TICKS_PER_FULL + 5):
        pacer.tick()
    full_at = [i for i, g in enumerate(fake.made) if g == 2]
    assert [(i + 1) * TICK_S for i in full_at] == [pytest.approx(1800.0), pytest.approx(3600.0)]
    assert set(fake.made) == {1, 2} and pacer.collections == [0, len(fake.made) - 2, 2]


def test_an_automatic_collection_counts_toward_the_pacers_schedule() -> None:
    from web.gc_tuning import TICKS_PER_FULL, Pacer

    fake = FakeCollector()
    pacer = Pacer(fake.collect, fake.counts)
    fake.count[2] = TICKS_PER_FULL - 1  # CPython made middle collections meanwhile
    assert pacer.tick() == 2 and pacer.tick() == 1


def test_the_pacer_collects_nothing_while_the_collector_is_off() -> None:
    """A stopping process turns the collector off (web.lifecycle.Shutdown): its objects
    die with it, and collecting them cost a fifth of a stop's core."""
    from web.gc_tuning import Pacer

    fake = FakeCollector()
    on = [False]
    pacer = Pacer(fake.collect, fake.counts, active=lambda: on[0])
    assert pacer.tick() == -1 and fake.made == [] and pacer.collections == [0, 0, 0]
    on[0] = True
    assert pacer.tick() == 1 and fake.made == [1]


def test_the_pacer_runs_real_collections_that_free_cycles(restore_gc: None) -> None:
    from web.gc_tuning import Pacer

    pacer = Pacer(active=lambda: True)  # collects although gc is off below
    cycle: list[object] = []
    cycle.append(cycle)
    probe = weakref.ref(Marker(cycle))  # a young cycle, unreachable from here on
    del cycle
    gc.disable()  # only the pacer collects in this test
    try:
        pacer.tick()
    finally:
        gc.enable()
    assert probe() is None


class Marker:
    def __init__(self, cycle: list[object]) -> None:
        cycle.append(self)
