"""A chat that began and ended while the widget heard nothing (issue 10), in Chromium.

The student waits; a tutor takes the request, writes and ends the chat while every push to
the student is lost (as in a pub/sub outage between two processes); then the server asks
its clients to resync (what the fan-out does after such a gap). The widget tells
``session:state`` the request it shows as waiting, learns which chat it became, fetches
its messages with ``session:sync`` and shows how it ended: the tutor's words are not lost
and the student is not told merely that their request "is no longer waiting".
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.unit import FakeClock, as_identity, tutor
from tests.browser.chat_steps import clocked_broker, student_asks
from tests.browser.conftest import Broker, Watch, assert_clean
from web.keys import GATEWAY

__all__ = ["clocked_broker"]
pytestmark = pytest.mark.browser


async def test_a_chat_ended_while_pushes_were_lost_is_shown(
    clocked_broker: tuple[Broker, FakeClock], browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import expect

    server, _ = clocked_broker
    watch = Watch()
    ctx, page = await student_asks(browser, server, watch, "stu-unseen")
    [row], _ = await server.broker.store.queue("paper:en")
    gateway = server.test_server.app[GATEWAY] if server.test_server else None
    assert gateway is not None

    lost: list[str] = []

    async def dropped(student: str, event: str, data: dict[str, Any], *a: Any, **k: Any) -> None:
        lost.append(event)

    monkeypatch.setattr(server.broker.notifier, "to_student", dropped)
    ms_late = tutor("t-late", name="Ms Late")
    await server.broker.tutor_state(ms_late)
    session_id = str((await server.broker.accept(ms_late, row["id"]))["session_id"])
    await server.broker.send(as_identity(ms_late), session_id, "Try drawing the fractions first")
    await server.broker.end(as_identity(ms_late), session_id)
    assert {"session:started", "chat:message", "session:ended"} <= set(lost)
    await expect(page.locator("#view-waiting")).to_be_visible()  # it heard nothing
    monkeypatch.undo()

    await gateway.resync_local()
    await expect(page.locator("#view-rate")).to_be_visible()
    await expect(page.locator("#ended-reason")).to_have_text("Your tutor ended the chat.")
    said = page.locator("#messages .msg.from-other .text")
    await expect(said).to_have_count(1)
    assert (await said.text_content() or "").strip() == "Try drawing the fractions first"
    await expect(page.locator("#transcript-box")).to_be_visible()
    await ctx.close()
    assert_clean(watch)
