"""Whole journeys in Chromium: a Spanish-speaking student, a tutor, the staff dashboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.broker.conftest import fetch_all
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)

pytestmark = pytest.mark.browser

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


async def expect_text(locator: Any, pattern: str, timeout: float = 10_000) -> None:
    from playwright.async_api import expect

    await expect(locator).to_contain_text(re.compile(pattern), timeout=timeout)


async def download_text(download: Any) -> str:
    import asyncio

    path = await download.path()
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


async def no_serious_axe(page: Any, where: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"axe on {where}: {violations}"


@pytest.mark.slow
async def test_student_tutor_staff_journey(
    live_broker: Broker, browser: Any, sqlite_url: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    token = live_broker.student_token("stu-ana", "hs", 10, given_name="Ana", locale="es")

    # -- the student asks for help in Spanish ------------------------------------------------
    student_ctx = await browser.new_context(viewport={"width": 420, "height": 860}, locale="es-MX")
    student = await open_page(student_ctx, f"{live_broker.url}/widget#token={token}", watch)
    await expect(student.locator("#view-start")).to_be_visible()
    await expect(student.locator("#greeting")).to_have_text("¡Hola, Ana!")
    assert "#token" not in student.url, "the token stays in the address bar"
    languages = await student.locator("#language option").evaluate_all("os => os.map(o => o.value)")
    # every language the district offers; Tutor.com serves a high-school student in en, es
    assert languages == ["en", "es", "zh", "fr", "ko", "hy", "vi", "tl", "ru", "ar", "fa"]
    assert await student.locator("#language").input_value() == "es"  # the page's language
    await expect(student.locator("#language-note")).to_be_hidden()
    await student.select_option("#language", "fr")  # no tutor for it at her school: said so
    await expect(student.locator("#language-note")).to_contain_text("francés")
    await student.select_option("#language", "es")
    await expect(student.locator("#language-note")).to_be_hidden()
    await student.select_option("#subject", "algebra")
    await student.fill("#topic", "ecuaciones lineales")
    await no_serious_axe(student, "widget (start)")
    await screenshot(student, "widget-start-es")
    await student.click("#ask")
    await expect(student.locator("#view-waiting")).to_be_visible()
    await expect_text(student.locator("#queue-position"), "Eres el siguiente en la fila")
    await expect(student.locator("#queue-eta")).not_to_be_empty()
    await no_serious_axe(student, "widget (waiting)")
    await screenshot(student, "widget-waiting-es")

    # -- a Tutor.com tutor signs in (demo), sees the request and accepts it ---------------
    tutor_ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    tutor = await open_page(tutor_ctx, f"{live_broker.url}/tutor", watch)
    await expect(tutor.locator("#signin")).to_be_visible()
    await no_serious_axe(tutor, "tutor console (sign-in)")
    await tutor.select_option("#demo-vendor", "tutorcom")
    await tutor.fill("#demo-name", "Sr. Gómez")
    await tutor.click("#demo-form button[type=submit]")
    await expect(tutor.locator("#console")).to_be_visible()
    await tutor.click("#status-toggle")
    await expect(tutor.locator("#status-label")).to_have_text("Available")
    item = tutor.locator(".queue-item").first
    await expect(item).to_contain_text("Algebra")
    await expect(item).to_contain_text("ecuaciones lineales")
    await expect(item.locator(".waited")).not_to_be_empty()
    await expect(tutor).to_have_title(re.compile(r"^\(\d+\) "))
    await no_serious_axe(tutor, "tutor console (queue)")
    await screenshot(tutor, "tutor-queue")
    await item.get_by_role("button", name="Accept").click()
    await expect(tutor.get_by_role("tab")).to_have_count(1)

    # -- both see the chat; hostile text stays text ---------------------------------------
    await expect(student.locator("#view-chat")).to_be_visible()
    await expect_text(student.locator("#chat-title"), "Sr. Gómez, de Tutor.com")
    await student.fill("#message", SCRIPT)
    await student.keyboard.press("Enter")
    panel = tutor.get_by_role("tabpanel")
    await expect(panel.locator(".msg .text", has_text=SCRIPT)).to_be_visible()
    box = panel.locator("textarea[id^=msg-]")
    await box.fill(IMG)
    await box.press("Enter")
    await expect(student.locator(".msg.from-other .text", has_text=IMG)).to_be_visible()
    await expect(student.locator(".msg.from-me .text")).to_have_text(SCRIPT)
    assert await student.locator("#messages img, #messages script").count() == 0
    assert await tutor.locator("[role=tabpanel] img, [role=tabpanel] .messages script").count() == 0
    # reading aloud is one toggle in the header, not a button (a tab stop) per message
    await expect(student.locator("#messages .read-aloud")).to_have_count(0)
    await box.press_sequentially("un momento")
    await expect_text(student.locator("#typing"), "Sr. Gómez está escribiendo")
    await no_serious_axe(student, "widget (chat)")
    await no_serious_axe(tutor, "tutor console (chat)")
    await screenshot(student, "widget-chat-es")
    await screenshot(tutor, "tutor-chat")

    # -- the tutor ends it with an outcome; the student rates it ---------------------------
    await panel.locator("select[id^=subj-]").select_option("algebra")
    await panel.locator("select[id^=outcome-]").select_option("concept_explained")
    await panel.get_by_role("radio", name="Yes").check()
    await panel.get_by_role("button", name="End chat").click()
    await panel.get_by_role("button", name="Yes, end the chat").click()  # asked in the page
    await expect(tutor.get_by_role("tab")).to_have_count(0)
    await expect(student.locator("#view-rate")).to_be_visible()
    await expect_text(student.locator("#ended-reason"), "Tu tutor terminó el chat")
    await student.get_by_label("Sí").check()
    await student.get_by_label("4 estrellas").check()
    await no_serious_axe(student, "widget (rating)")
    await student.click("#rate-form button[type=submit]")
    await expect(student.locator("#rate-thanks")).to_be_visible()
    await screenshot(student, "widget-rated-es")
    rows = await fetch_all(
        sqlite_url,
        "SELECT vendor, language, subject, tutored_subject, outcome, resolved, rating_helped,"
        " rating_stars, end_reason FROM tutoring_sessions",
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["vendor"], row["language"], row["subject"]) == ("tutorcom", "es", "algebra")
    assert (row["tutored_subject"], row["outcome"], row["end_reason"]) == (
        "algebra",
        "concept_explained",
        "tutor",
    )
    assert bool(row["resolved"]) and bool(row["rating_helped"]) and row["rating_stars"] == 4

    # -- the staff dashboard shows the live figures and the session ------------------------
    staff_ctx = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    await staff_ctx.add_cookies([live_broker.staff_cookie()])
    staff = await open_page(staff_ctx, f"{live_broker.url}/staff", watch)
    await expect(staff.locator("#dashboard")).to_be_visible()
    await expect(staff.locator("#live-available")).to_have_text("1")
    await expect(staff.locator("#live-busy")).to_have_text("0")
    await expect(staff.locator("#live-queued")).to_have_text("0")
    await expect(staff.locator("#live-at")).not_to_be_empty()
    await expect(staff.locator("#charts figure")).to_have_count(6)
    sessions = staff.locator("#summary .kpi", has_text="Sessions")
    await expect(sessions.locator(".value")).to_have_text("1")
    waits = staff.locator("figure[data-stats=waits]")
    await expect(waits.locator("canvas")).to_have_count(1)
    await waits.locator("summary").click()
    await expect(waits.locator("table").first).to_contain_text("Accepted requests")
    csv = waits.get_by_role("link", name="Download CSV")
    assert "format=csv" in (await csv.get_attribute("href") or "")
    async with staff.expect_download() as download_info:
        await csv.click()
    download = await download_info.value
    text = await download_text(download)
    assert text.startswith("section,metric,value")
    await no_serious_axe(staff, "staff dashboard")
    await screenshot(staff, "staff-dashboard")

    # a new request makes the tutor's console badge the title
    await student.click("#again")
    await student.select_option("#subject", "geometry")
    await student.click("#ask")
    await expect(tutor.locator(".queue-item")).to_have_count(1)
    await expect(staff.locator("#live-queued")).to_have_text("1")

    for ctx in (student_ctx, tutor_ctx, staff_ctx):
        await ctx.close()
    assert_clean(watch)
