"""The staff side of booked tutoring in Chromium: the dashboard's "Booked tutoring"
figures (chart, tables, CSV; axe-clean), and the scheduling page's changes: reschedule one
session, cancel the rest of a series after a confirmation, substitute a tutor, mark
attendance by hand, import a school calendar (a bad line refused, then a good file that
cancels a session) and read a series' history.

Same world and fixed clock as :mod:`tests.browser.test_scheduling_pages`: Monday 2
November 2026, 14:00 in Los Angeles.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from broker.scheduler import attendance, booking, views
from broker.scheduler.service import Scheduler
from tests.browser import test_scheduling_pages
from tests.browser.conftest import Watch, assert_clean, open_page, screenshot
from tests.browser.test_scheduling_pages import (
    DESIGNEE,
    DISTRICT,
    _booked_group,
    axe_clean,
    context_of,
)

world = test_scheduling_pages.world  # the live broker and scheduler at the fixed clock


async def week_of(ctx: Scheduler, day: date) -> list[str]:
    """The ids of the hs school's occurrences in ``day``'s week, in time order."""
    found = await views.school_week(ctx, DISTRICT, "hs", day, "test")
    return [o["id"] for o in found["occurrences"]]


async def test_dashboard_shows_booked_tutoring_and_its_csv(browser: Any, world: Any) -> None:
    server, ctx = world
    group = await _booked_group(ctx)  # Mon/Wed/Thu 15:30 from 2 November, st1 and st2
    assert group
    monday, wednesday, _ = await week_of(ctx, date(2026, 11, 2))
    await attendance.mark(ctx, DESIGNEE, monday, {"marks": {"st1": "present", "st2": "absent"}})
    await attendance.mark(ctx, DESIGNEE, wednesday, {"marks": {"st1": "late"}})
    next_wednesday = (await week_of(ctx, date(2026, 11, 9)))[1]
    await booking.cancel(ctx, DESIGNEE, next_wednesday, {"scope": "one", "reason": "Trip"})
    context = await context_of(browser, server, DISTRICT, viewport={"width": 1280, "height": 1000})
    watch = Watch()
    page = await open_page(context, server.url + "/staff", watch)
    await page.wait_for_selector("#dashboard:not([hidden])")
    await page.fill("#f-from", "2026-11-02")
    await page.fill("#f-to", "2026-11-16")
    await page.click("#filters button[type=submit]")
    dosage = page.locator('figure[data-stats="scheduled-dosage"]')
    await dosage.locator("canvas").wait_for()
    summary = await page.inner_text("#scheduled-summary")
    assert "Student-weeks booked\n4" in summary, summary  # two students, two weeks
    assert "Attendance rate\n66.7%" in summary, summary  # 2 of 3 marked
    assert "Student no-shows\n1" in summary, summary
    assert "Target" in await dosage.locator(".chart-legend").inner_text()
    await dosage.locator("summary").click()
    rows = await dosage.locator("tbody tr").all_inner_texts()
    assert rows[0].split("\t") == ["2026-W45", "2", "1", "3", "30", "90", "0%"], rows
    programmes = page.locator(".scheduled-tables table").first
    assert "School-based" in await programmes.inner_text()
    below = page.locator(".scheduled-tables table").nth(1)
    assert "2026-W46: 2 of 3 sessions" in await below.inner_text()
    await page.locator('figure[data-stats="scheduled-attendance"] summary').click()
    await axe_clean(page)
    await screenshot(page, "dashboard-booked-tutoring")

    link = dosage.get_by_role("link", name="Download CSV")
    assert "/api/stats/scheduled?" in (await link.get_attribute("href") or "")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("school,school_name,offer,programme,vendor,week,")
    assert [line.split(",")[5] for line in lines[1:]] == ["2026-W45", "2026-W46"]
    assert_clean(watch)
    await context.close()
