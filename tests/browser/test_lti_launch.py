"""A student launches from the (fake) Schoology page in Chromium: the real OIDC login, the
platform's signed auto-post, the tool's validation, and the widget inside the LMS iframe."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Broker, Watch, assert_clean, open_page, screenshot
from web.commands.demo_seed import seed

pytestmark = pytest.mark.browser


async def test_student_launches_the_widget_from_the_demo_lms(
    live_broker: Broker, browser: Any
) -> None:
    from playwright.async_api import expect

    await seed(live_broker.settings)  # the demo roster the LMS's students come from
    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1100, "height": 900}, locale="es-US")
    lms = await open_page(ctx, f"{live_broker.url}/demo/lms", watch)
    first = lms.locator("a[data-login]").first
    await expect(first).to_be_visible()
    await lms.select_option("#locale", "es-US")  # the launch's launch_presentation.locale
    await first.click()
    widget = lms.frame_locator("#tool")
    await expect(widget.locator("#view-start")).to_be_visible(timeout=15_000)
    await expect(widget.locator("#greeting")).to_contain_text("Hola")
    await widget.locator("#subject").select_option("math")
    await widget.locator("#ask").click()
    await expect(widget.locator("#view-waiting")).to_be_visible(timeout=10_000)
    await expect(widget.locator("#queue-position")).not_to_be_empty()
    await screenshot(lms, "demo-lms-launch")
    assert_clean(watch)
