"""A page whose connection the server refused for a reason of its own connects again.

While the database is down a connecting page's state cannot be read. The server used to
raise out of its connect handler: the page's socket.io CONNECT was never answered, and
socket.io-client waits for that answer for ever, so the widget said "Reconnecting..." until
it was reloaded, and the server kept the half-made connection counted. Now the server
answers ``connect_error`` ``internal`` and forgets the connection, and the page
(web/static/js/common.js ``retryRefusals``) connects again after the reconnect backoff;
a refusal of who the page is (``unauthenticated``) is still not retried.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browser.conftest import Broker, Watch, assert_clean, open_page
from tests.services import database_refused
from web.keys import BROKER, GATEWAY

pytestmark = pytest.mark.browser



async def test_widget_connects_again_after_a_refusal_during_a_database_outage(
    live_broker: Broker, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import expect

    assert live_broker.test_server is not None
    app = live_broker.test_server.app
    broker, gateway = app[BROKER], app[GATEWAY]
    real = broker.student_state
    calls: list[str] = []
    answered = asyncio.Event()

    async def outage_then_real(student: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(student.subject)
        if len(calls) == 1:
            raise database_refused()  # the first connect finds the database down
        state = await real(student, *args, **kwargs)
        answered.set()
        return state

    monkeypatch.setattr(broker, "student_state", outage_then_real)
    watch = Watch()
    token = live_broker.student_token("stu-refused", "elem", 3, given_name="Cai")
    ctx = await browser.new_context()
    websockets: list[Any] = []
    page = await open_page(ctx, "about:blank", watch)
    page.on("websocket", lambda ws: websockets.append(ws))
    await page.goto(f"{live_broker.url}/widget#token={token}")

    # The first connect is refused: the page says it is reconnecting, and the server
    # counts no connection for the student.
    await expect(page.locator("#banner")).to_contain_text("Reconnecting", timeout=10_000)
    assert not any(c.namespace == "/student" for c in gateway.connections.values())
    # The backoff's first wait is 0.2-3.8 s: the second connect reads the state.
    await asyncio.wait_for(answered.wait(), 10)
    assert len(calls) == 2
    await expect(page.locator("#banner")).to_be_hidden(timeout=10_000)
    # socket.io-client closes a websocket whose only namespace was refused: a new one
    assert len(websockets) == 2
    assert [c.identity.subject for c in gateway.connections.values()] == [calls[0]]

    # the connection works: ask for help, get a place in line
    await page.select_option("#subject", "math")
    await page.locator("#ask").click()
    await expect(page.locator("#view-waiting")).to_be_visible(timeout=10_000)
    assert_clean(watch)
    await ctx.close()


async def test_an_expired_link_is_not_retried(live_broker: Broker, browser: Any) -> None:
    """``unauthenticated`` is about the page, not the server: it says so and stays put."""
    from playwright.async_api import expect

    watch = Watch()
    ctx = await browser.new_context()
    page = await open_page(ctx, "about:blank", watch)
    frames: list[str] = []

    def on_websocket(ws: Any) -> None:
        ws.on("framesent", lambda payload: frames.append(str(payload)))

    page.on("websocket", on_websocket)
    await page.goto(f"{live_broker.url}/widget#token=not-a-token")
    await expect(page.locator("#banner")).to_contain_text("expired", timeout=10_000)
    await page.wait_for_timeout(4500)  # past the longest first backoff (3.8 s)
    connects = [f for f in frames if f.startswith("40/student")]
    assert len(connects) == 1, frames
    # the token is refused over HTTP too (the catalog), and nothing else fails
    assert watch.failed == ["401 /api/catalog"] and watch.errors == [], watch
    await ctx.close()
