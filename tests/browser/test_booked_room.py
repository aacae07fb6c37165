"""A booked group session in Chromium: a tutor and two students launched from the LMS (the
demo platform's real OIDC launch, matched to the roster by SIS number) each see the
countdown; the rooms job (run explicitly, at the broker's fake time) opens the room; all
three are in it and exchange messages that everyone sees with the right names; a student
who is not booked sees no room; a reloaded page rejoins with what it missed; the tutor ends
the session (after confirming) and the students are told. Axe-clean; the room fits 360 px.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import tokens
from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.identity import Scope, staff_identity, tutor_identity
from broker.rooms import run_rooms
from broker.scheduler import booking, enrolment, setup
from broker.scheduler.service import Scheduler
from broker.settings import Settings
from tests.broker.conftest import fetch_all
from tests.broker.harness import SECRET
from tests.broker.unit import FakeClock
from tests.browser.conftest import (
    Broker,
    Watch,
    assert_clean,
    axe_violations,
    open_page,
    screenshot,
)
from web.demo_platform import DEMO_PLATFORM, DemoPlatform, DemoUser

pytestmark = pytest.mark.browser

ZONE = "America/Los_Angeles"
START = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)  # Monday 15:30 in Los Angeles (PST)
NOW = START - timedelta(minutes=10)
DISTRICT = staff_identity("dist-1", Scope.district(), source="demo")
DESIGNEE = staff_identity("des-hs", Scope("school", "hs"), source="demo")
OFFER = {
    "programme": "school_based", "vendor": "tutorcom", "subjects": ["math"],
    "low_grade": 9, "high_grade": 12, "languages": ["en"], "group_limit": 4,
    "session_minutes": 30, "min_sessions_per_week": 3,
    "term_start": "2026-09-01", "term_end": "2027-06-10",
}
BELLS = {"timezone": ZONE, "after_school_end": "18:00",
         "bells": {d: {"dismissal": "15:00", "minimum_dismissal": "12:30"}
                   for d in ("mon", "tue", "wed", "thu", "fri")}}
# roster id, LMS user, given name, booked at 15:30?
KIDS = [("st1", "lms-maya", "Maya", True), ("st2", "lms-leo", "Leo", True),
        ("st3", "lms-iris", "Iris", False)]
NEXT_GROUP = ("st4", "Omar")  # booked with the same tutor right after, at 16:00
SCRIPT = "<script>alert(1)</script>"
SHOWN = ".room-log:not([hidden]) .msg:not(.from-system)"  # the shown room's chat messages


# room.js's Countdown as the widget uses it, stepped through the seconds left.
MILESTONES = """async () => {
    const { Countdown } = await import("/static/js/room.js");
    const countdown = new Countdown({ starts_in_s: 3700, starts_at: "2026-11-02T23:30:00Z",
                                      opens_at: "2026-11-02T23:25:00Z" });
    const said = [];
    for (const left of [3700, 3599, 3000, 1799, 599, 299, 59, 30]) {
        countdown.startsInAtReceipt = left;
        countdown.at = performance.now();
        said.push(countdown.milestone());
    }
    return said;
}"""


@pytest.fixture
async def world(broker_settings: Settings) -> AsyncIterator[tuple[Broker, AsyncEngine]]:
    """A live broker at :data:`NOW` (ten minutes before the session) with Maya and Leo
    booked with tutor t1 (Ana Tutor) at 15:30, Iris enrolled but not in the group, and the
    three of them in the demo LMS."""
    engine = create_engine(broker_settings.database_url)
    ctx = Scheduler(engine, SECRET, clock=lambda: datetime(2026, 10, 26, 18, tzinfo=UTC))
    async with engine.begin() as conn:
        await conn.execute(metadata.tables["students"].insert(), [
            {"sourced_id": s, "sis_id": f"sis-{s}", "school_id": "hs", "grade": 9,
             "groups": "", "given_name": name, "family_name": "Ruiz"}
            for s, name in [*((k[0], k[2]) for k in KIDS), NEXT_GROUP]])
    offer = (await setup.create_offer(ctx, DISTRICT, OFFER))["id"]
    await setup.set_school_schedule(ctx, DISTRICT, "hs", BELLS)
    await setup.set_tutor(ctx, DISTRICT, "t1", {
        "vendor": "tutorcom", "languages": ["en"], "timezone": ZONE, "display_name": "Ana Tutor"})
    await enrolment.enrol(ctx, DESIGNEE, offer, {"students": [
        {"student": s, "language": "en"} for s in [*(k[0] for k in KIDS), NEXT_GROUP[0]]]})
    for students, start in (([s for s, *_, on in KIDS if on], "15:30"),
                            ([NEXT_GROUP[0]], "16:00")):
        group = await enrolment.form_group(ctx, DESIGNEE, {
            "offer": offer, "school": "hs", "subject": "math", "language": "en",
            "grade_band": "9-10", "tutor": "t1", "students": students})
        await booking.book_series(ctx, DESIGNEE, {
            "group": group["id"], "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=1",
            "first_day": "2026-11-02", "start": start, "minutes": 30})
    server = Broker(broker_settings, clock=FakeClock(NOW.timestamp()))
    await server.start()
    platform = lms(server)
    for s, user, name, _ in KIDS:
        platform.users[user] = DemoUser(user, name, "Ruiz", "student", f"sis-{s}", "hs", "9")
    try:
        yield server, engine
    finally:
        await server.stop()
        await engine.dispose()


def lms(server: Broker) -> DemoPlatform:
    assert server.test_server is not None
    return server.test_server.app[DEMO_PLATFORM]


@pytest.fixture
async def contexts(browser: Any) -> AsyncIterator[list[Any]]:
    """Browser contexts closed before the broker stops (an open page would keep its
    socket, and the broker's graceful stop would wait for it)."""
    made: list[Any] = []
    yield made
    for context in made:
        await context.close()


async def new_context(browser: Any, contexts: list[Any], width: int) -> Any:
    context = await browser.new_context(locale="en-US", timezone_id=ZONE,
                                        viewport={"width": width, "height": 800})
    context.set_default_timeout(10_000)
    contexts.append(context)
    return context


async def launch(browser: Any, contexts: list[Any], server: Broker, user: str, watch: Watch,
                 width: int = 480) -> Any:
    """A student's widget after a real LTI launch from the demo LMS."""
    context = await new_context(browser, contexts, width)
    page = await open_page(context, lms(server).login_initiation_url(user, storage=False), watch)
    await page.wait_for_url(re.compile(r"/widget"))
    return page


async def axe_clean(page: Any, where: str) -> None:
    found = await axe_violations(page)
    assert found == [], (where, found)


async def senders(page: Any) -> list[tuple[str, str]]:
    """(sender, text) of each chat message of the room, in the order shown."""
    rows = await page.locator(SHOWN).evaluate_all(
        "ms => ms.map(m => [m.querySelector('.who').textContent,"
        " m.querySelector('.text').textContent])")
    return [(who, text) for who, text in rows]


@pytest.mark.slow
async def test_a_booked_group_session_in_the_widget_and_the_console(
    browser: Any, world: Any, contexts: list[Any]
) -> None:
    from playwright.async_api import expect

    server, engine = world
    watch = Watch()
    maya = await launch(browser, contexts, server, "lms-maya", watch)
    leo = await launch(browser, contexts, server, "lms-leo", watch, width=360)
    iris = await launch(browser, contexts, server, "lms-iris", watch)
    tutor_ctx = await new_context(browser, contexts, 1280)
    token = tokens.issue(SECRET, tutor_identity(
        "acct-t1", "tutorcom", ["en"], source="account", display_name="Ana Tutor", profile="t1"))
    await tutor_ctx.add_init_script(f"sessionStorage.setItem('hh_tutor_token', {token!r});")
    tutor = await open_page(tutor_ctx, server.url + "/tutor", watch)

    # -- before it opens: each booked person sees the countdown; Iris sees nothing ----------
    for page in (maya, leo):
        await expect(page.locator("#booked-card")).to_be_visible()
        await expect(page.locator("#booked-when")).to_have_text(
            "Your tutoring session with Tutor.com starts at 3:30 PM.")
        seconds = int(await page.locator("#booked-countdown").get_attribute(
            "data-seconds-left") or "0")
        assert 570 <= seconds <= 600, seconds  # the broker's clock, not the browser's
        assert re.match(r"Starts in (9|10)m", await page.inner_text("#booked-countdown"))
        await expect(page.locator("#view-start")).to_be_visible()  # on-demand help meanwhile
    await expect(tutor.locator("#room-card")).to_be_visible()
    await expect(tutor.locator("#room-title")).to_have_text("Booked session: Math, English")
    assert re.match(r"Starts in (9|10)m", await tutor.inner_text("#room-countdown"))
    await expect(iris.locator("#view-start")).to_be_visible()
    assert await iris.locator("#booked-card").is_hidden()
    assert await leo.evaluate("() => document.documentElement.scrollWidth") <= 360
    # screen readers hear the countdown at 60, 30, 10, 5 and 1 minutes only
    assert await maya.evaluate(MILESTONES) == [
        "", "Your tutoring session starts in 59m 59s.", "",
        "Your tutoring session starts in 29m 59s.", "Your tutoring session starts in 9m 59s.",
        "Your tutoring session starts in 4m 59s.", "Your tutoring session starts in 59s.", ""]
    await axe_clean(maya, "widget countdown")
    await axe_clean(tutor, "console countdown")
    await screenshot(maya, "widget-booked-countdown")

    # -- the rooms job opens it at 15:26; every page joins by itself -------------------------
    opening = START - timedelta(minutes=4)
    server.clock.now = opening.timestamp()
    assert await run_rooms(engine, opening) == {"opened": 1, "closed": 0}
    await server.sweep()
    for page in (maya, leo):
        await expect(page.locator("#view-room")).to_be_visible()
        await expect(page.locator("#room-title")).to_have_text("Ana Tutor from Tutor.com")
        assert await page.locator("#view-start").is_hidden()  # no on-demand form meanwhile
        await expect(page.locator("#room-why")).to_be_visible()
    await expect(tutor.locator("#room-body")).to_be_visible()
    await expect(tutor.locator("#room-people .joined")).to_have_count(2)
    await expect(tutor.locator("#booked-list")).to_contain_text("You joined on time.")
    await expect(maya.locator("#room-people")).to_contain_text("Leo")
    people = await maya.locator("#room-people li").all_inner_texts()
    assert [p.strip() for p in people] == ["Ana Tutor Tutor", "Maya (you)", "Leo"], people
    tutor_people = await tutor.locator("#room-people li").all_inner_texts()
    assert all(re.match(r"s-[a-z2-7]+ grades 9-12 Joined", p) for p in tutor_people), tutor_people
    assert not any("Maya" in p or "Leo" in p for p in tutor_people)  # first names are off

    # -- everyone's messages reach everyone, named for each reader --------------------------
    await tutor.fill("#room-message", "Welcome, both of you!")
    await tutor.press("#room-message", "Enter")
    await expect(maya.locator(SHOWN)).to_have_count(1)
    await maya.fill("#room-message", f"Hi! {SCRIPT}")
    await maya.press("#room-message", "Enter")
    await expect(leo.locator(SHOWN)).to_have_count(2)
    await leo.locator("#room-message").press_sequentially("hel")
    await expect(maya.locator("#room-logs .typing:not([hidden])")).to_have_text("Leo is typing…")
    await leo.locator("#room-message").press_sequentially("lo")
    await leo.press("#room-message", "Enter")
    texts = ["Welcome, both of you!", f"Hi! {SCRIPT}", "hello"]
    for page in (maya, leo, tutor):
        await expect(page.locator(SHOWN)).to_have_count(3)
    assert await senders(maya) == list(zip(["Ana Tutor", "You", "Leo"], texts, strict=True))
    assert await senders(leo) == list(zip(["Ana Tutor", "Maya", "You"], texts, strict=True))
    seen_by_tutor = await senders(tutor)
    assert seen_by_tutor[0][0] == "You" and [x for _, x in seen_by_tutor] == texts
    assert all(re.fullmatch(r"s-[a-z2-7]+", w) for w, _ in seen_by_tutor[1:]), seen_by_tutor
    assert await maya.locator("#room-logs script").count() == 0  # text stays text
    await axe_clean(maya, "widget room")
    await axe_clean(tutor, "console room")
    await screenshot(leo, "widget-booked-room-360")
    await screenshot(tutor, "console-booked-room")
    assert await leo.evaluate("() => document.documentElement.scrollWidth") <= 360
    await leo.evaluate("() => { document.documentElement.style.fontSize = '200%'; }")
    assert await leo.evaluate("() => document.documentElement.scrollWidth") <= 360  # text 200 %
    await screenshot(leo, "widget-booked-room-360-text200")
    await leo.evaluate("() => { document.documentElement.style.fontSize = ''; }")

    # -- a dropped connection rejoins with after_seq: what was missed comes with the join ----
    await leo.context.set_offline(True)
    await expect(leo.locator("#banner")).to_have_text("Connection lost. Reconnecting…")
    await tutor.fill("#room-message", "Leo, you missed this")
    await tutor.press("#room-message", "Enter")
    await expect(maya.locator(SHOWN)).to_have_count(4)
    await leo.context.set_offline(False)
    await expect(leo.locator("#banner")).to_be_hidden()
    await expect(leo.locator(SHOWN)).to_have_count(4)
    assert (await senders(leo))[3] == ("Ana Tutor", "Leo, you missed this")
    texts.append("Leo, you missed this")

    # -- a reload rejoins: the missed messages come with the join ---------------------------
    await leo.reload()
    await expect(leo.locator("#view-room")).to_be_visible()
    await expect(leo.locator(SHOWN)).to_have_count(4)
    # named as the pushes named them (the buffer keeps each student's slot in the room)
    assert await senders(leo) == list(zip(["Ana Tutor", "Maya", "You", "Ana Tutor"], texts,
                                          strict=True))

    # -- Iris, not booked, never sees the room ----------------------------------------------
    assert await iris.locator("#view-room").is_hidden()
    assert await iris.locator("#booked-card").is_hidden()
    await expect(iris.locator("#request-form")).to_be_visible()

    # -- 15:55: the tutor's next group opens; the console stays in this one and offers it ----
    overlap = START + timedelta(minutes=25)
    server.clock.now = overlap.timestamp()
    assert await run_rooms(engine, overlap) == {"opened": 1, "closed": 0}
    await server.sweep()
    switch = tutor.get_by_role("button", name="Switch to the 4:00 PM session")
    await expect(switch).to_be_visible()
    await expect(tutor.locator(SHOWN)).to_have_count(4)
    await expect(tutor.locator("#room-people .joined")).to_have_count(2)
    await tutor.reload()  # the state names both open rooms: the first shown, the next offered
    await expect(switch).to_be_visible()
    await expect(tutor.locator(SHOWN)).to_have_count(4)
    await expect(tutor.locator("#room-people .joined")).to_have_count(2)
    assert await senders(tutor) == [*seen_by_tutor, ("You", "Leo, you missed this")]

    # -- the tutor ends it after confirming; the students are told --------------------------
    await tutor.click("#room-end")
    await expect(tutor.locator("#room-confirm")).to_be_visible()
    await tutor.keyboard.press("Escape")  # changed their mind: nothing ends
    await expect(tutor.locator("#room-confirm")).to_be_hidden()
    await expect(tutor.locator("#room-end")).to_be_focused()
    await tutor.click("#room-end")
    await tutor.click("#room-end-yes")
    await expect(tutor.locator("#room-ended-reason")).to_have_text(
        "You ended the session for everyone.")
    await expect(tutor.locator("#room-close")).to_be_visible()
    await switch.click()  # on to the next group: Omar has not joined yet
    await expect(tutor.locator("#room-people li")).to_have_text(
        ["Booked student grades 9-12 Not joined yet"])
    assert await tutor.locator("#room-ended-reason").is_hidden()
    await expect(tutor.locator("#room-send-form")).to_be_visible()
    await axe_clean(tutor, "console, next group")
    for page in (maya, leo):
        await expect(page.locator("#room-ended-reason")).to_have_text(
            "The tutor ended the tutoring session.")
        assert await page.locator("#room-send-form").is_hidden()
    await axe_clean(maya, "widget room ended")
    await maya.click("#room-back")
    await expect(maya.locator("#request-form")).to_be_visible()
    assert await maya.locator("#booked-card").is_hidden()  # the ended session is not "next"
    assert await server.broker.rooms.state(student="st1") is None

    marks = await fetch_all(server.settings.database_url,
                            "select student_id, status from attendance order by student_id")
    assert [(m["student_id"], m["status"]) for m in marks] == [("st1", "present"),
                                                               ("st2", "present")]
    occ = await fetch_all(server.settings.database_url,
                          "select tutor_status from occurrences order by starts_at")
    assert [o["tutor_status"] for o in occ] == ["present", "present"]  # both joined on open
    assert_clean(watch)
