"""The scheduler's pages in Chromium: a designee builds a group and books a series, a
holiday cancels an occurrence, a parent books through the link in Spanish, a tampered
link shows the error page, a tutor sees the booked session's countdown; axe-clean.

The app's clock is fixed (the broker's :class:`~tests.broker.unit.FakeClock`, which the
scheduler reads too): Monday 2 November 2026, 14:00 in Los Angeles (22:00 UTC), the day
after the autumn daylight-saving change.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import tokens
from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.identity import Scope, staff_identity, tutor_identity
from broker.outbox import Message, Sender, send_due
from broker.scheduler import booking, enrolment, parents, setup
from broker.scheduler import jobs as scheduler_jobs
from broker.scheduler.service import Scheduler
from broker.settings import Settings
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
from tests.scheduler.conftest import forged

NOW = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # Monday 14:00 in America/Los_Angeles
DISTRICT = staff_identity("dist-1", Scope.district(), source="demo")
DESIGNEE = staff_identity("des-hs", Scope("school", "hs"), source="demo")
ZONE = "America/Los_Angeles"
TERM = {"term_start": "2026-09-01", "term_end": "2027-06-10"}
SCHOOL_OFFER = {
    "programme": "school_based", "vendor": "tutorcom", "subjects": ["math", "ela"],
    "low_grade": 9, "high_grade": 12, "languages": ["en", "es"], "group_limit": 4,
    "session_minutes": 30, "min_sessions_per_week": 3, **TERM,
}
HOME_OFFER = {
    "programme": "home_based", "vendor": "booknook", "subjects": ["math", "ela"],
    "low_grade": 0, "high_grade": 12, "languages": ["en", "es"], "group_limit": 1,
    "session_minutes": 30, "min_sessions_per_week": 1, **TERM,
}
BELLS = {"timezone": ZONE, "after_school_end": "18:00",
         "bells": {d: {"dismissal": "15:00", "minimum_dismissal": "12:30"}
                   for d in ("mon", "tue", "wed", "thu", "fri")}}
STUDENTS = [("st1", "hs", 9, "Maya"), ("st2", "hs", 9, "Leo"), ("st3", "hs", 10, "Iris"),
            ("st4", "hs", 10, "Omar"), ("st7", "elem", 3, "Sofía")]


@pytest.fixture
async def world(broker_settings: Settings) -> AsyncIterator[tuple[Broker, Scheduler]]:
    """A live broker at :data:`NOW` with the scheduler's set-up done by district staff."""
    engine: AsyncEngine = create_engine(broker_settings.database_url)
    ctx = Scheduler(engine, SECRET, clock=lambda: NOW)
    async with engine.begin() as conn:
        await conn.execute(metadata.tables["students"].insert(), [
            {"sourced_id": s, "sis_id": f"sis-{s}", "school_id": school, "grade": grade,
             "groups": "", "given_name": name, "family_name": "Ruiz"}
            for s, school, grade, name in STUDENTS])
    await setup.create_offer(ctx, DISTRICT, SCHOOL_OFFER)
    await setup.set_school_schedule(ctx, DISTRICT, "hs", BELLS)
    await setup.set_school_schedule(ctx, DISTRICT, "elem", BELLS)
    await setup.set_tutor(ctx, DISTRICT, "t1", {
        "vendor": "tutorcom", "languages": ["en", "es"], "timezone": ZONE,
        "display_name": "Ana Tutor"})
    await setup.set_tutor(ctx, DISTRICT, "t2", {
        "vendor": "tutorcom", "languages": ["en"], "timezone": ZONE,
        "display_name": "Ben Signer", "accommodations": ["asl"]})
    server = await Broker(broker_settings, clock=FakeClock(NOW.timestamp())).start()
    try:
        yield server, ctx
    finally:
        await server.stop()
        await engine.dispose()


