"""The widget in Chromium follows ``server:restart`` (web/static/js/common.js ``connect``).

The server's own shutdown step sends the notice (``Shutdown.notify``); the page must leave
at once (or, with a call under way, once it is answered), come back after
``retry_after_ms`` on a new websocket, show no "connection lost" banner, and work on the
new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from tests.browser.conftest import Broker, Watch, assert_clean, open_page
from web import lifecycle
from web.keys import BROKER, GATEWAY

pytestmark = pytest.mark.browser


async def test_widget_leaves_on_server_restart_and_comes_back_after_the_delay(
    live_broker: Broker, browser: Any
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    token = live_broker.student_token("stu-restart", "elem", 3, given_name="Ana")
    ctx = await browser.new_context()
    opened: list[float] = []
    closed: list[float] = []
    changed = asyncio.Event()

    def on_close(_ws: Any) -> None:
        closed.append(time.monotonic())
        changed.set()

    def on_websocket(ws: Any) -> None:
        opened.append(time.monotonic())
        ws.on("close", on_close)
        changed.set()

    async def until_opened(n: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(opened) < n and time.monotonic() < deadline:
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - time.monotonic())

    page = await open_page(ctx, "about:blank", watch)
    page.on("websocket", on_websocket)
    await page.goto(f"{live_broker.url}/widget#token={token}")
    await expect(page.locator("#view-start")).to_be_visible()
    await until_opened(1, 10)
    assert len(opened) == 1, opened

    assert live_broker.test_server is not None
    sio = live_broker.test_server.app[GATEWAY].sio
    shutdown = lifecycle.Shutdown(
        live_broker.test_server.app, None, sio, lifecycle.Gate()  # type: ignore[arg-type]
    )
    sent_at = time.monotonic()
    await shutdown.notify()
    assert shutdown.counts["notified"] == 1

    await until_opened(2, 15)
    assert closed, "the page did not leave on server:restart"
    assert closed[0] - sent_at < 2.0, "the page took too long to leave"
    assert len(opened) == 2, "the page did not come back"
    waited = opened[1] - sent_at
    assert waited >= lifecycle.RETRY_MIN_MS / 1000 - 0.05
    assert waited <= (lifecycle.RETRY_MIN_MS + lifecycle.RETRY_SPREAD_MIN_MS) / 1000 + 3.0
    # no "connection lost" banner: leaving was the page's own choice
    await expect(page.locator("#banner")).to_be_hidden()

    # the new connection works: ask for help, get a place in line
    await page.select_option("#subject", "math")
    await page.locator("#ask").click()
    await expect(page.locator("#view-waiting")).to_be_visible(timeout=10_000)
    assert_clean(watch)
    await ctx.close()


async def test_widget_leaves_once_its_call_under_way_is_answered(
    live_broker: Broker, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student who asked for help just as the server was told to stop gets the answer on
    the old connection (the server finishes what is in flight; the page waits up to
    RESTART_ANSWERS_MS for it) instead of a "the server did not answer" error for a
    request that was made; then the page follows server:restart as usual."""
    from playwright.async_api import expect

    broker = live_broker.test_server.app[BROKER] if live_broker.test_server else None
    assert broker is not None
    entered, release = asyncio.Event(), asyncio.Event()
    real = broker.request_help

    async def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(broker, "request_help", held)
    watch = Watch()
    token = live_broker.student_token("stu-restart-2", "elem", 3, given_name="Bea")
    ctx = await browser.new_context()
    sockets: list[list[str]] = []  # the text frames each websocket received, in order
    restart_seen, reopened = asyncio.Event(), asyncio.Event()

    def on_websocket(ws: Any) -> None:
        frames: list[str] = []
        sockets.append(frames)
        if len(sockets) == 2:
            reopened.set()

        def on_frame(payload: Any) -> None:
            frames.append(str(payload))
            if "server:restart" in str(payload):
                restart_seen.set()

        ws.on("framereceived", on_frame)

    page = await open_page(ctx, "about:blank", watch)
    page.on("websocket", on_websocket)
    await page.goto(f"{live_broker.url}/widget#token={token}")
    await expect(page.locator("#view-start")).to_be_visible()
    await page.select_option("#subject", "math")
    await page.locator("#ask").click()
    await asyncio.wait_for(entered.wait(), 10)  # help:request is under way

    assert live_broker.test_server is not None
    sio = live_broker.test_server.app[GATEWAY].sio
    shutdown = lifecycle.Shutdown(
        live_broker.test_server.app, None, sio, lifecycle.Gate()  # type: ignore[arg-type]
    )
    await shutdown.notify()
    await asyncio.wait_for(restart_seen.wait(), 10)
    release.set()  # the handler finishes while the page waits for its answer
    await asyncio.wait_for(reopened.wait(), 15)

    first = sockets[0]
    notice = next(i for i, f in enumerate(first) if "server:restart" in f)
    answers = [f for f in first[notice + 1:] if f.startswith("43")]
    assert answers and '"request"' in answers[0], first[notice:]
    await expect(page.locator("#view-waiting")).to_be_visible(timeout=10_000)
    await expect(page.locator("#banner")).to_be_hidden()
    await expect(page.locator("#form-error")).to_be_hidden()
    assert_clean(watch)
    await ctx.close()
