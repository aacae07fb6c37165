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
    done,
    refused,
    week_times,
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
    # The default period's booked-tutoring figures are held back until the chosen period's
    # are shown: when they arrive last, the page must not show them.
    asked, release = asyncio.Event(), asyncio.Event()

    async def hold_the_default_period(route: Any) -> None:
        if "2026-11-02" not in route.request.url:
            asked.set()
            await release.wait()
        await route.continue_()

    await context.route("**/api/stats/scheduled?*", hold_the_default_period)
    watch = Watch()
    page = await open_page(context, server.url + "/staff", watch)
    await page.wait_for_selector("#dashboard:not([hidden])")
    await asyncio.wait_for(asked.wait(), 10)  # the page asked for its default period first
    await page.fill("#f-from", "2026-11-02")
    await page.fill("#f-last", "2026-11-15")  # the dashboard's last day is included
    await page.click("#filters button[type=submit]")
    dosage = page.locator('figure[data-stats="scheduled-dosage"]')
    await dosage.locator("canvas").wait_for()
    summary = await page.inner_text("#scheduled-summary")
    assert "Student-weeks booked\n4" in summary, summary  # two students, two weeks
    assert "Attendance rate\n66.7%" in summary, summary  # 2 of 3 marked
    assert "Student no-shows\n1" in summary, summary
    async with page.expect_response(
        lambda r: "/scheduled?" in r.url and "2026-11-02" not in r.url
    ) as stale:
        release.set()
    await (await stale.value).finished()
    await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => "
                        "requestAnimationFrame(done)))")
    assert await page.inner_text("#scheduled-summary") == summary  # the older answer: dropped
    assert "Target" in await dosage.locator(".chart-legend").inner_text()
    await dosage.locator("summary").click()
    rows = await dosage.locator("tbody tr").all_inner_texts()
    assert rows[0].split("\t") == ["2026-W45", "2", "1", "3", "30", "90", "0%"], rows
    programmes = page.locator(".scheduled-tables table").first
    assert "School-based" in await programmes.inner_text()
    below = page.locator(".scheduled-tables table").nth(1)
    assert "Math, grades 9-10, English, with Ana Tutor\t2026-W46: 2 of 3 sessions" in (
        await below.inner_text())
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


async def _week_page(browser: Any, server: Any, watch: Watch) -> tuple[Any, Any]:
    """The designee's scheduling page with the week of 2 November shown."""
    context = await context_of(browser, server, DESIGNEE)
    page = await open_page(context, server.url + "/staff/scheduling", watch)
    await page.wait_for_selector("#desk:not([hidden])")
    await page.click("text=Show students")
    await page.wait_for_selector('.week-day[data-date="2026-11-02"] li[data-status="scheduled"]')
    return context, page


def refused_prefix(watch: Watch, status_and_prefix: str, count: int) -> None:
    """Remove ``count`` provoked refusals whose path starts with the prefix."""
    hits = [f for f in watch.failed if f.startswith(status_and_prefix)]
    assert len(hits) == count, (status_and_prefix, watch.failed)
    watch.failed[:] = [f for f in watch.failed if f not in hits]


