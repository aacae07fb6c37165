"""The student's journey on a phone-sized screen, zoomed, and with text at 200%.

The tutor side is a plain socket.io client here (the full two-browser journey is in
``test_journeys.py``); what is under test is the widget's layout and keyboard use.

* ``phone``: a 360 x 740 CSS px viewport.
* ``zoom200``: browser zoom 200% on a 1280 x 1600 screen, emulated as it renders: a
  640 x 800 CSS px viewport at deviceScaleFactor 2.
* ``text200``: 360 px wide with the root font size at 200% (the browser's "text size"
  setting, set as ``document.documentElement.style.fontSize``, since the CSP forbids an
  injected ``<style>``).

At every step nothing may overflow sideways (WCAG 1.4.10 reflow) and each control in view
must be reachable.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.harness import Server, tutor
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)

pytestmark = pytest.mark.browser

VARIANTS = {
    "phone": ({"width": 360, "height": 740}, 1, None),
    "zoom200": ({"width": 640, "height": 800}, 2, None),
    "text200": ({"width": 360, "height": 740}, 1, "200%"),
}


async def assert_reflows(page: Any, where: str) -> None:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{where}: the page scrolls sideways by {overflow}px"


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_widget_journey_small_and_zoomed(
    variant: str, live_broker: Broker, browser: Any
) -> None:
    from playwright.async_api import expect

    viewport, scale, font_size = VARIANTS[variant]
    watch = Watch()
    token = live_broker.student_token(f"stu-{variant}", "elem", 3, given_name="Luis")
    ctx = await browser.new_context(
        viewport=viewport, device_scale_factor=scale, locale="es-US", has_touch=True
    )
    page = await open_page(ctx, f"{live_broker.url}/widget?lang=es#token={token}", watch)
    if font_size:
        await page.evaluate(f"() => {{ document.documentElement.style.fontSize = '{font_size}'; }}")
    await expect(page.locator("#view-start")).to_be_visible()
    await assert_reflows(page, "start")

    # keyboard only: subject, language, topic, submit
    await page.locator("#subject").focus()
    await page.keyboard.press("ArrowDown")
    subject = await page.locator("#subject").input_value()
    assert subject
    await page.select_option("#language", "es")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await page.keyboard.type("fracciones")
    await page.locator("#ask").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#queue-position")).to_contain_text("siguiente")
    await assert_reflows(page, "waiting")
    await screenshot(page, f"widget-waiting-{variant}")

    # a Paper.co tutor (the school is K-5) takes the request over socket.io
    harness = Server(live_broker.settings)
    harness.test_server = live_broker.test_server
    desk = await harness.connect("/tutor", tutor(f"t-{variant}", "paper", ["es"], "Profe Ana"))
    try:
        await desk.call("tutor:status", {"status": "available"})
        snap = await desk.until("queue:snapshot", lambda s: s["queue"] == "paper:es" and s["total"])
        accepted = await desk.call("help:accept", {"request_id": snap["requests"][0]["id"]})
        session_id = accepted["session"]["session_id"]
        await expect(page.locator("#view-chat")).to_be_visible()
        await expect(page.locator("#message")).to_be_focused()
        await page.keyboard.type("¿Cómo sumo 1/2 + 1/3?")
        await page.keyboard.press("Enter")
        await desk.until("chat:message", lambda m: m["from"] == "student")
        await desk.call("chat:send", {"session_id": session_id, "text": "<b>Hola</b> Luis"})
        await expect(page.locator(".msg.from-other .text")).to_have_text("<b>Hola</b> Luis")
        await assert_reflows(page, "chat")
        violations = await axe_violations(page)
        assert violations == [], f"axe ({variant}, chat): {violations}"
        await screenshot(page, f"widget-chat-{variant}")
        await desk.call("session:end", {"session_id": session_id, "resolved": True})
    finally:
        await desk.close()

    await expect(page.locator("#view-rate")).to_be_visible()
    await page.get_by_label("Sí").check()
    await page.get_by_label("5 estrellas", exact=True).check()
    await page.locator("#rate-form button[type=submit]").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#rate-thanks")).to_be_visible()
    await assert_reflows(page, "rated")
    await screenshot(page, f"widget-rated-{variant}")
    await ctx.close()
    assert_clean(watch)
