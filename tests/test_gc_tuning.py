"""The serving process freezes its start-up heap and collects young objects less often."""

from __future__ import annotations

import gc
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
    from web.gc_tuning import on_startup_freeze

    seen: list[web.Application] = []

    async def record(app: web.Application, *_: object, **__: object) -> None:
        seen.append(app)

    monkeypatch.setattr(lifecycle, "serve", record)
    monkeypatch.setattr(uvloop, "install", lambda: None)  # leave the tests' loop alone

    serve.run(argparse.Namespace(host="127.0.0.1", port=0), Settings.from_env({}))
    [app] = seen
    assert app.on_startup[-1] is on_startup_freeze


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
