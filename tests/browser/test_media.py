"""Pictures in the chat (issue 14), in Chromium: a student's 3 MB phone photo sent from the
widget is shown on the tutor's side (and the tutor's picture on the student's), opens full
size in an in-page dialog and closes with Escape; a refused file says why in the chat; the
pages stay axe-clean with the new controls; on a phone (touch) the camera is offered too."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Watch, assert_clean, open_page, screenshot
from tests.browser.test_journeys import no_serious_axe
from tests.browser.test_safety import (  # noqa: F401  (fixtures, by name)
    console,
    contexts,
    server,
    start_chat,
    widget,
)
from tests.media import files

pytestmark = pytest.mark.browser


def picture(name: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def test_a_photo_sent_and_shown_on_the_other_side(
    server: Any, browser: Any, contexts: list[Any]  # noqa: F811
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    student = await widget(server, browser, contexts, watch)
    tutor = await console(server, browser, contexts, watch)
    panel = await start_chat(student, tutor)

    # The picker is a labelled control reached with the keyboard (the camera's twin shows
    # on touch screens only).
    pick = student.get_by_label("Add a picture")
    await pick.focus()
    await expect(pick).to_be_focused()
    await expect(student.get_by_label("Take a photo")).to_be_hidden()

    # The student's photo of the problem (a phone's 3 MB JPEG) reaches the tutor.
    await student.set_input_files("#photo-pick", picture(
        "IMG_0001.jpg", files.phone_photo(), "image/jpeg"))
    mine = student.locator("#messages .chat-image img")
    await expect(mine).to_have_attribute("alt", "Your picture", timeout=15000)
    seen = panel.locator(".chat-image img")
    await expect(seen).to_have_attribute("alt", "Picture from the student", timeout=15000)
    assert await seen.evaluate("img => img.complete && img.naturalWidth") == 1200
    await no_serious_axe(student, "widget (a picture sent)")
    await screenshot(student, "media-widget")

    # Full size in an in-page dialog; Escape closes it and gives the focus back.
    opener = panel.get_by_role("button", name=re.compile("Open the picture full size"))
    await opener.focus()
    await tutor.keyboard.press("Enter")
    dialog = tutor.get_by_role("dialog", name="Picture, full size")
    await expect(dialog).to_be_visible()
    await no_serious_axe(tutor, "tutor console (picture full size)")
    await screenshot(tutor, "media-tutor-full-size")
    await tutor.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(opener).to_be_focused()

    # The tutor's picture reaches the student; a file that is not a picture is refused.
    await panel.locator("input[type=file][id^=photo-pick]").set_input_files(
        picture("steps.png", files.png(400, 300), "image/png"))
    theirs = student.locator("#messages .chat-image img[alt='Picture from your tutor']")
    await expect(theirs).to_be_visible(timeout=15000)
    await student.set_input_files("#photo-pick", picture(
        "homework.jpg", files.SVG_WITH_SCRIPT, "image/jpeg"))  # named and typed as a photo
    await expect(student.locator("#send-error")).to_have_text(re.compile("can't be sent"))
    await expect(student.locator("#messages .chat-image")).to_have_count(2)

    # On a phone (a touch screen) the camera is offered beside the picker.
    phone = await browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True,
                                      is_mobile=True, locale="en-US")
    contexts.append(phone)
    token = server.student_token("stu-cam", "hs", 10, locale="en")
    page = await open_page(phone, f"{server.url}/widget#token={token}", watch)
    shown = await page.evaluate("""() => [matchMedia("(pointer: coarse)").matches,
        getComputedStyle(document.querySelector(".attach.camera")).display]""")
    assert shown[0] and shown[1] != "none", shown
    assert await page.get_attribute("#photo-camera", "capture") == "environment"

    watch.failed = [f for f in watch.failed if not re.fullmatch(r"415 /api/sessions/\w+/images", f)]
    assert_clean(watch)
