"""The staff dashboard's Staffing section (issue 15), in Chromium at 1280 px, with the broker
on SQLite and on PostgreSQL, over a seeded week (Monday 2024-10-07, Pacific daylight time)
of paper:en:

* the plan: Mondays 16:00-18:00 one tutor, Tuesdays 16:00-17:00 one tutor, and a dated
  exception taking Tuesday 2024-10-08 16:00-17:00 to nobody;
* Monday 16:00: four requests, each accepted after 30 s by its own tutor, 20-minute chats;
  Tuesday 16:10: one request that gave up after 2 minutes (nobody on shift: the exception);
* unmet requests: three on Monday 16:10, one on Wednesday 19:00 (and a test one, ignored).

Checked: the week picker (any day picks its local Monday), the cells' text marks against
the coverage API's figures (short, spare, under-delivered ▾, the exception applied), a
cell's words, the unmet and wait figures beside the table, the CSV link, keyboard use (one
Tab stop, arrow keys, the detail line), the what-if redrawing the table (the week's own
schedule, exceptions included, plus the change; needed at the what-if's target; the
expected service level; cost in tutor-hours) and "Back to the plan"; axe-clean. A second
test draws the daylight-saving weeks: the repeated 01:00 of a fall-back Sunday in one cell,
the missing 02:00 of a spring-forward Sunday marked as such.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from broker import tokens
from broker.capacity import shifts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import help_requests, tutoring_sessions
from broker.identity import Scope, staff_identity
from broker.request_rollup import fill_rows
from broker.settings import Settings
from tests.broker.conftest import prepare_database
from tests.broker.harness import SECRET
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)
from tests.stats.seed import request_row, sec, session_row, t

pytestmark = pytest.mark.browser


@pytest.fixture
async def broker_settings(database_url: str) -> Settings:
    """The live broker on SQLite and on PostgreSQL (``database_url`` is parametrised)."""
    await prepare_database(database_url)
    return Settings(database_url=database_url, secret_key=SECRET, pseudonym_secret=SECRET,
                    demo=True, grace_seconds=60.0)
CATALOG = load_catalog()
MANAGER = staff_identity("vm", Scope("vendor", "paper"), source="test")
PLAN = {
    "weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": 1},
               {"day": "tue", "start": "16:00", "end": "17:00", "headcount": 1}],
    "exceptions": [{"date": "2024-10-08", "start": "16:00", "end": "17:00", "headcount": 0,
                    "note": "training"}],
}
DST_PLAN = {"weekly": [{"day": "sun", "start": "01:00", "end": "03:00", "headcount": 1}]}
MON_1600, MON_1700, TUE_1600, WED_1900 = (32, 0), (34, 0), (32, 1), (38, 2)  # (row, day)


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    reqs, sessions = [], []
    for k in range(4):  # Monday 16:00-16:03 PDT
        queued = t(f"2024-10-07 23:0{k}:00")
        row = request_row(f"r{k}", f"s{k}", "", "elem", 3, "en", queued, vendor="paper",
                          status="ended")
        reqs.append(row)
        sessions.append(session_row(f"e{k}", row, f"p{k}", queued + sec(30),
                                    queued + sec(30 + 1200)))
    reqs.append(request_row("g1", "s9", "", "elem", 3, "en", t("2024-10-08 23:10:00"),
                            vendor="paper", status="abandoned",
                            closed_at=t("2024-10-08 23:12:00")))

    def unmet(rid: str, when: str, **values: Any) -> dict[str, Any]:
        return request_row(rid, f"s-{rid}", "", "elem", 3, "so", t(when), status="unmet",
                           unmet_reason="language_unsupported", **values)

    reqs += [unmet(f"u{k}", f"2024-10-07 23:1{k}:00") for k in range(3)]
    reqs += [unmet("u3", "2024-10-10 02:05:00"),
             unmet("ux", "2024-10-07 23:20:00", is_test=True)]
    return reqs, sessions


async def seeded(url: str, plan: dict[str, Any], with_demand: bool = True) -> None:
    engine = create_engine(url)
    try:
        if with_demand:
            reqs, sessions = _rows()
            fill_rows(reqs, sessions)
            async with engine.begin() as conn:
                await conn.execute(help_requests.insert(), reqs)
                await conn.execute(tutoring_sessions.insert(), sessions)
        parsed = shifts.parse_plan(plan, CATALOG.timezone)
        await shifts.replace_plans(engine, MANAGER, CATALOG, {("paper", "en"): parsed}, "test")
    finally:
        await engine.dispose()


async def _dashboard(live_broker: Broker, browser: Any, watch: Watch) -> tuple[Any, Any]:
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    await ctx.add_cookies([live_broker.staff_cookie()])
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    await expect(page.locator("#staffing")).to_be_visible()
    await expect(page.locator("#cap-queue option")).not_to_have_count(0)
    # The default is the current local week (whatever today is): a Monday.
    await expect(page.locator("#cap-week")).to_have_value(re.compile(r"\d{4}-\d\d-\d\d"))
    monday = await page.locator("#cap-week").input_value()
    assert await page.evaluate(f"new Date('{monday}T00:00:00Z').getUTCDay()") == 1
    return ctx, page


async def _pick(page: Any, day: str, monday_words: str) -> None:
    from playwright.async_api import expect

    await page.select_option("#cap-queue", "paper:en")
    await page.fill("#cap-week", day)
    await expect(page.locator("#cap-words")).to_contain_text(f"Week of {monday_words}")


async def _coverage(ctx: Any, url: str, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in
                     {"week": "2024-10-07", "vendor": "paper", "language": "en", **params}.items())
    response = await ctx.request.get(f"{url}/api/capacity/coverage?{query}")
    assert response.status == 200
    report: dict[str, Any] = await response.json()
    return report


def _slot(report: dict[str, Any], local: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["queues"][0]["slots"]
                                 if s["local"].startswith(local))
    return found


def _cell(page: Any, at: tuple[int, int]) -> Any:
    return page.locator(f'.cap-heat td[data-slot="{at[0]}"][data-day="{at[1]}"]')


async def test_staffing_week_heat_table_and_what_if(live_broker: Broker, browser: Any,
                                                   database_url: str) -> None:
    from playwright.async_api import expect

    await seeded(database_url, PLAN)
    watch = Watch()
    ctx, page = await _dashboard(live_broker, browser, watch)
    await _pick(page, "2024-10-09", "October 7, 2024")  # a Wednesday: its Monday's week
    await expect(page.locator("#cap-week")).to_have_value("2024-10-07")
    await expect(page.locator("#cap-words")).to_contain_text("The plan schedules 2 tutor-hours")

    api = await _coverage(ctx, live_broker.url)
    mon, mon17 = _slot(api, "2024-10-07T16:00"), _slot(api, "2024-10-07T17:00")
    tue = _slot(api, "2024-10-08T16:00")
    assert (mon["scheduled"], mon["arrivals"], tue["scheduled"], tue["gave_up"]) == (1, 4, 0, 1)
    assert mon["needed"] >= 2 and tue["needed"] >= 1  # both short: the exception applied
    assert api["unmet"]["total"] == 4

    rows = page.locator(".cap-heat tbody tr")
    await expect(rows).to_have_count(48)
    await expect(page.locator(".cap-heat thead th").nth(1)).to_have_text("Mon 7")
    monday = _cell(page, MON_1600)
    under = " ▾" if mon["under_delivered"] else ""
    await expect(monday).to_have_text(f"1/{mon['needed']} −{mon['needed'] - 1}{under}")
    await expect(monday).to_have_class(re.compile(r"\bcap-short\b"))
    label = await monday.get_attribute("aria-label")
    assert label is not None and await monday.get_attribute("title") == label
    for words in ("Monday, October 7, 16:00: 1 scheduled", f"{mon['needed']} needed",
                  f"{mon['needed'] - 1} short", "4 requests, 4 accepted, 0 gave up",
                  "100% accepted within", "3 requests nobody could serve"):
        assert words in label, (words, label)
    # Monday 17:00: one scheduled, nobody seen, no demand: spare and under-delivered.
    assert (mon17["scheduled"], mon17["under_delivered"]) == (1, True)
    await expect(_cell(page, MON_1700)).to_have_text(f"1/{mon17['needed']} +1 ▾")
    await expect(_cell(page, MON_1700)).to_have_class(re.compile(r"\bcap-under\b"))
    # Tuesday 16:00: the exception's nobody against the one who gave up.
    await expect(_cell(page, TUE_1600)).to_have_text(f"0/{tue['needed']} −{tue['needed']}")

    # Beside: unmet and the longest p90 wait per half-hour, per day and in total.
    row_1600 = rows.nth(32).locator("td.cap-beside")
    await expect(row_1600.nth(0)).to_have_text("3")
    await expect(row_1600.nth(1)).to_have_text(re.compile(r"^30\s*s"))
    await expect(rows.nth(38).locator("td.cap-beside").nth(0)).to_have_text("1")
    foot = page.locator(".cap-heat tfoot tr")
    await expect(foot.nth(0).locator("th")).to_have_text("Nobody could serve")
    per_day = ["3", "0", "1", "0", "0", "0", "0"]
    await expect(foot.nth(0).locator("td")).to_have_text([*per_day, "4", ""])
    await expect(foot.nth(1).locator("td").nth(1)).to_have_text("1")  # gave up on Tuesday
    wrap = page.locator(".cap-wrap")
    assert await wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # no sideways scroll

    # CSV: the coverage API for the same week and queue.
    href = await page.locator("#cap-csv a").get_attribute("href")
    assert href is not None
    for part in ("week=2024-10-07", "vendor=paper", "language=en", "format=csv"):
        assert part in href, href
    csv = await ctx.request.get(f"{live_broker.url}{href}")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "paper,en,2024-10-07T23:00:00+00:00,2024-10-07,16:00-0700,1," in await csv.text()

    # Keyboard: one Tab stop (the first gap), arrows move it, the detail line follows.
    await page.focus("#cap-queue")
    await page.keyboard.press("Tab")
    focused = page.locator(".cap-heat td:focus")
    await expect(focused).to_have_attribute("data-slot", "32")
    await expect(focused).to_have_attribute("data-day", "0")
    await expect(page.locator("#cap-detail")).to_have_text(label)
    await page.keyboard.press("ArrowRight")
    detail = page.locator("#cap-detail")
    await expect(detail).to_contain_text("Tuesday, October 8, 16:00: 0 scheduled")
    await page.keyboard.press("ArrowDown")
    await expect(detail).to_contain_text("Tuesday, October 8, 16:30")
    assert await page.locator('.cap-heat td[tabindex="0"]').count() == 1

    # What-if: 90% within 60 s and two more tutors on Mondays at 16:00.
    await page.fill("#wi-target", "90")
    await page.fill("#wi-delta", "2")
    await page.select_option("#wi-day", "0")
    await page.select_option("#wi-time", "32")
    await page.get_by_role("button", name="Estimate").click()
    result = page.locator("#what-if-result")
    await expect(result).to_contain_text("Cost this week3 tutor-hours")
    await expect(result).to_contain_text("Against the plan+1 tutor-hours")
    at90 = await _coverage(ctx, live_broker.url, target="0.9", t="60")
    mon90, tue90 = _slot(at90, "2024-10-07T16:00"), _slot(at90, "2024-10-08T16:00")
    words = page.locator("#cap-words")
    await expect(words).to_contain_text("What-if for the week of October 7, 2024")
    await expect(monday).to_contain_text(f"3/{mon90['needed']}")
    await expect(monday.locator(".cap-sl")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    assert "Expected service level" in (await monday.get_attribute("aria-label") or "")
    # The week's own schedule is the what-if's base: Tuesday's exception still holds.
    await expect(_cell(page, TUE_1600)).to_contain_text(f"0/{tue90['needed']} −{tue90['needed']}")
    await expect(page.locator("#wi-reset")).to_be_visible()
    await page.locator("#cap-heat").scroll_into_view_if_needed()
    await screenshot(page, "staffing-what-if-1280")

    await page.get_by_role("button", name="Back to the plan").click()
    await expect(monday).to_have_text(f"1/{mon['needed']} −{mon['needed'] - 1}{under}")
    await expect(page.locator("#wi-target")).to_have_value("80")
    await expect(result).to_be_empty()
    await expect(page.locator("#wi-reset")).to_be_hidden()
    await expect(words).to_contain_text("The plan schedules 2 tutor-hours")

    violations = await axe_violations(page)
    assert not violations, violations
    await page.locator("#staffing").scroll_into_view_if_needed()
    await screenshot(page, "staffing-1280")
    await ctx.close()
    assert_clean(watch)


async def test_staffing_daylight_saving_weeks(live_broker: Broker, browser: Any,
                                              database_url: str) -> None:
    from playwright.async_api import expect

    await seeded(database_url, DST_PLAN, with_demand=False)
    watch = Watch()
    ctx, page = await _dashboard(live_broker, browser, watch)
    await _pick(page, "2024-11-03", "October 28, 2024")  # fall back: 01:00 twice on Sunday
    sunday_0100 = _cell(page, (2, 6))
    await expect(sunday_0100).to_have_text("1/? ▾ · 1/? ▾")  # no chat ended: needed unknown
    label = await sunday_0100.get_attribute("aria-label") or ""
    assert "(UTC-07:00)" in label and "(UTC-08:00)" in label, label
    await _pick(page, "2024-03-10", "March 4, 2024")  # spring forward: no 02:00 on Sunday
    for slot in (4, 5):
        await expect(_cell(page, (slot, 6))).to_have_class("cap-none")
        assert "did not happen" in (await _cell(page, (slot, 6)).get_attribute("aria-label") or "")
    await expect(_cell(page, (3, 6))).to_contain_text("1/?")  # 01:30 happened once
    await ctx.close()
    assert_clean(watch)


async def test_vendor_manager_sees_no_unmet_demand(live_broker: Broker, browser: Any,
                                                   database_url: str) -> None:
    """Unmet requests belong to no vendor: a vendor manager's table has no unmet column or
    row (coverage answers ``unmet: null``), only their own queues, and the same marks."""
    from playwright.async_api import expect

    await seeded(database_url, PLAN)
    watch = Watch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    manager = tokens.Identity("staff", "vm-1", {"scope": "vendor", "scope_id": "paper"})
    await ctx.add_cookies([{**live_broker.staff_cookie(), "value": tokens.issue(SECRET, manager)}])
    page = await open_page(ctx, f"{live_broker.url}/staff", watch)
    await expect(page.locator("#staffing")).to_be_visible()
    await expect(page.locator("#cap-queue option")).not_to_have_count(0)
    options = await page.locator("#cap-queue option").evaluate_all("os => os.map(o => o.value)")
    assert options and all(o.startswith("paper:") for o in options), options
    await _pick(page, "2024-10-07", "October 7, 2024")
    api = await _coverage(ctx, live_broker.url)
    assert api["unmet"] is None
    mon = _slot(api, "2024-10-07T16:00")
    await expect(_cell(page, MON_1600)).to_contain_text(f"1/{mon['needed']} −{mon['needed'] - 1}")
    await expect(page.locator(".cap-heat thead th")).to_have_count(1 + 7 + 1)  # no unmet column
    await expect(page.locator(".cap-heat tfoot tr")).to_have_count(2)  # gave up, p90 wait
    assert "nobody could serve" not in (await _cell(page, MON_1600).get_attribute("title") or "")
    await ctx.close()
    # The Safety section is the district's: its API refuses a vendor manager by design.
    watch.failed = [f for f in watch.failed if not f.startswith("403 /api/safety/")]
    assert_clean(watch)
