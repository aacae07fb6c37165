"""The chat on a phone and honest outcomes (issue 14), in Chromium.

* At 360 x 640 CSS px the composer's Send stays in view however long the conversation,
  every control of the chat is at least 24 x 24 px with 8 px between controls (WCAG 2.2
  target size), and no message carries a "Read aloud" button.
* "End chat" asks first, in the page; the student's rating is one radio group of five
  stars on one line, used with the keyboard.
* The tutor's end form starts empty and requires a choice, then asks before ending.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.conftest import fetch_all
from tests.broker.harness import Server, tutor
from tests.browser.chat_steps import student_asks, tutor_accepts
from tests.browser.conftest import Broker, Watch, assert_clean, axe_violations, screenshot

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 640}
# Every visible control of the chat view (and the header): its box, and the smallest gap to
# any other control's box (negative: they overlap).
TARGETS = """() => {
  const boxes = Array.from(document.querySelectorAll(
    "header button, header input, header select, #view-chat button, #view-chat textarea"))
    .filter((n) => n.offsetParent !== null)
    // a checkbox's target is its whole label (a click on the label checks it)
    .map((n) => ({
      id: n.id || n.textContent.trim(), r: (n.closest("label") || n).getBoundingClientRect(),
    }));
  const gap = (a, b) =>
    Math.max(b.left - a.right, a.left - b.right, b.top - a.bottom, a.top - b.bottom);
  return boxes.map((a) => ({
    id: a.id, w: a.r.width, h: a.r.height,
    gap: Math.min(Infinity, ...boxes.filter((b) => b !== a).map((b) => gap(a.r, b.r))),
  }));
}"""


async def _tutor_client(server: Broker) -> Any:
    harness = Server(server.settings)
    harness.test_server = server.test_server
    return await harness.connect("/tutor", tutor("t-phone", "paper", ["en"], "Ms Phone"))


async def test_chat_on_a_phone(live_broker: Broker, browser: Any, sqlite_url: str) -> None:
    from playwright.async_api import expect

    watch = Watch()
    ctx, page = await student_asks(browser, live_broker, watch, "stu-phone", PHONE)
    desk = await _tutor_client(live_broker)
    try:
        await desk.call("tutor:status", {"status": "available"})
        snap = await desk.until("queue:snapshot", lambda s: s["queue"] == "paper:en" and s["total"])
        session = (await desk.call("help:accept", {"request_id": snap["requests"][0]["id"]}))
        sid = session["session"]["session_id"]
        await expect(page.locator("#view-chat")).to_be_visible()
        for n in range(9):  # a long conversation (within the rate limit): Send stays in view
            await desk.call("chat:send", {"session_id": sid, "text": f"step {n}: " + "x " * 40})
        await expect(page.locator("#messages .msg.from-other")).to_have_count(9)
        await page.locator("#message").focus()
        send = page.locator("#send-form button[type=submit]")
        box = await send.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]
        # the newest message is above the composer, not under it
        latest = await page.locator("#messages .msg").last.bounding_box()
        composer = await page.locator("#send-form").bounding_box()
        assert latest is not None and composer is not None
        assert latest["y"] + latest["height"] <= composer["y"] + 1
        await expect(page.locator(".read-aloud")).to_have_count(0)
        for target in await page.evaluate(TARGETS):
            assert target["w"] >= 24 and target["h"] >= 24, f"too small: {target}"
            assert target["gap"] >= 8 or target["gap"] < -1, f"closer than 8 px: {target}"
        assert await axe_violations(page) == []
        await screenshot(page, "widget-chat-phone")

        # End chat asks first; "Keep chatting" (or Escape) goes back to the message box
        await page.click("#end")
        await expect(page.locator("#end-confirm")).to_be_visible()
        await expect(page.locator("#end-yes")).to_be_focused()
        await page.click("#end-no")
        await expect(page.locator("#end-confirm")).to_be_hidden()
        await expect(page.locator("#message")).to_be_focused()
        await page.click("#end")
        await page.click("#end-yes")
        await expect(page.locator("#view-rate")).to_be_visible()
    finally:
        await desk.close()

    # the stars: five radios on one line, chosen with the arrow keys
    stars = page.locator("#stars label.star")
    tops = {round((await stars.nth(i).bounding_box() or {"y": -1})["y"]) for i in range(5)}
    assert len(tops) == 1, f"the stars wrap: {tops}"
    await page.get_by_role("radio", name="1 star", exact=True).focus()
    for _ in range(3):
        await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("radio", name="4 stars", exact=True)).to_be_checked()
    await expect(page.locator("#stars label.star.on")).to_have_count(4)
    assert await axe_violations(page) == []
    await screenshot(page, "widget-rate-phone")
    await page.locator("#rate-form button[type=submit]").click()
    await expect(page.locator("#rate-thanks")).to_be_visible()
    [row] = await fetch_all(sqlite_url, "SELECT end_reason, rating_stars FROM tutoring_sessions")
    assert (row["end_reason"], row["rating_stars"]) == ("student", 4)
    await ctx.close()
    assert_clean(watch)


async def test_tutor_end_form_starts_empty(
    live_broker: Broker, browser: Any, sqlite_url: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    student_ctx, student = await student_asks(browser, live_broker, watch, "stu-form")
    tutor_ctx, page = await tutor_accepts(browser, live_broker, watch, "Ms Form")
    panel = page.get_by_role("tabpanel")
    assert await panel.locator("select[id^=outcome-]").input_value() == ""
    assert await panel.locator("input[type=radio]:checked").count() == 0
    end = panel.get_by_role("button", name="End chat")
    await end.click()
    await expect(panel.get_by_role("alert")).to_have_text("Choose an outcome.")
    await expect(panel.locator("select[id^=outcome-]")).to_be_focused()
    await panel.locator("select[id^=outcome-]").select_option("test_prep")
    await panel.get_by_role("radio", name="Yes").check()
    await end.click()
    # asked in the page before the student's chat ends
    await expect(panel.get_by_role("button", name="Yes, end the chat")).to_be_focused()
    assert await axe_violations(page) == []
    await page.keyboard.press("Escape")
    await expect(end).to_be_focused()
    await expect(student.locator("#view-chat")).to_be_visible()
    await end.click()
    await panel.get_by_role("button", name="Yes, end the chat").click()
    await expect(page.get_by_role("tab")).to_have_count(0)
    await expect(student.locator("#view-rate")).to_be_visible()
    [row] = await fetch_all(sqlite_url, "SELECT outcome, resolved FROM tutoring_sessions")
    assert (row["outcome"], bool(row["resolved"])) == ("test_prep", True)
    for ctx in (student_ctx, tutor_ctx):
        await ctx.close()
    assert_clean(watch)
