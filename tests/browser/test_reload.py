"""Conversations that survive a reload, and attention (issue 14), in Chromium.

A reload mid-chat on both sides shows the conversation again, in order and once; the
tab's own copy is deleted when the session ends; the student can still save their
transcript. A student whose tab is in the background sees the unread count in its title
(the page is made "hidden" as a background tab is, through the Page Visibility API).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.broker.unit import FakeClock
from tests.browser.chat_steps import chat_between, clocked_broker
from tests.browser.conftest import Broker, Watch, assert_clean

__all__ = ["clocked_broker"]
pytestmark = pytest.mark.browser

HIDE = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def _texts(page: Any, scope: str) -> list[str]:
    texts = await page.locator(f"{scope} .msg:not(.from-system) .text").all_inner_texts()
    return [text.strip() for text in texts]


async def test_reload_mid_chat_on_both_sides(
    clocked_broker: tuple[Broker, FakeClock], browser: Any
) -> None:
    from playwright.async_api import expect

    server, _ = clocked_broker
    watch = Watch()
    student_ctx, student, tutor_ctx, tutor = await chat_between(
        browser, server, watch, "stu-reload", "Ms Stay"
    )
    panel = tutor.get_by_role("tabpanel")

    await student.fill("#message", "how do I add 1/2 and 1/3?")
    await student.keyboard.press("Enter")
    await expect(panel.locator(".msg.from-other")).to_have_count(1)

    # the student's tab goes to the background: the title counts the tutor's replies
    title = await student.title()
    await student.evaluate(HIDE)
    box = panel.locator("textarea[id^=msg-]")
    for sent, text in enumerate(("find a common denominator", "6 works"), start=1):
        await box.fill(text)
        await box.press("Enter")
        await expect(panel.locator(".msg.from-me")).to_have_count(sent)
    await expect(student.locator("#messages .msg.from-other")).to_have_count(2)
    await expect(student).to_have_title(f"(2) {title}")
    await student.evaluate(SHOW)
    await expect(student).to_have_title(title)

    conversation = ["how do I add 1/2 and 1/3?", "find a common denominator", "6 works"]
    await student.reload()
    await expect(student.locator("#view-chat")).to_be_visible()
    await expect(student.locator("#messages .msg:not(.from-system)")).to_have_count(3)
    assert await _texts(student, "#messages") == conversation
    await tutor.reload()
    panel = tutor.get_by_role("tabpanel")
    await expect(panel.locator(".msg:not(.from-system)")).to_have_count(3)
    assert await _texts(tutor, "[role=tabpanel]") == conversation
    # this tab keeps its own copy while the session is open ...
    kept = "() => Object.keys(sessionStorage).filter((k) => k.startsWith('hh_chat:')).length"
    assert await student.evaluate(kept) == 1

    # ... and the chat goes on after the reloads
    await student.fill("#message", "5/6!")
    await student.keyboard.press("Enter")
    await expect(panel.locator(".msg.from-other")).to_have_count(2)

    await student.click("#end")
    await student.click("#end-yes")
    await expect(student.locator("#view-rate")).to_be_visible()
    assert await student.evaluate(kept) == 0  # deleted when the session ends
    # the student's own transcript can still be saved
    async with student.expect_download() as download_info:
        await student.click("#transcript-save")
    download = await download_info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    assert all(line in text for line in [*conversation, "5/6!"])
    for ctx in (student_ctx, tutor_ctx):
        await ctx.close()
    assert_clean(watch)
