"""When the student ends a chat first, the tutor console still records how it went."""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.conftest import fetch_all
from tests.browser.conftest import Broker, Watch, assert_clean, open_page

pytestmark = pytest.mark.browser


async def test_tutor_saves_outcome_after_student_ends(
    live_broker: Broker, browser: Any, sqlite_url: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    token = live_broker.student_token("stu-leo", "elem", 4, given_name="Leo")
    student_ctx = await browser.new_context(viewport={"width": 420, "height": 860})
    student = await open_page(student_ctx, f"{live_broker.url}/widget#token={token}", watch)
    await student.select_option("#subject", "math")
    await student.click("#ask")
    await expect(student.locator("#view-waiting")).to_be_visible()

    tutor_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    tutor = await open_page(tutor_ctx, f"{live_broker.url}/tutor", watch)
    await tutor.select_option("#demo-vendor", "paper")
    await tutor.click("#demo-form button[type=submit]")
    await expect(tutor.locator("#console")).to_be_visible()
    await tutor.click("#status-toggle")
    await tutor.locator(".queue-item").first.get_by_role("button", name="Accept").click()
    await expect(student.locator("#view-chat")).to_be_visible()

    await student.click("#end")
    await student.click("#end-yes")  # the in-page confirmation
    panel = tutor.get_by_role("tabpanel")
    await expect(panel).to_contain_text("The student ended the chat.")
    save = panel.get_by_role("button", name="Save and close")
    await expect(save).to_be_visible()
    await panel.locator("select[id^=subj-]").select_option("geometry")
    # the form starts empty (issue 14) and says what is missing
    assert await panel.locator("select[id^=outcome-]").input_value() == ""
    await save.click()
    await expect(panel.get_by_role("alert")).to_have_text("Choose an outcome.")
    await panel.locator("select[id^=outcome-]").select_option("homework_help")
    await save.click()
    await expect(panel.get_by_role("alert")).to_have_text("Say whether the question was resolved.")
    await panel.get_by_role("radio", name="No").check()
    await panel.get_by_label("Private notes (optional)").fill("knows the area formula now")
    await save.click()  # already ended by the student: saved without a confirmation
    await expect(tutor.get_by_role("tab")).to_have_count(0)
    [row] = await fetch_all(
        sqlite_url,
        "SELECT end_reason, tutored_subject, outcome, resolved, tutor_notes FROM tutoring_sessions",
    )
    assert (row["end_reason"], row["tutored_subject"], row["outcome"]) == (
        "student",
        "geometry",
        "homework_help",
    )
    assert not row["resolved"] and row["tutor_notes"] == "knows the area formula now"
    for ctx in (student_ctx, tutor_ctx):
        await ctx.close()
    assert_clean(watch)