async def context_of(browser: Any, server: Broker | None = None,
                     identity: tokens.Identity | None = None, locale: str = "en-US",
                     **options: Any) -> Any:
    """A browser context (10 s waits), signed in as ``identity`` with its session cookie."""
    context = await browser.new_context(locale=locale, **options)
    context.set_default_timeout(10_000)
    if server is not None and identity is not None:
        await context.add_cookies([{
            "name": "hh_session", "value": tokens.issue(SECRET, identity), "url": server.url,
            "httpOnly": True, "sameSite": "Lax"}])
    return context


async def axe_clean(page: Any) -> None:
    found = await axe_violations(page)
    assert found == [], found


def refused(watch: Watch, *expected: str) -> None:
    """The refusals a test provoked on purpose are not page failures."""
    for item in expected:
        assert item in watch.failed, (item, watch.failed)
    watch.failed[:] = [f for f in watch.failed if f not in expected]


async def done(page: Any, form: str) -> None:
    """Wait for the form's success note; fail with its error text if it was refused."""
    await page.wait_for_selector(f"#{form}-done:not([hidden]), #{form}-error:not([hidden])")
    assert await page.is_hidden(f"#{form}-error"), await page.inner_text(f"#{form}-error")


async def week_times(page: Any, day: str) -> list[str]:
    return await page.locator(f'.week-day[data-date="{day}"] li[data-status="scheduled"] '
                              ".occ-time").all_inner_texts()


