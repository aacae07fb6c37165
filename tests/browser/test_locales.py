"""Every page in every shipped locale, in Chromium (issue 13, "checks that keep it true").

One broker, started with ``HH_PSEUDO_LOCALE=1`` (the translator reads it at call time), and
one browser. For each page a person sees (the front door, the widget opened outside a
launch, the student widget's start, waiting, unmet and chat views, the tutor console with a
chat open, the staff dashboard with its Safety section, sign-in, an LTI error, scheduling,
the outbox, a parent's link and its error page):

* in the pseudo-locale ``en-XA`` every visible text node and every ``placeholder``,
  ``aria-label``, ``title`` and ``alt`` must come from the catalogs (wrapped in ⟦ ⟧); what
  may stay plain is listed explicitly: what ``Intl`` writes (numbers, times, units, month,
  day and language names), the language menu's autonyms, and each page's own data (names,
  pseudonyms, chat text the test typed);
* in ``en-XA`` (about 40% longer) and Arabic (right to left), at 360×740 and 1280×800, the
  page never scrolls sideways and no visible button, label, heading or tab clips its text;
* in every locale (each ``i18n/locales/*`` with ``LC_MESSAGES``, plus ``en-XA``) the page
  carries the right ``lang`` and ``dir`` and a screenshot is written to
  ``test-artifacts/screenshots/``; in English, ``en-XA`` and Arabic it is axe-clean (no
  serious or critical violation; a translation changes text, not structure);
* the language menu reloads the page in the chosen language, the ``hh_lang`` cookie keeps
  it on the next visit over Accept-Language and the LTI launch's locale, and the widget
  keeps the student's token even when it lives only in the URL fragment (storage blocked).

The app's clock is fixed (the scheduling pages' world), so nothing depends on wall time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker import tokens
from broker.identity import tutor_identity
from i18n import DEFAULT_LOCALE, LOCALES_DIR, direction, html_lang
from tests.broker.harness import SECRET
from tests.browser.conftest import Watch, assert_clean, axe_violations, open_page
from tests.browser.test_safety import contexts
from tests.browser.test_scheduling_pages import (
    DESIGNEE,
    DISTRICT,
    _booked_group,
    _parent_link,
    context_of,
    world,
)
from tests.scheduler.conftest import forged

pytestmark = pytest.mark.browser

# The fixtures reused: the scheduling pages' world (a fixed clock, offers, tutors, students)
# and the contexts closed before its broker stops.
__all__ = ["contexts", "world"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SCREENSHOTS = os.environ.get("HH_TEST_SCREENSHOTS", "1") != "0"
PSEUDO = "en-XA"
SHIPPED = sorted(
    {DEFAULT_LOCALE}
    | {p.name for p in LOCALES_DIR.iterdir() if (p / "LC_MESSAGES").is_dir()}
)
LOCALES = [html_lang(name) for name in SHIPPED] + [PSEUDO]
CHECKED = (PSEUDO, "ar")  # the long and the right-to-left locale: layout checked
# axe checks a page's structure (names, roles, contrast, landmarks), which a translation does
# not change; a missing translation is caught by tests/test_catalogs_complete.py. So axe runs
# in English, the longest locale and the right-to-left one, not in all thirteen (it was most
# of this test's two minutes of CI).
AXE_CHECKED = (html_lang(DEFAULT_LOCALE), *CHECKED)
SIZES = ((360, 740), (1280, 800))
TUTOR_NAME = "Ana Tutor"
STUDENT_TEXT = "how do I add 3/4 and 1/6?"
TUTOR_TEXT = "Hello! Let us look at it together."


def expected_dir(tag: str) -> str:
    return "ltr" if tag == PSEUDO else direction(tag.replace("-", "_"))


# -- what the pages show that did not come from the catalogs ---------------------------------
UNTRANSLATED_JS = r"""
(allowed) => {
  const lang = document.documentElement.lang;
  // Words Intl writes for this page (numbers' units, times, dates, zones, language names):
  // formatting, not text a translator can reach.
  const vocab = new Set();
  const add = (s) => {
    for (const w of String(s).split(/[^\p{L}]+/u)) if (w) vocab.add(w.toLowerCase());
  };
  const codes = ["en", "es", "zh", "zh-Hans", "zh-Hant", "fr", "ko", "hy", "vi", "tl", "fil",
                 "ru", "ar", "fa", "pt", "ht", "so", "ja", "de", "it", "hi", "ur", "bn", "pa",
                 "tr", "pl", "uk", "km", "lo", "hmn", "sm", "to", "ti", "am"];
  const date = (l, options, d) => add(new Intl.DateTimeFormat(l, options).format(d));
  for (const l of [lang, "en"]) {
    for (const unit of ["second", "minute", "hour", "day", "week"])
      for (const unitDisplay of ["long", "short", "narrow"])
        for (const n of [0, 1, 2, 5, 1.5])
          add(new Intl.NumberFormat(l, {style: "unit", unit, unitDisplay}).format(n));
    for (const f of ["long", "short"]) {
      for (let m = 0; m < 12; m++) date(l, {month: f}, new Date(2026, m, 15));
      for (let d = 1; d <= 7; d++) date(l, {weekday: f}, new Date(2026, 10, d));
    }
    for (const h of [3, 15]) date(l, {hour: "numeric"}, new Date(2026, 10, 2, h));
    for (const timeZone of ["America/Los_Angeles", "UTC"])
      for (const timeZoneName of ["short", "long", "shortGeneric", "longGeneric"])
        for (const m of [0, 6]) date(l, {timeZone, timeZoneName}, new Date(2026, m, 1));
    for (const type of ["disjunction", "conjunction"])
      add(new Intl.ListFormat(l, {style: "long", type}).format(["a", "b", "c"]));
    const names = new Intl.DisplayNames([l], {type: "language"});
    for (const c of codes) add(names.of(c));
  }
  const keep = allowed.slice().sort((a, b) => b.length - a.length);
  const plain = (text) => {
    let rest = text, before;
    do {  // catalog text, nested too
      before = rest;
      rest = rest.replace(/⟦[^⟦⟧]*⟧/g, " ");
    } while (rest !== before);
    for (const a of keep) rest = rest.split(a).join(" ");
    const words = rest.match(/\p{Script=Latin}+/gu) || [];
    return words.filter((w) => !vocab.has(w.toLowerCase()));
  };
  // Not the page's text: code, explicitly skipped data, and text marked as another
  // language (the language menus' autonyms, an outbox message in its recipient's language).
  const skip = "script, style, template, noscript, [data-i18n-skip], #lang-menu";
  const root = document.documentElement;
  const skipped = (el) => !el || el.closest(skip) || (el.closest("[lang]") || root) !== root;
  const shown = (el) => {
    const select = el.closest("select");
    if (select) return select.checkVisibility({visibilityProperty: true});
    if (el.closest(".visually-hidden")) return true;  // read by screen readers
    return el.checkVisibility({visibilityProperty: true, opacityProperty: true});
  };
  const named = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (typeof e.className === "string" && e.className.trim()
       ? "." + e.className.trim().split(/\s+/).join(".") : "");
  const where = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement)
      parts.unshift(named(e));
    return parts.join(" > ");
  };
  const misses = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    const text = node.nodeValue.trim();
    if (!text || skipped(el) || !shown(el)) continue;
    if (plain(text).length) misses.push(`${where(el)}: ${JSON.stringify(text)}`);
  }
  const attributes = ["placeholder", "aria-label", "title", "alt"];
  for (const el of document.body.querySelectorAll("[placeholder], [aria-label], [title], [alt]")) {
    if (skipped(el) || !(el.checkVisibility() || el.closest(".visually-hidden"))) continue;
    for (const name of attributes) {
      const value = el.getAttribute(name);
      if (value && plain(value).length)
        misses.push(`${where(el)} [${name}]: ${JSON.stringify(value)}`);
    }
  }
  if (plain(document.title).length) misses.push(`title: ${JSON.stringify(document.title)}`);
  return misses;
}
"""

LAYOUT_JS = r"""
() => {
  const out = [];
  const named = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${el.className}`;
  const sticksOut = (el) => {
    const r = el.getBoundingClientRect();
    return r.right > innerWidth + 1 || r.left < -1;
  };
  const scrolled = (el) => {  // inside a box that scrolls or clips (a table's region)
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement)
      if (getComputedStyle(e).overflowX !== "visible") return true;
    return false;
  };
  const root = document.scrollingElement;
  if (root.scrollWidth > innerWidth + 1) {
    // the outermost boxes that stick out (not those inside a box that sticks out already)
    const wide = [...document.body.querySelectorAll("*")].filter((el) =>
      el.checkVisibility() && sticksOut(el) && !el.matches(".skip-link") && !scrolled(el)
      && !(el.parentElement && el.parentElement !== document.body && sticksOut(el.parentElement)))
      .slice(0, 3).map(named);
    // else a box whose text overflows it (a long word that does not wrap)
    if (!wide.length)
      for (const el of document.body.querySelectorAll("p, li, h1, h2, h3, span, label, div"))
        if (el.scrollWidth > el.clientWidth + 1 && !el.children.length && !scrolled(el)
            && getComputedStyle(el).overflowX === "visible") wide.push(named(el));
    out.push(`page scrolls sideways: ${root.scrollWidth} > ${innerWidth} (${wide.join(", ")})`);
  }
  const range = document.createRange();
  const boxes = "button, .button, label, legend, summary, h1, h2, h3, h4, th, [role=tab], "
    + ".tag, .badge, .status-pill";
  for (const el of document.body.querySelectorAll(boxes)) {
    if (!el.checkVisibility({visibilityProperty: true})) continue;
    if (el.closest(".visually-hidden, .skip-link")) continue;
    const name = `${named(el)} ${JSON.stringify(el.innerText.trim().slice(0, 40))}`;
    const style = getComputedStyle(el);
    const clips = /hidden|clip/.test(style.overflowX + style.overflowY);
    if (clips && el.scrollWidth > el.clientWidth + 1)
      out.push(`clipped: ${name} (${el.scrollWidth} > ${el.clientWidth})`);
    range.selectNodeContents(el);
    const text = range.getBoundingClientRect(), box = el.getBoundingClientRect();
    const span = (r) => `${Math.round(r.left)}..${Math.round(r.right)}`;
    if (text.width && (text.left < box.left - 1 || text.right > box.right + 1))
      out.push(`text escapes its box: ${name} (text ${span(text)}, box ${span(box)})`);
  }
  return out;
}
"""


# Which side of the message list each bubble (mine, theirs) leans to.
BUBBLE_SIDES_JS = r"""
() => {
  const list = document.querySelector("#messages").getBoundingClientRect();
  return [".msg.from-me", ".msg.from-other"].map((sel) => {
    const r = document.querySelector(sel).getBoundingClientRect();
    return r.left - list.left > list.right - r.right ? "right" : "left";
  });
}
"""


async def untranslated(page: Any, allowed: list[str]) -> list[str]:
    return list(await page.evaluate(UNTRANSLATED_JS, allowed))


async def layout_faults(page: Any) -> list[str]:
    return list(await page.evaluate(LAYOUT_JS))


async def shot(page: Any, name: str, tag: str, width: int, full_page: bool = True) -> None:
    """A reviewer's screenshot under test-artifacts/ (none with HH_TEST_SCREENSHOTS=0, as
    in CI, which keeps no artifacts: they are most of this file's time)."""
    if not SCREENSHOTS:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = str(ARTIFACTS / f"{name}-{tag}-{width}.png")
    await page.screenshot(path=path, full_page=full_page)


def with_lang(url: str, tag: str) -> str:
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}lang={tag}"
    return f"{joined}#{fragment}" if fragment else joined


Ready = Callable[[Any], Awaitable[None]]


async def every_locale(
    page: Any, name: str, url: str, ready: Ready, allowed: list[str], problems: list[str],
    locales: list[str] = LOCALES,
) -> None:
    """Open ``url`` in each of ``locales`` (``?lang=``) and check the page: ``lang`` and
    ``dir``, axe, untranslated text (``en-XA``), overflow and clipping (``en-XA``, ``ar``),
    screenshots. Findings are appended to ``problems`` (all pages report before failing)."""
    width = page.viewport_size["width"]
    for tag in locales:
        await page.goto(with_lang(url, tag))
        await ready(page)
        lang, dir_ = await page.evaluate(
            "() => [document.documentElement.lang, document.documentElement.dir]")
        if (lang, dir_) != (tag, expected_dir(tag)):
            problems.append(f"{name} [{tag}]: lang={lang!r} dir={dir_!r}")
        if tag in AXE_CHECKED:
            for violation in await axe_violations(page):
                problems.append(f"{name} [{tag}] axe: {violation}")
        if tag == PSEUDO:
            problems.extend(f"{name} [{tag}] untranslated: {m}" for m in
                            await untranslated(page, allowed))
        if tag in CHECKED:
            for w, h in SIZES:
                await page.set_viewport_size({"width": w, "height": h})
                await page.wait_for_timeout(50)  # one layout after the resize
                problems.extend(f"{name} [{tag} {w}px] {f}" for f in await layout_faults(page))
                await shot(page, name, tag, w)
            await page.set_viewport_size({"width": width, "height": SIZES[0][1]})
        else:  # the viewport only: a reviewer's look, at a fraction of a full page's cost
            await shot(page, name, tag, width, full_page=False)


def visible(selector: str, attached: str = "") -> Ready:
    """Ready when ``selector`` is visible (and ``attached``, such as an option, exists)."""

    async def ready(page: Any) -> None:
        await page.wait_for_selector(selector, state="visible")
        if attached:
            await page.wait_for_selector(attached, state="attached")

    return ready


@pytest.fixture
def pseudo_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HH_PSEUDO_LOCALE", "1")


async def new_context(browser: Any, contexts: list[Any], width: int, **options: Any) -> Any:
    ctx = await browser.new_context(viewport={"width": width, "height": 740}, **options)
    ctx.set_default_timeout(10_000)
    contexts.append(ctx)
    return ctx


def expect_refusals(watch: Watch, *prefixes: str) -> None:
    watch.failed[:] = [f for f in watch.failed if not f.startswith(prefixes)]


@pytest.mark.slow
async def test_every_page_in_every_locale(
    pseudo_locale: None, browser: Any, world: Any, contexts: list[Any]
) -> None:
    from playwright.async_api import expect

    started = time.monotonic()
    server, ctx = world
    await _booked_group(ctx)  # the tutor's console and the outbox have something to show
    parent_token = await _parent_link(ctx)
    watch = Watch()
    problems: list[str] = []

    # -- pages nobody signs in to -------------------------------------------------------------
    anon = await new_context(browser, contexts, 360, locale="en-US")
    page = await open_page(anon, f"{server.url}/login", watch)
    await every_locale(page, "front-door", f"{server.url}/", visible("#intro-title"), [],
                       problems)
    await every_locale(page, "widget-outside", f"{server.url}/widget", visible("main"), [],
                       problems)
    await every_locale(page, "sign-in", f"{server.url}/login", visible("#username"), [], problems)
    lti = f"{server.url}/lti/login"
    await every_locale(page, "lti-error", lti, visible("main h1"), ["iss"], problems)
    parent = f"{server.url}/parent/{parent_token}"
    await every_locale(page, "parent", parent, visible("#slots input"),
                       ["Sofía", "Lucía Gómez"], problems)
    tampered = f"{server.url}/parent/{forged(parent_token)}"
    await every_locale(page, "parent-error", tampered, visible("main h1"), [], problems)
    expect_refusals(watch, "400 /lti/login", "403 /parent/", "401 /api/token")

    # -- staff: the dashboard with its Safety section, scheduling, the outbox ----------------
    staff_ctx = await context_of(browser, server, DISTRICT, viewport={"width": 1280, "height": 800})
    contexts.append(staff_ctx)
    page = await open_page(staff_ctx, f"{server.url}/staff", watch)
    await every_locale(page, "staff", f"{server.url}/staff", visible("#safety"), [], problems)
    await every_locale(page, "outbox", f"{server.url}/staff/outbox",
                       visible('#outbox tr[data-kind="booked"]'), [], problems)
    designee = await context_of(browser, server, DESIGNEE, viewport={"width": 1280, "height": 800})
    contexts.append(designee)
    page = await open_page(designee, f"{server.url}/staff/scheduling", watch)

    await every_locale(page, "scheduling", f"{server.url}/staff/scheduling",
                       visible("#desk"), ["Maya", "Leo", "Iris", "Omar", TUTOR_NAME], problems)

    # -- the widget's start and unmet views, the tutor console, waiting and chat -------------
    student_ctx = await new_context(browser, contexts, 360, locale="en-US")
    token = server.student_token("stu-ana", "hs", 10, given_name="Ana", locale="en")
    page = await open_page(student_ctx, f"{server.url}/widget#token={token}", watch)
    await every_locale(page, "widget-start", f"{server.url}/widget",
                       visible("#view-start", "#subject option[value=algebra]"), ["Ana"], problems)

    tutor_ctx = await new_context(browser, contexts, 1280, locale="en-US")
    tutor_token = tokens.issue(SECRET, tutor_identity(
        "t1", "tutorcom", ["en"], source="demo", display_name=TUTOR_NAME))
    await tutor_ctx.add_init_script(f"sessionStorage.setItem('hh_tutor_token', {tutor_token!r});")
    tutor = await open_page(tutor_ctx, f"{server.url}/tutor?lang={PSEUDO}", watch)
    await expect(tutor.locator("#console")).to_be_visible()
    await tutor.click("#status-toggle")
    await expect(tutor.locator("#status-pill, #status-label").first).not_to_be_empty()

    await page.goto(with_lang(f"{server.url}/widget", PSEUDO))
    await page.select_option("#subject", "algebra")
    await page.select_option("#language", "en")
    await page.fill("#topic", STUDENT_TEXT)
    await page.click("#ask")
    await expect(page.locator("#view-waiting")).to_be_visible()
    await expect(page.locator("#queue-position")).not_to_be_empty()
    await every_locale(page, "widget-waiting", f"{server.url}/widget",
                       visible("#view-waiting #queue-position:not(:empty)"), ["Ana"], problems)
    await every_locale(tutor, "tutor-queue", f"{server.url}/tutor", visible("#queues .queue-item"),
                       [TUTOR_NAME, STUDENT_TEXT, "Student 1", "Student"], problems)

    await tutor.goto(with_lang(f"{server.url}/tutor", PSEUDO))
    await tutor.locator("#queues .queue-item button").first.click()
    await expect(page.locator("#view-chat")).to_be_visible()
    await page.fill("#message", STUDENT_TEXT)
    await page.keyboard.press("Enter")
    box = tutor.locator("[role=tabpanel] textarea[id^=msg-]")
    await box.fill(TUTOR_TEXT)
    await box.press("Enter")
    await expect(page.locator(".msg.from-other .text")).to_have_text(TUTOR_TEXT)
    chat_data = ["Ana", TUTOR_NAME, STUDENT_TEXT, TUTOR_TEXT, "Tutor.com", "Student 1"]
    await every_locale(page, "widget-chat", f"{server.url}/widget",
                       visible("#view-chat .msg.from-other"), chat_data, problems)
    await every_locale(tutor, "tutor-chat", f"{server.url}/tutor",
                       visible("[role=tabpanel] .msg"), chat_data, problems)
    for tag, sides in ((PSEUDO, ["right", "left"]), ("ar", ["left", "right"])):
        await page.goto(with_lang(f"{server.url}/widget", tag))
        await page.wait_for_selector("#view-chat .msg.from-other")
        found = await page.evaluate(BUBBLE_SIDES_JS)
        if found != sides:
            problems.append(f"widget-chat [{tag}]: mine, theirs sit {found}, not {sides}")

    # unmet: asking anyway in a language no tutor serves for this student
    unmet_ctx = await new_context(browser, contexts, 360, locale="en-US")
    other = server.student_token("stu-bo", "hs", 10, given_name="Bo", locale="en")
    unmet = await open_page(unmet_ctx, f"{server.url}/widget?lang={PSEUDO}#token={other}", watch)
    await unmet.wait_for_selector("#subject option[value=algebra]", state="attached")
    await unmet.select_option("#subject", "algebra")
    for code in await unmet.locator("#language option").evaluate_all("os => os.map(o => o.value)"):
        await unmet.select_option("#language", code)
        if await unmet.locator("#language-note").is_visible():
            break
    else:
        problems.append("widget-unmet: every language offered is served; unmet not reached")
    await unmet.click("#ask")
    await unmet.wait_for_selector("#view-unmet:not([hidden])")
    await every_locale(unmet, "widget-unmet", f"{server.url}/widget",
                       visible("#view-start, #view-unmet"), ["Bo"], problems,
                       locales=[PSEUDO, "ar"])

    elapsed = time.monotonic() - started
    assert problems == [], f"{len(problems)} problems ({elapsed:.0f} s):\n" + "\n".join(problems)
    assert_clean(watch)


# Storage refused, as inside the LMS's iframe when the browser blocks third-party storage.
BLOCK_STORAGE = """
for (const name of ["sessionStorage", "localStorage"])
  Object.defineProperty(window, name, {
    get() { throw new DOMException("blocked", "SecurityError"); },
  });
"""


async def lang_cookie(ctx: Any) -> str | None:
    found = [c["value"] for c in await ctx.cookies() if c["name"] == "hh_lang"]
    return found[0] if found else None


async def test_the_language_menu_reloads_and_the_choice_is_kept(
    pseudo_locale: None, browser: Any, world: Any, contexts: list[Any]
) -> None:
    from playwright.async_api import expect

    server, _ = world
    watch = Watch()
    # -- a student whose token lives only in the fragment (no cookie, storage blocked) ------
    ctx = await new_context(browser, contexts, 360, locale="en-US")
    await ctx.add_init_script(BLOCK_STORAGE)
    token = server.student_token("stu-ana", "hs", 10, given_name="Ana", locale="es")
    launch = f"{server.url}/widget?launch_lang=es#token={token}"
    page = await open_page(ctx, launch, watch)
    await expect(page.locator("html")).to_have_attribute("lang", "es")  # the launch's locale
    await expect(page.locator("#view-start")).to_be_visible()
    assert "token=" not in page.url
    await page.select_option("#lang-menu", "fr")
    await page.locator("#lang-menu-form button[type=submit]").click()
    await page.wait_for_selector("html[lang=fr]")
    await expect(page.locator("#view-start")).to_be_visible()  # the token came along
    await expect(page.locator("#greeting")).to_contain_text("Ana")
    assert "token=" not in page.url, "the token stays in the address bar"
    assert await lang_cookie(ctx) == "fr"
    # the next launch says Spanish (and the browser English): the choice wins
    await page.goto(launch)
    await page.wait_for_selector("html[lang=fr]")
    await expect(page.locator("#view-start")).to_be_visible()
    # choosing the language the page is in already changes nothing
    await page.locator("#lang-menu-form button[type=submit]").click()
    await expect(page.locator("#view-start")).to_be_visible()
    assert "token=" not in page.url

    # -- a staff page in a Spanish browser: Korean chosen, kept over Accept-Language --------
    staff = await new_context(browser, contexts, 1280, locale="es-MX")
    page = await open_page(staff, f"{server.url}/login", watch)
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await page.select_option("#lang-menu", "ar")
    await page.locator("#lang-menu-form button[type=submit]").click()
    await page.wait_for_selector("html[lang=ar][dir=rtl]")
    assert await page.locator("#lang-menu").input_value() == "ar"
    await page.goto(f"{server.url}/login")
    await page.wait_for_selector("html[lang=ar][dir=rtl]")
    await page.goto(f"{server.url}/staff/outbox")  # every page: the cookie is the site's
    await page.wait_for_selector("html[lang=ar][dir=rtl]")
    expect_refusals(watch, "401 /api/token")
    assert_clean(watch)
