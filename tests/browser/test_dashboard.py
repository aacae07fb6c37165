"""The staff dashboard read at a glance (issue 14), in Chromium, over a known history
(tests/stats/seed.py, January 2024): all 24 hours at 1280 px and a visible sideways scroll
on a phone, the range in words, groups spelled out, trends drawn, tutor time shown for
short sessions, why a chart is empty (sign-out: test_front_door.py); a vendor manager
offered their own vendor only; a teacher's LMS launch landing on their school's view."""

from __future__ import annotations

from typing import Any

import pytest

from broker import tokens
from broker.db.engine import create_engine
from tests.broker.harness import SECRET
from tests.browser.conftest import (
    SCREENSHOTS,
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)
from tests.stats.seed import seed

pytestmark = pytest.mark.browser


def cookie(server: Broker, role: str, subject: str, claims: dict[str, Any]) -> dict[str, Any]:
    """The sign-in cookie of ``role`` with ``claims``, as /login or an LTI launch sets it."""
    identity = tokens.Identity(role, subject, claims)
    return {
        "name": "hh_session",
        "value": tokens.issue(SECRET, identity),
        "url": server.url,
        "httpOnly": True,
        "sameSite": "Lax",
    }


async def seeded(server: Broker, sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        await seed(engine)
    finally:
        await engine.dispose()


async def show_week(page: Any, first: str = "2024-01-08", last: str = "2024-01-14") -> None:
    await page.fill("#f-from", first)
    await page.fill("#f-last", last)
    await page.click("#filters button[type=submit]")


async def test_dashboard_at_a_glance(live_broker: Broker, browser: Any, sqlite_url: str) -> None:
    from playwright.async_api import expect

    await seeded(live_broker, sqlite_url)
    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    await ctx.add_cookies([live_broker.staff_cookie()])
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_label("First day")).to_be_visible()
    await expect(page.get_by_label("Last day")).to_be_visible()
    assert await page.get_by_text("not included").count() == 0
    # a district account is offered every school by name, every region and vendor
    await expect(page.locator("#f-school option", has_text="Test High")).to_have_count(1)
    await expect(page.locator("#f-school")).to_be_enabled()
    await show_week(page)
    await expect(page.locator("#range-words")).to_have_text(
        "Showing Mon, Jan 8 – Sun, Jan 14, 2024, Pacific Time."
    )
    await expect(page.locator("#summary .kpi .value").first).to_have_text("17")  # requests

    # the heat table: 00:00 to 23:00 inside the page at 1280 px, no sideways scroll
    heat = page.locator("figure[data-stats=heatmap]")
    hours = heat.locator(".heat thead th")
    await expect(hours).to_have_count(25)
    await expect(hours.nth(1)).to_have_text("00:00")
    await expect(hours.nth(24)).to_have_text("23:00")
    wrap = heat.locator(".heat-wrap")
    sizes = await wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert sizes[0] <= sizes[1] + 1, f"the heat table scrolls at 1280 px: {sizes}"
    last = await hours.nth(24).bounding_box()
    assert last is not None and last["x"] + last["width"] <= 1280
    await expect(heat.locator(".heat-scroll-hint")).to_be_hidden()

    # trends per day, drawn; groups written out; tutor time of short sessions is not "no data"
    trends = page.locator("#trends-charts figure")
    await expect(trends).to_have_count(2)
    await expect(trends.locator("canvas")).to_have_count(2)
    await expect(page.locator("#trends-hint")).to_contain_text("Per day")
    groups = page.locator("figure[data-stats=groups]")
    await expect(
        groups.locator(".bar-label", has_text="Students with disabilities (SWD)")
    ).to_be_visible()
    await expect(groups.locator(".bar-label", has_text="English learners (EL)")).to_be_visible()
    await expect(page.locator("figure[data-stats=vendors] canvas")).to_have_count(1)
    described = await page.locator("figure[data-stats=waits] .chart-plot").get_attribute(
        "aria-label"
    )
    assert "Requests by Wait before a tutor accepted" in (described or ""), described
    violations = await axe_violations(page)
    assert violations == [], violations
    await screenshot(page, "dashboard-1280")

    # a phone: the heat table scrolls sideways, visibly, and says so
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(heat.locator(".heat-scroll-hint")).to_be_visible()
    sizes = await wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert sizes[0] > sizes[1], sizes
    await heat.scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "dashboard-phone-heat.png"))
    await page.set_viewport_size({"width": 1280, "height": 900})

    # a range without requests says why; a long range goes per week
    await show_week(page, "2025-03-01", "2025-03-07")
    await expect(page.locator("#history-state")).to_contain_text(
        "No requests for help in this range"
    )
    await expect(page.locator("figure[data-stats=vendors] p.empty")).to_have_text(
        "No sessions in this range."
    )
    await show_week(page, "2024-01-01", "2024-12-31")
    await expect(page.locator("#trends-hint")).to_contain_text("Per week")

    await ctx.close()
    assert_clean(watch)


