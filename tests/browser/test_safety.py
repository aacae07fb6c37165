"""Chat safety in the pages (issue 12), in Chromium: masked and held messages, the crisis
panel, reports, ending a silent student's chat, and the staff dashboard's safety section
(alerts acknowledged, the review queue, a tutor suspended).

The broker reads time only from a :class:`FakeClock` (fixed unless a test moves it), so
its sweeps never end a chat for silence behind a test's back and the "student not
answering" wait passes exactly when the test advances the clock.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker import tokens
from broker.accounts import Accounts
from broker.catalog_source import load_catalog
from broker.settings import Settings
from tests.broker.conftest import fetch_all
from tests.broker.harness import SECRET
from tests.broker.unit import FakeClock
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    open_page,
    screenshot,
)
from tests.browser.test_journeys import no_serious_axe
from tests.media import files

pytestmark = pytest.mark.browser

PHONE = "my number is 555-123-4567 call me"
CONTACT = "what's your snapchat? let's meet up"
DISTRESS = "I want to kill myself"
PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture
async def server(broker_settings: Settings) -> AsyncIterator[Broker]:
    live = Broker(broker_settings, clock=FakeClock(time.time()))
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def contexts(browser: Any) -> AsyncIterator[list[Any]]:
    """Browser contexts closed before the broker stops (an open socket would hold it)."""
    opened: list[Any] = []
    yield opened
    for ctx in opened:
        await ctx.close()


async def widget(server: Broker, browser: Any, contexts: list[Any], watch: Watch) -> Any:
    token = server.student_token("stu-ana", "hs", 10, given_name="Ana", locale="en")
    ctx = await browser.new_context(viewport={"width": 420, "height": 900}, locale="en-US")
    contexts.append(ctx)
    page = await open_page(ctx, f"{server.url}/widget#token={token}", watch)
    await page.select_option("#subject", "algebra")
    await page.select_option("#language", "en")
    return page


async def console(server: Broker, browser: Any, contexts: list[Any], watch: Watch,
                  cookie: dict[str, Any] | None = None) -> Any:
    """The tutor console, signed in by ``cookie`` or else as a demo Tutor.com tutor."""
    from playwright.async_api import expect

    ctx = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    contexts.append(ctx)
    if cookie:
        await ctx.add_cookies([cookie])
    page = await open_page(ctx, f"{server.url}/tutor", watch)
    if not cookie:
        await page.select_option("#demo-vendor", "tutorcom")
        await page.fill("#demo-name", "Ms. Lee")
        await page.click("#demo-form button[type=submit]")
    await expect(page.locator("#console")).to_be_visible()
    await page.click("#status-toggle")
    await expect(page.locator("#status-label")).to_have_text("Available")
    return page


async def staff_page(server: Broker, browser: Any, contexts: list[Any], watch: Watch) -> Any:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    contexts.append(ctx)
    await ctx.add_cookies([server.staff_cookie()])
    return await open_page(ctx, f"{server.url}/staff", watch)


async def start_chat(student: Any, tutor: Any, asked: bool = False) -> Any:
    from playwright.async_api import expect

    if not asked:
        await student.click("#ask")
    await expect(student.locator("#view-waiting")).to_be_visible()
    await tutor.locator(".queue-item").first.get_by_role("button", name="Accept").click()
    await expect(student.locator("#view-chat")).to_be_visible()
    return tutor.get_by_role("tabpanel")


@pytest.mark.slow
async def test_masked_held_distress_report_and_a_silent_student(
    server: Broker, browser: Any, contexts: list[Any], sqlite_url: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    student = await widget(server, browser, contexts, watch)
    # -- nobody on shift yet, and no accepts to tell when tutors come: said plainly ------------
    await student.click("#ask")
    eta = student.locator("#queue-eta")
    await expect(eta).to_have_text(
        "No tutors are online right now. We don't know yet when tutors will be back.")
    await no_serious_axe(student, "widget (nobody on shift)")
    # ... and the student may leave their question for the next tutor, keeping their place
    await student.fill("#leave-question", "How do I add 3/4 and 1/6?")
    await student.click("#leave-form button[type=submit]")
    done = student.locator("#leave-done")
    await expect(done).to_be_focused()
    await expect(done).to_contain_text("Your question is saved for the next tutor.")
    await expect(student.locator("#leave-form")).to_be_hidden()
    await no_serious_axe(student, "widget (question left)")
    tutor = await console(server, browser, contexts, watch)
    panel = await start_chat(student, tutor, asked=True)

    # -- a phone number is masked, and both sides are told what was removed and why ---------
    await student.fill("#message", PHONE)
    await student.keyboard.press("Enter")
    mine = student.locator("#messages .msg.from-me")
    await expect(mine.locator(".text")).to_have_text("my number is [removed: phone] call me")
    await expect(mine.locator(".mask-note")).to_contain_text("a phone number")
    theirs = panel.locator(".msg.from-other")
    await expect(theirs.locator(".text")).to_have_text("my number is [removed: phone] call me")
    await expect(theirs.locator(".mask-note")).to_contain_text(
        "Removed to keep this chat safe: a phone number.")
    assert "555" not in (await tutor.locator("[role=tabpanel]").inner_text())
    await no_serious_axe(student, "widget (masked message)")

    # -- the tutor's contact attempt is held: "not sent" for the tutor, nothing for the student
    box = panel.locator("textarea[id^=msg-]")
    await box.fill(CONTACT)
    await box.press("Enter")
    held = panel.locator(".notice.held")
    await expect(held).to_contain_text("Your message was not sent. A staff member will review it.")
    await expect(held).to_contain_text("a plan to meet in person")
    await expect(box).to_have_value("")
    await expect(panel.locator(".msg.from-me")).to_have_count(0)
    await box.fill("Hello! What are you working on?")
    await box.press("Enter")  # the next message is sent, and the held notice goes away
    await expect(student.locator("#messages .msg.from-other .text")).to_have_text(
        "Hello! What are you working on?")
    await expect(held).to_be_hidden()
    assert "snapchat" not in (await student.locator("#messages").inner_text()).lower()
    await no_serious_axe(tutor, "tutor console (held message)")
    await screenshot(tutor, "safety-tutor-held")

    # -- distress: the crisis panel, the message still reaches the tutor ------------------
    await student.fill("#message", DISTRESS)
    await student.keyboard.press("Enter")
    crisis = student.locator("#crisis")
    await expect(crisis).to_be_visible()
    await expect(crisis).to_have_attribute("role", "alert")
    await expect(crisis.locator("h2")).to_have_text("You are not alone. Please reach out now:")
    await expect(crisis.locator("li")).to_have_count(4)
    await expect(crisis.get_by_role("link", name="988")).to_have_attribute("href", "tel:988")
    await expect(crisis.get_by_role("link", name="1-800-422-4453")).to_have_attribute(
        "href", "tel:18004224453")
    await expect(panel.locator(".msg.from-other .text", has_text=DISTRESS)).to_be_visible()
    await no_serious_axe(student, "widget (crisis resources)")
    await screenshot(student, "safety-widget-crisis")

    # -- a picture: its transcript line says so, and the staff review shows it -------------
    await student.set_input_files("#photo-pick", {
        "name": "work.png", "mimeType": "image/png", "buffer": files.png(80, 60)})
    await expect(panel.locator(".chat-image img[alt='Picture from the student']")).to_be_visible(
        timeout=15000)

    # -- the student reports the chat in one tap --------------------------------------------
    await student.get_by_role("button", name="Report a problem").click()
    await expect(student.locator("#report-thanks")).to_have_text(
        "Thank you. A staff member will look at this chat.")
    await expect(student.locator("#report")).to_be_disabled()
    await expect(crisis).to_be_visible()  # stays until the student closes it
    await crisis.get_by_role("button", name="Close this message").click()
    await expect(crisis).to_be_hidden()
    await expect(student.locator("#message")).to_be_focused()

    # -- the staff dashboard: the distress alert first, acknowledged; the review queue ------
    staff = await staff_page(server, browser, contexts, watch)
    section = staff.locator("#safety")
    await expect(section).to_be_visible()
    urgent = section.locator(".alert-item.urgent")
    await expect(urgent).to_have_count(1)
    await expect(urgent).to_contain_text("A student may be in distress")
    rows = section.locator("#safety-flags tr")
    await expect(rows).to_have_count(4)  # masked, held, distress, report (newest first)
    await expect(rows.nth(0)).to_contain_text("Report")
    await expect(rows.nth(0)).to_contain_text("The student")
    await expect(section.locator("tr[data-kind=held]")).to_contain_text("The tutor")
    await expect(section.locator("tr[data-kind=masked]")).to_contain_text("a phone number")
    await no_serious_axe(staff, "staff dashboard (safety)")
    await screenshot(staff, "safety-staff")
    # the held words are read one flag at a time, in a panel that gives focus back
    view = section.locator("tr[data-kind=held]").get_by_role("button", name="View")
    await view.click()
    await expect(staff.locator("#flag-view")).to_be_visible()
    await expect(staff.locator(".held-words")).to_have_text(CONTACT)
    await expect(staff.locator("#flag-view-title")).to_be_focused()
    kept = staff.locator("#flag-view .kept-messages .chat-image img")  # fetched, audited
    await expect(kept).to_have_attribute("alt", "Picture from the student")
    await expect(kept).to_have_js_property("naturalWidth", 80)
    assert [a["action"] for a in await fetch_all(
        sqlite_url, "SELECT action FROM audit_log WHERE action = 'safety.read_image'")] == [
        "safety.read_image"]
    await staff.keyboard.press("Escape")
    await expect(staff.locator("#flag-view")).to_be_hidden()
    await expect(view).to_be_focused()
    await urgent.get_by_role("button", name="Acknowledge").click()
    await expect(section.locator(".alert-item.urgent")).to_have_count(0)
    await expect(section.locator("#safety-status")).to_have_text("Alert acknowledged.")
    acknowledged = await fetch_all(
        sqlite_url, "SELECT kind, acknowledged_by FROM staff_alerts")
    assert [(a["kind"], a["acknowledged_by"]) for a in acknowledged] == [("distress", "staff-1")]
    await section.locator("tr[data-kind=masked]").get_by_role("button", name="Dismiss").click()
    await expect(section.locator("tr[data-kind=masked]")).to_have_count(0)
    await expect(section.locator("#safety-flags tr")).to_have_count(3)

    # -- "End: student not answering": refused while the student may still answer -----------
    silent = panel.get_by_role("button", name="End: student not answering")
    await silent.click()
    note = panel.locator(".chat-actions .notice")
    await expect(note).to_contain_text(re.compile(r"in \d+ seconds"))
    assert server.clock is not None
    server.clock.advance(server.settings.student_silent_s + 1)
    await silent.click()
    await expect(panel.locator(".msg.from-system").last).to_have_text(
        "You ended the chat because the student did not answer.")
    await expect(student.locator("#view-rate")).to_be_visible()
    await expect(student.locator("#ended-reason")).to_have_text(
        "Your tutor ended the chat because you didn't answer for a while.")
    # right after the end the student can still report it, from the rating view
    await student.get_by_role("button", name="Report a problem with this chat").click()
    await expect(student.locator("#rate-report-thanks")).to_have_text(
        "Thank you. A staff member will look at this chat.")
    await no_serious_axe(student, "widget (rating, reported)")
    # the printed transcript says what the picture was and shows it (print() stubbed)
    await student.evaluate("window.print = () => { document.body.dataset.printed = '1'; }")
    await student.click("#transcript-print")
    await expect(student.locator("body[data-printed='1']")).to_have_count(1)
    await expect(student.locator("#transcript")).to_contain_text("You: [Your picture]")
    await expect(student.locator("#transcript .chat-image img")).to_have_attribute(
        "alt", "Your picture")
    reports = await fetch_all(
        sqlite_url, "SELECT kind, \"by\" FROM safety_flags WHERE kind = 'report'")
    assert [(r["kind"], r["by"]) for r in reports] == [("report", "student")] * 2
    assert_clean(watch)


async def test_staff_suspend_a_reported_tutor(
    server: Broker, browser: Any, contexts: list[Any]
) -> None:
    from playwright.async_api import expect

    accounts = Accounts(server.broker.store.engine, load_catalog())
    account = await accounts.add(
        "lee.tutor", PASSWORD, role="tutor", display_name="Ms. Lee", vendor="tutorcom",
        languages=["en", "es"],
    )
    cookie = {
        "name": "hh_session", "value": tokens.issue(SECRET, account.identity()),
        "url": server.url, "httpOnly": True, "sameSite": "Lax",
    }
    watch = Watch()
    student = await widget(server, browser, contexts, watch)
    tutor = await console(server, browser, contexts, watch, cookie)
    panel = await start_chat(student, tutor)
    await panel.get_by_role("button", name="Report this chat").click()
    await expect(panel.locator(".chat-actions .notice")).to_have_text(
        "Thank you. A staff member will look at this chat.")

    staff = await staff_page(server, browser, contexts, watch)
    row = staff.locator("#safety-flags tr[data-kind=report]")
    await expect(row).to_contain_text("The tutor")
    await row.get_by_role("button", name="Suspend tutor").click()
    confirm = staff.locator("#suspend-confirm")
    await expect(confirm).to_be_visible()
    await expect(staff.locator("#suspend-yes")).to_be_focused()
    await no_serious_axe(staff, "staff dashboard (confirm suspension)")
    await staff.keyboard.press("Escape")  # keeps the account: nothing sent
    await expect(confirm).to_be_hidden()
    await expect(row.get_by_role("button", name="Suspend tutor")).to_be_focused()
    assert await accounts.is_active(account.id)
    await row.get_by_role("button", name="Suspend tutor").click()
    await staff.get_by_role("button", name="Yes, suspend the tutor").click()
    await expect(staff.locator("#safety-status")).to_have_text(
        "The tutor was suspended. Chats ended: 1.")
    await expect(staff.locator("#safety-flags tr")).to_contain_text(["Nothing is waiting"])

    # the student is back at the head of the line and told why; the tutor is signed out
    await expect(student.locator("#view-waiting")).to_be_visible()
    await expect(student.locator("#messages")).to_contain_text(
        "Your tutor can't continue this chat, so you're back at the front of the line.")
    await expect(student.locator("#queue-position")).to_have_text("You are next in line.")
    await expect(tutor.locator("#suspended")).to_have_text(
        "Your account has been suspended by the district.")
    await expect(tutor.locator("#console")).to_be_hidden()
    assert not await accounts.is_active(account.id)
    await no_serious_axe(student, "widget (requeued)")
    await no_serious_axe(tutor, "tutor console (suspended)")
    assert_clean(watch)
