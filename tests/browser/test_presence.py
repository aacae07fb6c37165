"""Presence people can see (issue 14), in Chromium, on a fake clock (no waiting on time).

One journey per finding of the issue: a tutor closes the browser mid-chat (the student is
told at once, in the page, how long their place is kept; then told they are back in line,
with no made-up wait); a tutor signs out with a chat open (an in-page confirmation; the
student is told at once, and the wait says nobody is online).
"""

from __future__ import annotations

from typing import Any

import pytest

from broker import tokens
from tests.broker.harness import SECRET
from tests.broker.harness import tutor as harness_tutor
from tests.broker.unit import FakeClock
from tests.browser.chat_steps import chat_between, clocked_broker, settle_s, tutor_accepts
from tests.browser.conftest import Broker, Watch, assert_clean, axe_violations, open_page

__all__ = ["clocked_broker"]
pytestmark = pytest.mark.browser


async def test_tutor_closes_the_browser_then_signs_out(
    clocked_broker: tuple[Broker, FakeClock], browser: Any
) -> None:
    from playwright.async_api import expect

    server, clock = clocked_broker
    watch = Watch()
    student_ctx, student, tutor_ctx, tutor = await chat_between(
        browser, server, watch, "stu-pres", "Ms Gone"
    )

    # the tutor closes the browser: the student is told, with the seconds their place is kept
    await tutor_ctx.close()
    await server.disconnected("tutor:demo-paper-ms-gone")
    clock.advance(settle_s(server))
    await server.sweep()
    note = student.locator("#peer-note")
    await expect(note).to_contain_text("Your tutor lost their connection")
    await expect(note).to_contain_text("seconds")
    assert await axe_violations(student) == []

    # not back within the grace: back in line, told so, no estimate from a tutor who left
    clock.advance(server.settings.grace_seconds + 1)
    await server.sweep()
    await expect(student.locator("#view-waiting")).to_be_visible()
    await expect(student.locator("#requeued-note")).to_contain_text("back")
    await expect(student.locator("#queue-eta")).to_contain_text("No tutors are online right now.")

    # another tutor takes the student, then signs out with the chat open
    tutor_ctx, tutor = await tutor_accepts(browser, server, watch, "Mr Leaves")
    await expect(student.locator("#view-chat")).to_be_visible()
    await tutor.click("#sign-out")
    confirm = tutor.locator("#signout-confirm")
    await expect(confirm).to_be_visible()
    await expect(tutor.locator("#signout-yes")).to_be_focused()
    await tutor.keyboard.press("Escape")  # changed their mind
    await expect(confirm).to_be_hidden()
    await expect(tutor.locator("#sign-out")).to_be_focused()
    await tutor.click("#sign-out")
    await tutor.click("#signout-yes")
    await tutor.wait_for_url("**/login**")
    await tutor.goto(f"{server.url}/tutor")  # signed out for real: the console asks again
    await expect(tutor.locator("#signin")).to_be_visible()
    await expect(student.locator("#requeued-note")).to_contain_text("Your tutor signed out.")
    await expect(student.locator("#queue-eta")).to_contain_text("No tutors are online right now.")
    assert await axe_violations(student) == []
    for ctx in (student_ctx, tutor_ctx):
        await ctx.close()

    # a tutor signed in with the sign-in cookie: signing out clears it too
    signed_in = await browser.new_context(viewport={"width": 1280, "height": 900})
    cookie = server.staff_cookie()
    identity = harness_tutor("t-cookie", "paper", ["en"], "Ms Cookie")
    await signed_in.add_cookies([{**cookie, "value": tokens.issue(SECRET, identity)}])
    page = await open_page(signed_in, f"{server.url}/tutor", watch)
    await expect(page.locator("#console")).to_be_visible()
    await page.click("#sign-out")  # no chat open: no question
    await page.wait_for_url("**/login**")
    await page.goto(f"{server.url}/tutor")
    await expect(page.locator("#signin")).to_be_visible()
    await signed_in.close()
    assert_clean(watch)