async def test_designee_groups_books_and_a_holiday_cancels(browser: Any, world: Any) -> None:
    server, _ = world
    context = await context_of(browser, server, DESIGNEE)
    watch = Watch()
    page = await open_page(context, server.url + "/staff/scheduling", watch)
    await page.wait_for_selector("#desk:not([hidden])")
    assert await page.input_value("#pick-school") == "hs"
    assert await page.locator("#pick-school").get_attribute("readonly") is not None
    await page.click("text=Show students")
    await page.wait_for_selector("#work:not([hidden])")
    assert await page.locator("#roster tr").count() == 4  # the high school's students only
    await axe_clean(page)

    for name in ("Maya", "Leo"):
        await page.get_by_label(f"Select {name} R.").check()
    await page.click("text=Enrol the ticked students")
    await done(page, "enrol")
    assert "Enrolled: 2" in await page.inner_text("#enrol-done")
    await page.get_by_label("Select Omar R.").check()
    await page.get_by_label("ASL").check()
    await page.click("text=Enrol the ticked students")
    await done(page, "enrol")
    assert "Enrolled: 1" in await page.inner_text("#enrol-done")
    assert "English, ASL" in await page.inner_text('#roster tr[data-student="st4"]')

    # Omar needs ASL, which Ana does not sign: the server's rule shows next to the form.
    for name in ("Maya", "Leo", "Omar"):
        await page.get_by_label(f"Select {name} R.").check()
    await page.fill("#group-band", "9-10")
    await page.select_option("#group-tutor", "t1")
    await page.click("text=Form the group with the ticked students")
    await page.wait_for_selector("#group-error:not([hidden])")
    assert "accommodation_missing" in await page.inner_text("#group-error")
    await page.get_by_label("Select Omar R.").uncheck()
    await page.click("text=Form the group with the ticked students")
    await done(page, "group")
    assert "Ana Tutor (2 students)" in await page.inner_text("#group-done")

    for day in ("Monday", "Wednesday", "Thursday"):
        await page.locator("#book-form").get_by_label(day, exact=True).check()
    await page.fill("#book-first", "2026-11-02")
    await page.fill("#book-last", "2026-11-19")
    await page.fill("#book-start", "13:29")  # 91 minutes before the 15:00 dismissal
    await page.click("text=Book the series")
    await page.wait_for_selector("#book-error:not([hidden])")
    assert "before_bell_window" in await page.inner_text("#book-error")
    await page.fill("#book-start", "15:30")
    await page.click("text=Book the series")
    await done(page, "book")
    assert "Booked: 9 sessions" in await page.inner_text("#book-done")
    assert await page.is_hidden("#book-error")
    await page.wait_for_selector('.week-day[data-date="2026-11-02"] li[data-status="scheduled"]')
    assert await week_times(page, "2026-11-02") == ["15:30"]
    assert await week_times(page, "2026-11-04") == ["15:30"]
    assert await week_times(page, "2026-11-05") == ["15:30"]
    await axe_clean(page)
    await screenshot(page, "scheduling-week")

    # A holiday added to the calendar cancels Wednesday's session: it leaves the week.
    await page.fill("#cal-date", "2026-11-04")
    await page.fill("#cal-label", "Staff day")
    await page.click("text=Add to the calendar")
    await done(page, "calendar")
    assert "Sessions cancelled: 1" in await page.inner_text("#calendar-done")
    await page.wait_for_function(
        "() => !document.querySelector('.week-day[data-date=\"2026-11-04\"] li')")
    assert await week_times(page, "2026-11-04") == []
    assert await week_times(page, "2026-11-05") == ["15:30"]
    await page.get_by_label("Show cancelled sessions").check()
    assert "Cancelled: holiday" in await page.inner_text('.week-day[data-date="2026-11-04"]')
    await page.get_by_label("Show cancelled sessions").uncheck()

    # Cancel Thursday's session with a reason, with the keyboard.
    await page.get_by_role("button", name="Cancel the session of 2026-11-05 at 15:30").click()
    assert await page.evaluate("document.activeElement.id") == "cancel-reason"
    await page.keyboard.type("Assembly")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#cancel-form", state="hidden")
    assert await week_times(page, "2026-11-05") == []
    assert await week_times(page, "2026-11-02") == ["15:30"]
    # The next week is whole; cancelling the rest of the series from its Monday empties it
    # and the week after.
    await page.click("#week-next")
    await page.wait_for_selector('.week-day[data-date="2026-11-09"] li[data-status="scheduled"]')
    assert await week_times(page, "2026-11-12") == ["15:30"]
    await page.get_by_role("button", name="Cancel the session of 2026-11-09 at 15:30").click()
    await page.fill("#cancel-reason", "Tutor contract ended")
    await page.get_by_label("This one and the rest of the series").check()
    await page.click("#cancel-form button[type=submit]")
    await page.click("text=Yes, cancel the rest of the series")  # asked first
    await page.wait_for_selector("#cancel-form", state="hidden")
    assert await page.locator('#week li[data-status="scheduled"]').count() == 0
    await page.click("#week-next")
    await page.wait_for_selector('.week-day[data-date="2026-11-16"]')
    assert await page.locator('#week li[data-status="scheduled"]').count() == 0
    await page.click("#week-prev")
    await page.click("#week-prev")
    await page.wait_for_selector('.week-day[data-date="2026-11-02"] li[data-status="scheduled"]')
    assert await week_times(page, "2026-11-02") == ["15:30"]  # before the cancelled rest
    refused(watch, "409 /api/scheduler/groups", "409 /api/scheduler/series")
    assert_clean(watch)
    await context.close()


class Accepting(Sender):
    """A mail server that takes everything (so rows become sent)."""

    async def send(self, message: Message) -> None:
        return None


