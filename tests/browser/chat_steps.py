"""Steps the chat journeys of issue 14 share (test_presence, test_reload, test_chat_phone):
a broker on a fake clock, a student who asks, a demo tutor who signs in and accepts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.settings import Settings
from tests.broker.unit import FakeClock
from tests.browser.conftest import Broker, Watch, open_page


@pytest.fixture
async def clocked_broker(broker_settings: Settings) -> AsyncIterator[tuple[Broker, FakeClock]]:
    """A broker whose time moves only when the test says (grace, departures), so a journey
    never waits on the wall clock: advance the clock, then ``await broker.sweep()``."""
    clock = FakeClock(time.time())
    server = Broker(broker_settings, clock)
    await server.start()
    yield server, clock
    await server.stop()


def settle_s(server: Broker) -> float:
    """Seconds after which presence can judge and a closed connection is announced."""
    return float(server.broker.here_within_s + 2 * server.broker.sweep_interval)


async def student_asks(
    browser: Any, server: Broker, watch: Watch, pseudonym: str,
    viewport: dict[str, int] | None = None, subject: str = "math",
) -> tuple[Any, Any]:
    """A student opens the widget and asks for help; returns (context, page) once waiting."""
    from playwright.async_api import expect

    token = server.student_token(pseudonym, "elem", 4, given_name="Leo")
    ctx = await browser.new_context(viewport=viewport or {"width": 420, "height": 860})
    page = await open_page(ctx, f"{server.url}/widget#token={token}", watch)
    await page.select_option("#subject", subject)
    await page.click("#ask")
    await expect(page.locator("#view-waiting")).to_be_visible()
    return ctx, page


async def chat_between(
    browser: Any, server: Broker, watch: Watch, pseudonym: str, tutor_name: str
) -> tuple[Any, Any, Any, Any]:
    """A student asks and a demo tutor accepts: (student context, student page, tutor
    context, tutor page), both in the chat."""
    from playwright.async_api import expect

    student_ctx, student = await student_asks(browser, server, watch, pseudonym)
    tutor_ctx, tutor = await tutor_accepts(browser, server, watch, tutor_name)
    await expect(student.locator("#view-chat")).to_be_visible()
    return student_ctx, student, tutor_ctx, tutor


async def tutor_accepts(browser: Any, server: Broker, watch: Watch, name: str) -> tuple[Any, Any]:
    """A demo tutor of Paper.co signs in, becomes available and accepts the first waiting
    request; returns (context, page) with the chat open."""
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await open_page(ctx, f"{server.url}/tutor", watch)
    await page.select_option("#demo-vendor", "paper")
    await page.fill("#demo-name", name)
    await page.click("#demo-form button[type=submit]")
    await expect(page.locator("#console")).to_be_visible()
    await page.click("#status-toggle")
    await expect(page.locator("#status-label")).to_have_text("Available")
    await page.locator(".queue-item").first.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("tabpanel")).to_be_visible()
    return ctx, page
