"""The staff dashboard's Staffing section (issue 15), in Chromium at 1280 px: three Mondays
of demand for paper:en at 16:00 (Pacific) against a published plan of one tutor from 16:00
to 18:00; the week heat table marks the 16:00 gap with text as well as colour and fits the
page; a what-if adding a tutor at that half-hour shows the service level and the cost in
tutor-hours; the coverage CSV downloads; the section is axe-clean."""

from __future__ import annotations

from typing import Any

import pytest

from broker.capacity import shifts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.identity import Scope, staff_identity
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)
from tests.capacity.test_advice_api import PLAN, demand_rows

pytestmark = pytest.mark.browser
CATALOG = load_catalog()


async def seeded(sqlite_url: str) -> None:
    """Four requests each Monday 16:00-16:04 PDT (23:00 UTC), 20 minutes each; the plan."""
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            for table, batch in demand_rows():
                await conn.execute(table.insert(), batch)
        manager = staff_identity("vm", Scope("vendor", "paper"), source="test")
        plan = shifts.parse_plan(PLAN, CATALOG.timezone)
        await shifts.replace_plans(engine, manager, CATALOG, {("paper", "en"): plan}, "test")
    finally:
        await engine.dispose()


async def test_staffing_heatmap_and_what_if(live_broker: Broker, browser: Any,
                                            sqlite_url: str) -> None:
    from playwright.async_api import expect

    await seeded(sqlite_url)
    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    await ctx.add_cookies([live_broker.staff_cookie()])
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    await page.fill("#f-from", "2024-10-07")
    await page.fill("#f-last", "2024-10-27")
    await page.click("#filters button[type=submit]")
    staffing = page.locator("#staffing")
    await expect(staffing).to_be_visible()
    await page.select_option("#cap-queue", "paper:en")
    await expect(page.locator("#cap-words")).to_contain_text("The plan schedules 2 tutor-hours")

    rows = page.locator(".cap-heat tbody tr")
    await expect(rows).to_have_count(48)
    await expect(rows.nth(0).locator("th")).to_have_text("00:00")
    await expect(rows.nth(47).locator("th")).to_have_text("23:30")
    monday_1600 = rows.nth(32).locator("td").nth(0)
    await expect(monday_1600).to_have_text("1/3 −2")  # 8/h x 20 min, 2 chats a tutor
    await expect(monday_1600).to_have_class("cap-short")
    monday_1630 = rows.nth(33).locator("td").nth(0)
    await expect(monday_1630).to_have_text("1/0 +1")
    await expect(monday_1630).to_have_class("cap-spare")
    wrap = page.locator(".cap-wrap")
    assert await wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # no sideways scroll

    await page.fill("#wi-delta", "1")
    await page.select_option("#wi-day", "0")
    await page.select_option("#wi-time", "32")
    await page.get_by_role("button", name="Estimate").click()
    result = page.locator("#what-if-result")
    await expect(result).to_contain_text("Cost per week2.5 tutor-hours")
    await expect(result).to_contain_text("Expected service level")
    assert "No limit" not in await result.inner_text()  # 2 tutors: the line has a bound

    link = page.locator("#cap-csv a")
    href = await link.get_attribute("href")
    assert href is not None and "format=csv" in href and "vendor=paper" in href
    csv = await ctx.request.get(f"{live_broker.url}{href}")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")

    violations = await axe_violations(page)
    assert not violations, violations
    await page.locator("#staffing").scroll_into_view_if_needed()
    await screenshot(page, "staffing-1280")
    await ctx.close()
    assert_clean(watch)