async def test_outbox_page_shows_the_notices(browser: Any, world: Any) -> None:
    server, ctx = world
    group = await _booked_group(ctx)
    assert group
    sent = await send_due(ctx.engine, Accepting(), NOW)  # the booking notices go out
    assert sent["sent"] == 3  # two students, the tutor
    queued = await scheduler_jobs.queue_reminders(ctx.engine, NOW)  # today's 15:30 session
    assert queued == {"occurrences": 1}
    context = await context_of(browser, server, DISTRICT)
    watch = Watch()
    page = await open_page(context, server.url + "/staff/outbox", watch)
    await page.wait_for_selector('#outbox tr[data-kind="reminder"]')
    rows = await page.locator("#outbox tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.kind, r.dataset.status])")
    assert sorted(rows) == [["booked", "sent"]] * 3 + [["reminder", "pending"]] * 3
    assert "3 waiting" in await page.inner_text("#outbox-state")
    assert "Waiting" in await page.inner_text("#outbox")
    await axe_clean(page)
    await screenshot(page, "outbox")
    assert_clean(watch)
    # school staff may not read it
    await context.close()
    context = await context_of(browser, server, DESIGNEE)
    page = await open_page(context, server.url + "/staff/outbox", Watch())
    await page.wait_for_function("() => /not_allowed/.test(document.body.innerText)")
    assert "the outbox is for district staff" in await page.inner_text("#outbox-state")
    await context.close()


