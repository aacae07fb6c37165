"""Benchmark: pages and the scripts' catalogs in every locale cost what English costs, and
the widget's first load stays small (issue 13).

``python -m bench.i18n [--quick] [--no-write] [--results PATH]``

The server's own work per request, timed in this process (so the network's cost of carrying
a longer catalog is not counted):

* **render**: the widget's page rendered from its template in that locale (what
  ``GET /widget?lang=<locale>`` does);
* **catalog**: the handler of ``GET /i18n/<locale>.json`` (the scripts' catalog, gzipped as
  browsers ask);

each locale and English alternating in rounds, p50 per request and its ratio to English of
the same run (goal: every locale within 10% of English). Then Chromium opens the widget
with a student's token in each locale and sums what it transferred (compressed, as on the
wire) for scripts, styles and the catalog (goal: under 150 KB). Writes the "## Languages"
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import RESULTS, write_section
from i18n import available_locales, html_lang
from tests.broker.conftest import prepare_database
from tests.broker.harness import SECRET
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Broker

SECTION = "## Languages"
GOAL_RATIO = 1.10
GOAL_KB = 150


def shipped() -> list[str]:
    return ["en", *sorted(name for name in available_locales() if name != "en")]


def serve_costs(locales: list[str], n: int, rounds: int) -> dict[str, Any]:
    """p50 seconds of the server's own work per request, per locale: rendering the widget's
    page (``render_page``, as ``GET /widget?lang=`` does) and answering
    ``GET /i18n/<locale>.json`` (the handler, gzipped as browsers ask), timed in this
    process so the network's cost of carrying more bytes is not counted."""
    from aiohttp.test_utils import make_mocked_request

    from web.i18n_js import catalog_json
    from web.render import render_page

    # the widget's configuration as web.pages.widget builds it, for a student with a token
    config = {"token": "t" * 200, "given_name": "Ana", "catalog_url": "/api/catalog",
              "subjects": [{"id": f"s{i}", "label": f"Subject {i}"} for i in range(24)],
              "languages": ["en", "es", "zh", "fr", "ko", "hy", "vi", "tl", "ru", "ar", "fa"],
              "max_chars": 2000}

    def once(loc: str) -> tuple[float, float]:
        tag = html_lang(loc)
        request = make_mocked_request(
            "GET", f"/i18n/{tag}.json", headers={"Accept-Encoding": "gzip"},
            match_info={"locale": tag},
        )
        t0 = time.perf_counter()
        render_page("widget.html", loc, config=dict(config), frame_ancestors="'self'")
        t1 = time.perf_counter()
        _run(catalog_json(request))
        return t1 - t0, time.perf_counter() - t1

    samples: dict[str, dict[str, list[float]]] = {
        loc: {"render": [], "catalog": []} for loc in locales
    }
    for loc in locales:  # warm-up: templates compiled, catalogs read and cached
        for _ in range(50):
            once(loc)
    for r in range(rounds):
        for loc in locales if r % 2 == 0 else list(reversed(locales)):
            for _ in range(n):
                render_s, catalog_s = once(loc)
                samples[loc]["render"].append(render_s)
                samples[loc]["catalog"].append(catalog_s)
    return {
        loc: {kind: statistics.median(values) for kind, values in kinds.items()}
        for loc, kinds in samples.items()
    }