async def test_designee_moves_substitutes_marks_and_cancels_the_rest(
    browser: Any, world: Any
) -> None:
    server, ctx = world
    await _booked_group(ctx)  # Mon/Wed/Thu 15:30 from 2 November, Maya and Leo with Ana
    watch = Watch()
    context, page = await _week_page(browser, server, watch)

    # Move Wednesday's session: 13:29 is refused naming the rule, 16:00 is taken.
    await page.get_by_role("button", name="Change the session of 2026-11-04 at 15:30").click()
    assert await page.evaluate("document.activeElement.id") == "change-title"
    assert await page.input_value("#move-day") == "2026-11-04"
    await page.fill("#move-start", "13:29")
    await page.fill("#move-reason", "Field trip")
    await page.click("text=Move the session")
    await page.wait_for_selector("#move-error:not([hidden])")
    assert "before_bell_window" in await page.inner_text("#move-error")
    await page.fill("#move-start", "16:00")
    await page.click("text=Move the session")
    await done(page, "move")
    assert "Moved to 2026-11-04 at 16:00" in await page.inner_text("#move-done")
    await page.wait_for_function(
        "() => /16:00/.test(document.querySelector('.week-day[data-date=\"2026-11-04\"]')"
        ".innerText)")
    assert await week_times(page, "2026-11-04") == ["16:00"]
    assert await week_times(page, "2026-11-05") == ["15:30"]

    # The series' history names the move, who made it and why.
    await page.click("#history-show")
    await page.wait_for_selector("#history:not([hidden]) tr[data-action]")
    history = await page.locator("#history tr[data-action]").evaluate_all(
        "rows => rows.map(r => r.dataset.action)")
    assert history == ["book", "reschedule_one"]
    moved = await page.inner_text('#history tr[data-action="reschedule_one"]')
    assert "Moved one session" in moved and "des-hs" in moved and "Field trip" in moved
    assert "Was: Nov 4, 2026, 3:30 PM; Now: Nov 4, 2026, 4:00 PM" in moved, moved
    await axe_clean(page)
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#change-panel")

    # A substitute for Thursday; attendance marked by hand for Monday.
    await page.get_by_role("button", name="Change the session of 2026-11-05 at 15:30").click()
    await page.select_option("#sub-tutor", "t2")
    await page.fill("#sub-reason", "Ana is ill")
    await page.click("text=Record the substitute")
    await done(page, "sub")
    assert "Substitute recorded: Ben Signer" in await page.inner_text("#sub-done")
    await page.wait_for_selector('.week-day[data-date="2026-11-05"] .occ-sub')
    assert "Substitute: Ben Signer" in await page.inner_text(
        '.week-day[data-date="2026-11-05"]')
    await page.click("#change-close")
    await page.get_by_role("button", name="Change the session of 2026-11-02 at 15:30").click()
    await page.get_by_label("Maya R.", exact=True).select_option("present")
    await page.get_by_label("Leo R.", exact=True).select_option("late")
    await page.click("text=Save attendance")
    await done(page, "marks")
    assert "Maya R.: Present, Leo R.: Late" in await page.inner_text("#marks-done")
    await page.click("#change-close")

    # Cancelling the rest of the series from the next Monday asks first.
    await page.click("#week-next")
    await page.wait_for_selector('.week-day[data-date="2026-11-09"] li[data-status="scheduled"]')
    await page.get_by_role("button", name="Cancel the session of 2026-11-09 at 15:30").click()
    await page.fill("#cancel-reason", "Tutor contract ended")
    await page.get_by_label("This one and the rest of the series").check()
    await page.click("#cancel-form button[type=submit]")
    await page.wait_for_selector("#cancel-confirm:not([hidden])")
    assert await page.evaluate("document.activeElement.id") == "cancel-confirm-text"
    assert await page.locator('#week li[data-status="scheduled"]').count() == 3  # not yet
    await axe_clean(page)
    await page.click("text=Yes, cancel the rest of the series")
    await page.wait_for_selector("#cancel-form", state="hidden")
    assert await page.locator('#week li[data-status="scheduled"]').count() == 0
    await page.click("#week-prev")
    await page.wait_for_selector('.week-day[data-date="2026-11-02"] li[data-status="scheduled"]')
    assert await week_times(page, "2026-11-05") == ["15:30"]  # before the cancelled rest
    await screenshot(page, "scheduling-changes")
    refused_prefix(watch, "409 /api/scheduler/occurrences/", 1)
    assert_clean(watch)
    await context.close()


BAD_CSV = b"date,kind,label\n2026-11-05,holiday,Staff day\n2026-02-30,holiday,Leap day?\n"
GOOD_ICS = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            b"UID:pd-1@hs\r\nDTSTART;VALUE=DATE:20261105\r\nSUMMARY:Staff development\r\n"
            b"END:VEVENT\r\nEND:VCALENDAR\r\n")


async def test_designee_imports_a_calendar(browser: Any, world: Any) -> None:
    server, ctx = world
    await _booked_group(ctx)
    watch = Watch()
    context, page = await _week_page(browser, server, watch)
    await page.set_input_files("#import-file", files=[
        {"name": "calendar.csv", "mimeType": "text/csv", "buffer": BAD_CSV}])
    await page.click("text=Import the calendar")
    await page.wait_for_selector("#import-error:not([hidden])")
    error = await page.inner_text("#import-error")
    assert "Line 3 (bad_date)" in error and "“2026-02-30,holiday,Leap day?”" in error, error
    assert "calendar_rejected" in error
    assert await week_times(page, "2026-11-05") == ["15:30"]  # nothing was imported
    await axe_clean(page)

    await page.set_input_files("#import-file", files=[
        {"name": "district.ics", "mimeType": "text/calendar", "buffer": GOOD_ICS}])
    await page.click("text=Import the calendar")
    await done(page, "import")
    assert "Imported: 1 days. Sessions cancelled: 1." in await page.inner_text("#import-done")
    await page.wait_for_function(
        "() => !document.querySelector('.week-day[data-date=\"2026-11-05\"] li')")
    await page.get_by_label("Show cancelled sessions").check()
    assert "Cancelled: no_school" in await page.inner_text('.week-day[data-date="2026-11-05"]')
    refused(watch, "400 /api/scheduler/schools/hs/calendar/import")
    assert_clean(watch)
    await context.close()