async def test_a_page_says_an_outage_in_the_readers_language(
    browser: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read the database cannot answer is 503 ``unavailable``; the page says so in its
    reader's language (here French), not the server's English text."""
    from tests.services import database_refused
    from web import scheduling_pages

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise database_refused()

    server, _ = world
    monkeypatch.setattr(scheduling_pages.outbox_view, "latest", refused)
    context = await context_of(browser, server, DISTRICT, locale="fr-FR")
    page = await open_page(context, server.url + "/staff/outbox", Watch())
    await page.wait_for_function(
        "() => /indisponible/.test(document.getElementById('outbox-state').innerText)")
    assert (await page.inner_text("#outbox-state")) == (
        "Le service est momentanément indisponible. Rien n'a été modifié. "
        "Veuillez réessayer dans une minute.")
    await context.close()


async def _booked_group(ctx: Scheduler) -> str:
    offer = (await setup.list_offers(ctx, DISTRICT))[0]["id"]
    await enrolment.enrol(ctx, DESIGNEE, offer, {"students": [
        {"student": "st1", "language": "en"}, {"student": "st2", "language": "en"}]})
    group = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st1", "st2"]})
    await booking.book_series(ctx, DESIGNEE, {
        "group": group["id"], "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=9",
        "first_day": "2026-11-02", "start": "15:30", "minutes": 30})
    return str(group["id"])


async def test_tutor_sees_the_booked_session_with_a_countdown(browser: Any, world: Any) -> None:
    server, ctx = world
    await _booked_group(ctx)
    token = tokens.issue(SECRET, tutor_identity("t1", "tutorcom", ["en"], source="demo",
                                                display_name="Ana Tutor"))
    context = await context_of(browser)
    await context.add_init_script(
        f"sessionStorage.setItem('hh_tutor_token', {token!r});")
    watch = Watch()
    page = await open_page(context, server.url + "/tutor", watch)
    await page.wait_for_selector("#booked:not([hidden]) .booked-item")
    first = page.locator(".booked-item").first
    assert await first.locator("time").get_attribute("datetime") == "2026-11-02T15:30:00-08:00"
    assert "Mon, Nov 2, 3:30" in await first.inner_text()  # the school's time, not the browser's
    countdown = first.locator(".countdown")
    # 15:30 local is 90 minutes after the app's 14:00; the page counts down from there.
    seconds = int(await countdown.get_attribute("data-seconds-left") or "0")
    assert 90 * 60 - 30 <= seconds <= 90 * 60
    assert re.match(r"Starts in 1h? ?(29|30)", await countdown.inner_text()), \
        await countdown.inner_text()
    assert await page.locator(".booked-item").count() == 6  # the next two weeks
    await axe_clean(page)
    await screenshot(page, "tutor-booked")
    assert_clean(watch)
    await context.close()


async def _home_offer(ctx: Scheduler) -> str:
    """The home-based offer, with tutor h1 (Spanish) free Tuesdays and Thursdays 16-17."""
    offer = await setup.create_offer(ctx, DISTRICT, HOME_OFFER)
    await setup.set_tutor(ctx, DISTRICT, "h1", {
        "vendor": "booknook", "languages": ["es"], "timezone": ZONE,
        "display_name": "Lucía Gómez"})
    await setup.publish_availability(ctx, DISTRICT, "h1", {"weekly": [
        {"weekday": d, "start": "16:00", "end": "17:00"} for d in ("tue", "thu")]})
    return str(offer["id"])


async def _parent_link(ctx: Scheduler) -> str:
    await _home_offer(ctx)
    link = await parents.issue_link(ctx, DISTRICT, {"student": "st7", "language": "es"},
                                    "test")
    return str(link["token"])


async def test_parent_books_through_the_link_in_spanish(browser: Any, world: Any) -> None:
    server, ctx = world
    offer = await _home_offer(ctx)
    # District staff make the link on the scheduling page, in the family's language.
    staff = await context_of(browser, server, DISTRICT)
    watch = Watch()
    page = await open_page(staff, server.url + "/staff/scheduling", watch)
    await page.wait_for_selector("#desk:not([hidden])")
    await page.fill("#pick-school", "elem")
    await page.select_option("#pick-offer", offer)
    await page.click("text=Show students")
    await page.wait_for_selector("#links-section:not([hidden])")
    assert await page.is_hidden("#book-section") and await page.is_hidden("#group-section")
    await page.get_by_label("Select Sofía R.").check()
    await page.select_option("#links-language", "es")
    await page.click("text=Make links for the ticked students")
    await done(page, "links")
    link = await page.get_attribute('#links li[data-student="st7"] a', "href")
    assert link and link.startswith(f"{server.url}/parent/")
    await axe_clean(page)
    assert_clean(watch)
    await staff.close()

    # A phone with an English browser: the link's language decides.
    context = await context_of(browser, viewport={"width": 360, "height": 740})
    watch = Watch()
    page = await open_page(context, link, watch)
    token = link.rsplit("/", 1)[1]
    assert await page.get_attribute("html", "lang") == "es"
    assert await page.inner_text("#child-title") == "Tutoría para Sofía"
    assert await page.inner_text("#child-grade") == "Grado 3"
    await page.wait_for_selector("#slots input")
    slots = await page.locator("#slots label").all_inner_texts()
    assert len(slots) == 4 and all("Lucía Gómez" in s for s in slots), slots
    assert slots[0] == "Los martes a las 16:00 con Lucía Gómez, desde el 3 de noviembre de 2026"
    await axe_clean(page)
    assert "hora del Pacífico" in await page.inner_text("#book-help")
    await screenshot(page, "parent-link-es")
    assert await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    await page.get_by_label("Matemáticas").check()
    await page.locator("#slots input").first.check()
    assert await page.is_visible("#also")
    await page.locator("#also input").first.check()
    await page.get_by_role("button", name="Reservar estas sesiones").click()
    await page.wait_for_selector("#booked:not([hidden])")
    text = await page.inner_text("#booked")
    assert "Sus sesiones están reservadas" in text, text
    assert ("Cada semana los martes y jueves a las 16:00 con Lucía Gómez: 64 sesiones; "
            "la primera es el 3 de noviembre de 2026.") in text, text
    await axe_clean(page)
    assert_clean(watch)

    # The link is used: opening it again is the clear "no longer usable" page (410).
    watch = Watch()
    page = await open_page(context, f"{server.url}/parent/{token}", watch)
    assert await page.inner_text("h1") == "This link can no longer be used"  # en-US browser
    await page.get_by_role("link", name="Español").click()
    await page.wait_for_selector("html[lang=es]")
    assert await page.inner_text("h1") == "Este enlace ya no se puede usar"
    await axe_clean(page)
    refused(watch, f"410 /parent/{token}", f"410 /parent/{token}")
    assert_clean(watch)
    await context.close()


async def test_a_tampered_link_shows_the_error_page(browser: Any, world: Any) -> None:
    server, ctx = world
    token = await _parent_link(ctx)
    tampered = forged(token)
    context = await context_of(browser, locale="es-MX")
    watch = Watch()
    page = await open_page(context, f"{server.url}/parent/{tampered}", watch)
    assert await page.get_attribute("html", "lang") == "es"
    assert "Este enlace no es válido" in await page.inner_text("h1")
    assert await page.locator("#slots").count() == 0
    await axe_clean(page)
    refused(watch, f"403 /parent/{tampered}")
    assert_clean(watch)
    await context.close()


async def test_across_the_autumn_change_sessions_keep_their_local_time(
    browser: Any, world: Any
) -> None:
    """A series booked Mon/Wed/Thu 15:30 from 26 October: the week before and the week after
    the change (1 November) both read 15:30 in the week view; the tutor's console, on
    Thursday 29 October at 12:00 PDT, shows 3:30 PM on both sides with the right countdown,
    and 3 minutes before a session its Join button records the tutor on time."""
    server, ctx = world
    offer = (await setup.list_offers(ctx, DISTRICT))[0]["id"]
    early = Scheduler(ctx.engine, SECRET, clock=lambda: datetime(2026, 10, 20, 19, tzinfo=UTC))
    await enrolment.enrol(early, DESIGNEE, offer, {"students": [
        {"student": "st1", "language": "en"}]})
    group = await enrolment.form_group(early, DESIGNEE, {
        "offer": offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st1"]})
    await booking.book_series(early, DESIGNEE, {
        "group": group["id"], "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=6",
        "first_day": "2026-10-26", "start": "15:30", "minutes": 30})

    context = await context_of(browser, server, DESIGNEE)
    watch = Watch()
    page = await open_page(context, server.url + "/staff/scheduling", watch)
    await page.wait_for_selector("#desk:not([hidden])")
    await page.click("text=Show students")
    await page.wait_for_selector("#work:not([hidden])")
    await page.fill("#week-date", "2026-10-28")
    await page.click("text=Show the week")
    await page.wait_for_selector('.week-day[data-date="2026-10-26"] li')
    assert [await week_times(page, d) for d in ("2026-10-26", "2026-10-28", "2026-10-29")] \
        == [["15:30"]] * 3
    await page.click("#week-next")
    await page.wait_for_selector('.week-day[data-date="2026-11-02"] li')
    assert [await week_times(page, d) for d in ("2026-11-02", "2026-11-04", "2026-11-05")] \
        == [["15:30"]] * 3
    assert_clean(watch)
    await context.close()

    assert server.clock is not None
    server.clock.now = datetime(2026, 10, 29, 19, 0, tzinfo=UTC).timestamp()  # 12:00 PDT
    token = tokens.issue(SECRET, tutor_identity("t1", "tutorcom", ["en"], source="demo"))
    context = await context_of(browser)
    await context.add_init_script(f"sessionStorage.setItem('hh_tutor_token', {token!r});")
    watch = Watch()
    page = await open_page(context, server.url + "/tutor", watch)
    await page.wait_for_selector("#booked:not([hidden]) .booked-item")
    items = page.locator(".booked-item")
    assert await items.locator("time").evaluate_all("ts => ts.map(t => t.dateTime)") == [
        "2026-10-29T15:30:00-07:00", "2026-11-02T15:30:00-08:00", "2026-11-04T15:30:00-08:00",
        "2026-11-05T15:30:00-08:00"]
    texts = await items.all_inner_texts()
    assert all("3:30 PM" in text for text in texts), texts
    # 3.5 h on the server's clock when the list was fetched; the page counts down from
    # there every second, so a slow page read after its first tick shows a minute less.
    assert "Starts in 3h 30m" in texts[0] or "Starts in 3h 29m" in texts[0], texts[0]
    assert "Starts in 4d 4h" in texts[1]  # 4 d 3.5 h on the wall clock, plus the hour back
    assert await page.locator(".join:visible").count() == 0  # not yet
    await context.close()

    server.clock.now = datetime(2026, 10, 29, 22, 27, tzinfo=UTC).timestamp()  # 15:27 PDT
    context = await context_of(browser)
    await context.add_init_script(f"sessionStorage.setItem('hh_tutor_token', {token!r});")
    page = await open_page(context, server.url + "/tutor", watch)
    join = page.get_by_role("button", name="Join the session of Thu, Oct 29, 3:30 PM")
    await join.click()
    await page.wait_for_selector("text=You joined on time.")
    assert await join.is_hidden()
    await axe_clean(page)
    assert_clean(watch)
    await context.close()


async def test_roster_and_outbox_reads_are_scoped_and_audited(world: Any) -> None:
    """Over plain HTTP: the roster is the school's staff's or the district's, audited; the
    outbox is the district's; nobody signed in is 401."""
    import aiohttp

    from broker.db.models import metadata as tables

    server, ctx = world
    offer = (await setup.list_offers(ctx, DISTRICT))[0]["id"]
    roster = f"{server.url}/api/scheduling/schools/hs/roster?offer={offer}"
    outbox = f"{server.url}/api/scheduling/outbox"
    vendor = staff_identity("vm-1", Scope("vendor", "tutorcom"), source="demo")
    other = staff_identity("des-ms", Scope("school", "ms"), source="demo")

    async def get(url: str, who: tokens.Identity | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {tokens.issue(SECRET, who)}"} if who else {}
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
            if resp.status == 200:
                assert resp.headers["Cache-Control"] == "no-store"
            return resp.status, await resp.json(content_type=None)

    status, body = await get(roster, DESIGNEE)
    assert status == 200 and [s["id"] for s in body["students"]] == ["st2", "st1", "st3", "st4"]
    assert body["students"][0] == {"id": "st2", "given_name": "Leo", "family_initial": "R",
                                   "grade": 9, "enrolment": None}
    assert [t["id"] for t in body["tutors"]] == ["t1", "t2"]
    for who, code in ((other, 403), (vendor, 403), (None, 401)):
        status, problem = await get(roster, who)
        assert status == code, (who, problem)
    status, problem = await get(f"{server.url}/api/scheduling/schools/hs/roster?offer=", DISTRICT)
    assert (status, problem["code"], problem["field"]) == (400, "invalid_payload", "offer")
    assert (await get(outbox, DISTRICT))[0] == 200
    assert (await get(outbox, DESIGNEE))[0] == 403
    async with ctx.engine.connect() as conn:
        actions = (await conn.execute(
            tables.tables["audit_log"].select())).mappings().all()
    assert [(a["actor"], a["action"]) for a in actions] == [
        ("des-hs", "scheduler.roster"), ("dist-1", "outbox.read")]


async def test_the_desk_shows_once_the_programme_offers_are_in(browser: Any, world: Any) -> None:
    """Someone who clicks "Show students" as soon as the desk appears has an offer to pick:
    the desk stays hidden until the offers are loaded (held back 1 s here, as a slow
    server would; before, the desk showed at once and such a click found no offer)."""
    server, _ctx = world
    context = await context_of(browser, server, DESIGNEE)

    async def slow(route: Any) -> None:
        await asyncio.sleep(1.0)
        await route.continue_()

    await context.route(re.compile(r".*/offers$"), slow)
    watch = Watch()
    page = await open_page(context, server.url + "/staff/scheduling", watch)
    await page.wait_for_selector("#desk:not([hidden])")
    assert await page.locator("#pick-offer option").count() >= 1
    await page.click("text=Show students")
    await page.wait_for_selector("#work:not([hidden])")
    assert_clean(watch)
    await context.close()