def _run(coro: Any) -> Any:
    """Drive a coroutine that never awaits anything pending (the handler's work is synchronous)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the handler awaited something")


async def first_load_bytes(server: Broker, locales: list[str]) -> dict[str, dict[str, int]]:
    """Bytes Chromium transferred (encoded body + headers) opening the widget, per locale:
    scripts, styles and the catalog."""
    from playwright.async_api import async_playwright

    out: dict[str, dict[str, int]] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for loc in locales:
                tag = html_lang(loc)
                token = server.student_token("bench-i18n", "elem", 3, locale=tag)
                ctx = await browser.new_context(locale=tag)
                page = await ctx.new_page()
                responses: list[Any] = []
                page.on("response", lambda response, seen=responses: seen.append(response))
                await page.goto(f"{server.url}/widget?lang={tag}#token={token}")
                await page.wait_for_load_state("networkidle")
                sums = {"scripts": 0, "styles": 0, "catalog": 0}
                for response in responses:
                    kind = response.request.resource_type
                    url = response.url
                    sizes = await response.request.sizes()
                    size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
                    if "/i18n/" in url and url.endswith(".json"):
                        sums["catalog"] += size
                    elif kind == "script":
                        sums["scripts"] += size
                    elif kind == "stylesheet":
                        sums["styles"] += size
                out[loc] = sums
                await ctx.close()
        finally:
            await browser.close()
    return out


async def run(quick: bool) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    tmp = Path(tempfile.mkdtemp(prefix="hh-bench-i18n-"))
    url = f"sqlite+aiosqlite:///{tmp}/i18n.db"
    await prepare_database(url)
    from broker.settings import Settings

    settings = Settings(database_url=url, secret_key=SECRET, pseudonym_secret=SECRET,
                        log_level="WARNING")
    server = await Broker(settings).start()
    try:
        locales = shipped()
        if quick:  # the smoke run: English, one right-to-left and one CJK locale
            locales = [loc for loc in locales if loc in ("en", "ar", "zh_Hant")]
        costs = serve_costs(locales, 50 if quick else 500, 1 if quick else 5)
        sizes = await first_load_bytes(server, locales)
    finally:
        await server.stop()
    return costs, sizes


def report(costs: dict[str, Any], sizes: dict[str, dict[str, int]], quick: bool) -> str:
    en = costs["en"]
    day = datetime.now(UTC).date().isoformat()
    rows = []
    worst = 0.0
    for loc, cost in costs.items():
        render_ratio = cost["render"] / en["render"]
        catalog_ratio = cost["catalog"] / en["catalog"]
        worst = max(worst, render_ratio, catalog_ratio)
        total = sum(sizes[loc].values())
        rows.append(
            f"| {html_lang(loc)} | {cost['render'] * 1e3:.2f} ms ({render_ratio:.2f}x) | "
            f"{cost['catalog'] * 1e3:.2f} ms ({catalog_ratio:.2f}x) | "
            f"{sizes[loc]['scripts'] / 1024:.1f} + {sizes[loc]['styles'] / 1024:.1f} + "
            f"{sizes[loc]['catalog'] / 1024:.1f} = {total / 1024:.1f} KB |"
        )
    biggest = max(sum(s.values()) for s in sizes.values()) / 1024
    lines = [
        SECTION,
        "",
        f"`python -m bench.i18n{' --quick' if quick else ''}` ({day}, Python "
        f"{platform.python_version()}, nproc {os.cpu_count()}). One broker process (SQLite) on "
        "127.0.0.1. The server's own work per request, timed in process: rendering the "
        "widget's page in that locale (what `GET /widget?lang=` does) and the handler of "
        "`GET /i18n/<locale>.json` (the scripts' catalog, gzipped as browsers ask), every "
        "locale and English alternating, p50 per request. Then Chromium "
        "opens the widget with a student's token in each locale; bytes are what it "
        "transferred (encoded bodies + headers) for scripts, styles and the catalog.",
        "",
        "| locale | widget page p50 (vs en) | scripts' catalog p50 (vs en) | first load: "
        "scripts + styles + catalog |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Worst ratio to English: {worst:.2f}x (goal <= {GOAL_RATIO:.2f}x: "
        f"{'met' if worst <= GOAL_RATIO else 'NOT met'}). Largest first load: "
        f"{biggest:.1f} KB (goal < {GOAL_KB} KB: {'met' if biggest < GOAL_KB else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.i18n", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="write to this file")
    args = parser.parse_args(argv)
    costs, sizes = asyncio.run(run(args.quick))
    body = report(costs, sizes, args.quick)
    print(body)
    if not (args.no_write or args.quick):
        write_section(SECTION, body, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
