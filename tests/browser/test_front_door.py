"""The front door (issue 14): ``/`` says what Homework Help is and where each person goes in
(the demo course in demo mode, sign-in for tutors and staff), a staff member signs in
through it and out again; ``/widget`` opened outside a launch shows one clear message and
no connection banner."""

from __future__ import annotations

from typing import Any

import pytest

from broker.accounts import Accounts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery 42"


async def test_front_door_sign_in_and_the_widget_outside_a_launch(
    live_broker: Broker, browser: Any, sqlite_url: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await open_page(ctx, f"{live_broker.url}/", watch)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Homework Help")
    await expect(page.get_by_role("heading", name="Students")).to_be_visible()
    await expect(
        page.get_by_role("link", name="Try the demo course (demo mode)")
    ).to_have_attribute("href", "/demo/lms")
    tutors = page.get_by_role("link", name="Sign in to the tutor console")
    await expect(tutors).to_have_attribute("href", "/login?next=/tutor")
    await expect(page.get_by_role("link", name="Sign in to the staff dashboard")).to_have_attribute(
        "href", "/login?next=/staff"
    )
    assert await axe_violations(page) == []
    await screenshot(page, "front-door")

    # staff sign in through the form (the browser posts it with "Origin: null" under the
    # pages' no-referrer policy), land on the dashboard, and sign out
    engine = create_engine(sqlite_url)
    try:
        await Accounts(engine, load_catalog()).add(
            "dana", PASSWORD, role="staff", scope="district", display_name="Dana"
        )
    finally:
        await engine.dispose()
    await page.get_by_role("link", name="Sign in to the staff dashboard").click()
    await page.fill("#username", "dana")
    await page.fill("#password", PASSWORD)
    await page.click("form button[type=submit]")
    await expect(page.locator("#dashboard")).to_be_visible()
    assert page.url.endswith("/staff")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/login?next=%2Fstaff")
    await page.goto(f"{live_broker.url}/staff")
    await expect(page.locator("#signin")).to_be_visible()  # the cookie is gone

    # the widget without a launch: the one message, nothing else, no "connection lost"
    sockets: list[str] = []
    ctx.on("page", lambda new: new.on("websocket", lambda ws: sockets.append(ws.url)))
    widget = await open_page(ctx, f"{live_broker.url}/widget", watch)
    await expect(widget.locator("#no-token")).to_be_visible()
    await expect(widget.locator("#no-token")).to_contain_text(
        "Please open Homework Help from your course in Schoology."
    )
    await expect(widget.get_by_role("link", name="What is Homework Help?")).to_have_attribute(
        "href", "/"
    )
    for hidden in ("#view-start", "#request-form", "#banner", "#auto-read"):
        await expect(widget.locator(hidden)).to_be_hidden()
    await widget.wait_for_load_state("networkidle")
    assert sockets == [], "the widget opened a connection outside a launch"
    assert await axe_violations(widget) == []
    await ctx.close()
    assert_clean(watch)
