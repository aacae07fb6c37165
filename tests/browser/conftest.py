"""Browser tests: a real broker on 127.0.0.1 and Debian's Chromium driven by Playwright.

Skipped (with the reason) when ``/usr/bin/chromium`` or Playwright is missing, unless
``HH_REQUIRE_SERVICES=1``, which turns the skip into a failure. Never ``playwright install``:
the browser is the system's.

Every page a test opens goes through :func:`open_page`, which records any request to a host
other than 127.0.0.1 (none is allowed), every JavaScript ``alert``/``confirm`` (none is
allowed: chat text with ``<script>`` must stay text), uncaught page errors and console
errors; :func:`assert_clean` checks them at the end of the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker import tokens
from broker.settings import Settings
from tests.broker.conftest import prepare_database
from tests.broker.harness import SECRET, Server, student

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
AXE_URL = "/static/vendor/axe-core-4.11.1/axe.min.js"


def _need_browser() -> None:
    reasons = []
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        reasons.append(f"{CHROMIUM} is not installed")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        reasons.append("playwright (Python) is not installed")
    if reasons:
        message = "; ".join(reasons)
        if os.environ.get("HH_REQUIRE_SERVICES") == "1":
            pytest.fail(f"HH_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


class Broker(Server):
    """A harness broker process (real TCP port, the whole app) plus what the browser tests
    hand to pages: student tokens and a staff sign-in cookie."""

    def student_token(
        self, pseudonym: str, school_id: str | None, grade: int | None, **claims: Any
    ) -> str:
        return tokens.issue(SECRET, student(pseudonym, school_id, grade, **claims))

    def staff_cookie(self, scope: str = "district") -> dict[str, Any]:
        """The sign-in cookie (``web.auth``'s ``hh_session``) of a district staff member,
        as an LTI administrator launch or /login would set it."""
        identity = tokens.Identity("staff", "staff-1", {"scope": scope, "scope_id": None})
        return {
            "name": "hh_session",
            "value": tokens.issue(SECRET, identity),
            "url": self.url,
            "httpOnly": True,
            "sameSite": "Lax",
        }


@pytest.fixture
async def broker_settings(sqlite_url: str) -> Settings:
    await prepare_database(sqlite_url)
    return Settings(
        database_url=sqlite_url,
        secret_key=SECRET,
        pseudonym_secret=SECRET,
        demo=True,
        grace_seconds=60.0,
    )


@pytest.fixture
async def live_broker(broker_settings: Settings) -> AsyncIterator[Broker]:
    server = await Broker(broker_settings).start()
    yield server
    await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Watch:
    """What a page did that a test must never see."""

    external: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def open_page(context: Any, url: str, watch: Watch) -> Any:
    page = await context.new_page()

    def on_request(request: Any) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("data:", "blob:", "about:")):
            return
        if host != "127.0.0.1":
            watch.external.append(request.url)

    async def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_response(response: Any) -> None:
        if response.status >= 400:
            watch.failed.append(f"{response.status} {urlsplit(response.url).path}")

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            watch.errors.append(f"console: {message.text}")

    page.on("request", on_request)
    page.on("dialog", on_dialog)
    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    await page.goto(url)
    return page


# Expected refusals: /api/token answers 401 to a browser nobody signed in (the tutor console
# then offers sign-in).
EXPECTED_FAILURES = frozenset({"401 /api/token"})


def assert_clean(watch: Watch, allow_errors: tuple[str, ...] = ()) -> None:
    assert watch.external == [], f"requests left 127.0.0.1: {watch.external}"
    unexpected = [f for f in watch.failed if f not in EXPECTED_FAILURES]
    assert unexpected == [], f"failed requests: {unexpected}"
    assert watch.dialogs == [], f"a dialog fired: {watch.dialogs}"
    errors = [e for e in watch.errors if not any(a in e for a in allow_errors)]
    assert errors == [], f"page errors: {errors}"


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.add_script_tag(url=AXE_URL)
    found = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
