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