async def test_teacher_and_vendor_manager_see_their_own(live_broker: Broker, browser: Any) -> None:
    from playwright.async_api import expect

    from web.commands.demo_seed import seed as demo_seed

    # a teacher launched from the (demo) LMS: their school's view, by name
    await demo_seed(live_broker.settings)
    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    lms = await open_page(ctx, f"{live_broker.url}/demo/lms", watch)
    await lms.locator("a[data-login]", has_text="instructor").click()
    frame = lms.frame_locator("#tool")
    school = frame.locator("#f-school")
    await expect(school).to_be_disabled(timeout=15_000)
    await expect(school.locator("option")).to_have_count(1)
    name = await school.locator("option").inner_text()
    assert "demo-sch" in name and "(" in name, name  # the school's name, then its id
    await expect(frame.locator("#who")).to_contain_text("Signed in: teacher at")
    staff_frame = next(f for f in lms.frames if "/staff" in f.url)
    assert "token" not in staff_frame.url  # the launch's fragment token is kept, then erased
    await expect(frame.locator("#scope-note")).to_contain_text("This account sees")
    await expect(frame.locator("#summary")).to_be_visible()
    assert "Not allowed" not in await frame.locator("#history-state").inner_text()
    await ctx.close()

    # a vendor manager: their own vendor only, and figures (not "sign in with a staff
    # account"); what the figures hold is tested over HTTP (tests/stats)
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    await ctx.add_cookies(
        [cookie(live_broker, "staff", "vm-1", {"scope": "vendor", "scope_id": "paper"})]
    )
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    vendor = page.locator("#f-vendor")
    await expect(vendor).to_be_disabled()
    await expect(vendor.locator("option")).to_have_count(1)
    await expect(vendor.locator("option")).to_have_text("Paper.co")
    await expect(page.locator("#who")).to_have_text("Signed in: manager at Paper.co")
    await expect(page.locator("#f-school")).to_be_enabled()
    await expect(page.locator("#summary")).to_be_visible()
    await expect(page.locator("#history-state")).to_contain_text("No requests for help")
    await expect(page.locator("#scheduled-state")).not_to_contain_text("Not allowed")
    await expect(page.locator("#safety")).to_be_hidden()
    await ctx.close()

    # a teacher whose course link names no school is told why there is nothing to show
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    await ctx.add_cookies([cookie(live_broker, "teacher", "t-2", {"scope_id": None})])
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    await expect(page.locator("#history-state")).to_contain_text("names no school")
    await expect(page.locator("#banner")).to_have_text("This account may not see the live figures.")
    await ctx.close()
    # the safety review is for district and school staff: the page asks, is refused, hides it
    watch.failed = [
        f
        for f in watch.failed
        if not f.startswith("403 /api/safety/") and f != "403 /api/stats/filters"
    ]
    assert_clean(watch)
