"""Benchmark: routing decisions per second on one core (goal: at least 200,000/s).

``python -m bench.routing [--requests N] [--repeats R] [--skip-roster] [--no-write]``

A synthetic district of 457 schools with the district's mix of spans (and options and
virtual academy schools), and a realistic mix of requests: most from rostered students at
a known school with a grade in its span, some with the school unknown, a few with invalid
grades or tags; languages weighted towards English and Spanish with regional subtags;
subjects across the district list. The process is pinned to one CPU; each figure is the
median of several timed passes after a warm-up pass, next to a baseline measured in the
same process (a plain dict lookup per request over the same list), reported as a ratio.

Also times the decision with the memo bypassed (every request takes the full path), and
runs ``bench.roster_import.run(400_000)`` when that module exists. Replaces only the
"## Routing" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import routing
from bench.results import write_section
from routing.catalog import Catalog
from routing.decision import HelpRequest, Routed, route
from routing.schools import School, SchoolDirectory, SchoolKind

SECTION = "## Routing"
GOAL_PER_S = 200_000
ROSTER_STUDENTS = 400_000
REGIONS = [("East", 210), ("North", 231), ("South", 179), ("West", 145)]
# (low, high, kind, weight): the district's mix of school spans.
SPANS = [
    (0, 5, SchoolKind.ELEMENTARY, 50), (-1, 5, SchoolKind.ELEMENTARY, 8),
    (0, 6, SchoolKind.ELEMENTARY, 4), (0, 8, SchoolKind.SPAN, 8),
    (6, 8, SchoolKind.MIDDLE, 14), (9, 12, SchoolKind.HIGH, 10), (0, 12, SchoolKind.SPAN, 2),
    (6, 12, SchoolKind.SPAN, 3), (8, 12, SchoolKind.SPAN, 1), (9, 12, SchoolKind.OPTIONS, 3),
    (0, 12, SchoolKind.VIRTUAL_ACADEMY, 1),
]
LANGUAGES = [("en", 40), ("en-US", 30), ("es", 10), ("es-MX", 10), ("es-US", 2), ("zh", 1),
             ("zh-Hans-CN", 1), ("fr", 1), ("fr-CA", 1), ("ko", 1), ("vi", 1), ("hy", 1),
             ("not a tag", 1)]


def district(rng: random.Random, schools: int = 457) -> SchoolDirectory:
    """``schools`` schools over the four regions with the span mix above."""
    regions = [r for r, n in REGIONS for _ in range(n)]
    picks = rng.choices(SPANS, weights=[s[3] for s in SPANS], k=schools)
    return SchoolDirectory({
        f"sch-{i:04d}": School(f"sch-{i:04d}", f"School {i}", rng.choice(regions), lo, hi, kind)
        for i, (lo, hi, kind, _w) in enumerate(picks)
    })


def requests(rng: random.Random, directory: SchoolDirectory, subjects: list[str],
             n: int) -> list[HelpRequest]:
    """A realistic mix: 92% known school, 5% no school, 2% unknown id, 1% garbage grade."""
    schools = list(directory)
    langs, weights = zip(*LANGUAGES, strict=True)
    start = datetime(2024, 1, 8, tzinfo=UTC)
    out = []
    for i in range(n):
        roll = rng.random()
        school = rng.choice(schools)
        grade: object = str(rng.randint(max(school.low_grade, 0), school.high_grade))
        school_id: str | None = school.id
        if roll < 0.05:
            school_id = None
        elif roll < 0.07:
            school_id = f"unknown-{i % 50}"
        elif roll < 0.08:
            grade = rng.choice(["UG", "13", "", "Grade 4"])
        out.append(HelpRequest(
            school_id, grade, rng.choices(langs, weights)[0], rng.choice(subjects),
            start + timedelta(minutes=rng.randint(0, 7 * 24 * 60)),
        ))
    return out


def _pass(fn: Any, items: list[HelpRequest]) -> float:
    started = time.perf_counter()
    fn(items)
    return time.perf_counter() - started


def measure(catalog: Catalog, directory: SchoolDirectory, reqs: list[HelpRequest],
            repeats: int) -> dict[str, Any]:
    """Median decisions/s (memo on, memo bypassed) and a same-process dict-lookup baseline."""
    table = {s.id: s for s in directory}

    def routing_pass(items: list[HelpRequest]) -> None:
        for r in items:
            route(r, catalog, directory)

    def baseline_pass(items: list[HelpRequest]) -> None:
        get = table.get
        for r in items:
            get(r.school_id)  # type: ignore[arg-type]

    uncached = catalog.with_overflow(catalog.overflow)
    uncached.always_open = False  # every on-demand vendor is 24/7: same decisions, no memo

    def uncached_pass(items: list[HelpRequest]) -> None:
        for r in items:
            route(r, uncached, directory)

    n = len(reqs)
    figures: dict[str, Any] = {"requests": n, "repeats": repeats}
    for name, fn in (("baseline", baseline_pass), ("routing", routing_pass),
                     ("uncached", uncached_pass)):
        _pass(fn, reqs)  # warm-up (fills the memo and the tag/grade caches)
        times = [_pass(fn, reqs) for _ in range(repeats)]
        figures[f"{name}_per_s"] = round(n / statistics.median(times))
    figures["ratio"] = round(figures["routing_per_s"] / figures["baseline_per_s"], 3)
    decisions = [route(r, catalog, directory) for r in reqs]
    figures["routed_share"] = round(sum(isinstance(d, Routed) for d in decisions) / n, 3)
    return figures


def roster_figures() -> dict[str, Any] | None:
    """``bench.roster_import.run(400_000)`` if that module exists, else ``None``."""
    try:
        from bench import roster_import
    except ImportError:
        return None
    run = getattr(roster_import, "run", None)
    if run is None:
        return None
    result: dict[str, Any] = run(ROSTER_STUDENTS)
    return result


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def markdown(fig: dict[str, Any], roster: dict[str, Any] | None, pinned: str) -> str:
    ok = fig["routing_per_s"] >= GOAL_PER_S
    lines = [
        SECTION,
        "",
        f"`python -m bench.routing` ({time.strftime('%Y-%m-%d')}, Python "
        f"{platform.python_version()}, nproc {os.cpu_count()} shared with other work, "
        f"{pinned}). {fig['requests']:,} requests over a synthetic 457-school district "
        f"(district span mix; 92% known school, 5% no school, 2% unknown id, 1% bad grade; "
        f"{fig['routed_share']:.0%} routed); median of {fig['repeats']} passes after a "
        f"warm-up. Goal: at least {GOAL_PER_S:,} decisions/s on one core.",
        "",
        "| measure | per second | vs baseline | goal met |",
        "|---|---|---|---|",
        f"| `route()` (memo warm) | {fig['routing_per_s']:,} | {fig['ratio']} | "
        f"{'yes' if ok else 'NO'} |",
        f"| `route()` with the memo bypassed | {fig['uncached_per_s']:,} | "
        f"{round(fig['uncached_per_s'] / fig['baseline_per_s'], 3)} | - |",
        f"| baseline: one dict lookup per request | {fig['baseline_per_s']:,} | 1.0 | - |",
        "",
    ]
    if roster is None:
        lines.append("Roster import (400,000 students): pending (bench/roster_import.py has "
                     "no `run(students)` yet).")
    else:
        lines.append(f"Roster import, `bench.roster_import.run({roster.get('students'):,})`:")
        lines.append("")
        lines.append("| database | total s | peak RSS MiB |")
        lines.append("|---|---|---|")
        for db in ("sqlite", "postgres"):
            r = roster.get(db)
            lines.append(f"| {db} | {r['total_s']} | {r['peak_rss_mib']} |" if r
                         else f"| {db} | not reachable | - |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-roster", action="store_true", help="do not run the roster bench")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    pinned = pin_to_one_core()
    rng = random.Random(20240108)
    catalog = Catalog.from_toml(
        (Path(routing.__file__).parent / "data" / "catalog.toml").read_text(encoding="utf-8")
    )
    directory = district(rng)
    reqs = requests(rng, directory, [sid for sid, _ in catalog.subjects], args.requests)
    fig = measure(catalog, directory, reqs, args.repeats)
    for key, value in fig.items():
        print(f"{key}: {value}")
    roster = None if args.skip_roster else roster_figures()
    if roster is None:
        print("roster import: pending" if not args.skip_roster else "roster import: skipped")
    else:
        print(f"roster import: {roster}")
    if not args.no_write:
        write_section(SECTION, markdown(fig, roster, pinned))
    return 0 if fig["routing_per_s"] >= GOAL_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
