"""How long the staff statistics take over a year of traffic (SQLite).

``python -m bench.stats [SESSIONS]`` seeds a fresh SQLite file with a deterministic
synthetic school year: SESSIONS accepted requests (default 103,315, the district's 2023-24
count) from 25,623 students, plus give-ups (about 8 %), unmet requests (about 3 %), a
roster of 409,119 students with SWD/EL/RFEP flags in the district's proportions, and 457
schools in four regions. It then times each ``/api/stats`` query over the whole year and
over one school, and replaces only the "## Staff statistics" section of bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.results import write_section
from broker import stats, stats_trends
from broker.db.engine import create_engine
from broker.db.models import help_requests, schools, students, tutoring_sessions
from broker.migrate import migrate
from broker.settings import Settings

SECTION = "## Staff statistics"
SESSIONS = 103_315
STUDENTS = 25_623
ENROLLED = 409_119
#: Share of enrolled students in each group (the district's 2023-24 figures).
GROUP_SHARE = {"SWD": 60_975 / ENROLLED, "EL": 73_907 / ENROLLED, "RFEP": 106_398 / ENROLLED}
REGIONS = ("East", "North", "South", "West")
YEAR_START = dt.datetime(2023, 8, 1, 7, tzinfo=dt.UTC)
CHUNK = 10_000
GOAL_SECONDS = 2.0


def _groups(rng: random.Random) -> str:
    return ",".join(sorted(g for g, share in GROUP_SHARE.items() if rng.random() < share))


def _schools() -> list[dict[str, Any]]:
    out = []
    for i in range(457):
        elementary = i % 3 != 0
        out.append(
            {
                "id": f"s{i:03d}",
                "name": f"School {i}",
                "region": REGIONS[i % 4],
                "low_grade": 0 if elementary else 6,
                "high_grade": 5 if elementary else 12,
                "kind": "elementary" if elementary else "high",
            }
        )
    return out


def _history(sessions: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[Any]]:
    """(help_requests rows, tutoring_sessions rows) for one synthetic year."""
    kids = [(f"p{i}", f"s{rng.randrange(457):03d}", _groups(rng)) for i in range(STUDENTS)]
    requests: list[dict[str, Any]] = []
    sessions_rows: list[dict[str, Any]] = []
    n = -1
    while len(sessions_rows) < sessions:
        n += 1
        # Everyone asks at least once; then anyone may ask again.
        student, school, groups = kids[n] if n < STUDENTS else rng.choice(kids)
        elementary = int(school[1:]) % 3 != 0
        vendor = "paper" if elementary else "tutor"
        # Afternoons and evenings, Pacific time, weekdays heavier.
        day = rng.randrange(365)
        hour = rng.choice((15, 16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 21, 22, 23))
        when = YEAR_START + dt.timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
        row: dict[str, Any] = {
            "id": f"r{n}",
            "student": student,
            "school_id": school,
            "school_kind": "elementary" if elementary else "high",
            "grade": rng.randrange(0, 6) if elementary else rng.randrange(6, 13),
            "groups": groups,
            "language": "es" if rng.random() < 0.12 else "en",
            "subject": "math",
            "vendor": vendor,
            "queue": f"{vendor}:en",
            "overflow": False,
            "first_choice_unmet": None,
            "unmet_reason": None,
            "unmet_detail": None,
            "priority": 0,
            "status": "ended",
            "requested_at": when,
            "queued_at": when,
            "accepted_at": None,
            "closed_at": None,
            "close_reason": None,
            "is_test": False,
        }
        kind = n % 100
        if kind < 3:
            row.update(status="unmet", unmet_reason="language_unsupported", language="zh",
                       vendor=None, queue=None, queued_at=None, closed_at=when)
        elif kind < 11:
            row.update(status=("cancelled", "abandoned", "expired")[n % 3],
                       closed_at=when + dt.timedelta(seconds=rng.expovariate(1 / 120)))
        else:
            accepted = when + dt.timedelta(seconds=rng.expovariate(1 / 45))
            ended = accepted + dt.timedelta(seconds=300 + rng.expovariate(1 / 900))
            row.update(accepted_at=accepted, closed_at=ended, close_reason="tutor")
            sessions_rows.append(
                {
                    "id": f"x{n}", "request_id": row["id"], "student": student,
                    "vendor": vendor, "tutor_id": f"{vendor}-{rng.randrange(400)}",
                    "language": row["language"], "subject": "math", "queued_at": when,
                    "accepted_at": accepted, "ended_at": ended, "end_reason": "tutor",
                }
            )
        requests.append(row)
    return requests, sessions_rows


def _roster(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"sourced_id": f"e{i}", "sis_id": f"{10_000_000 + i}",
         "school_id": f"s{rng.randrange(457):03d}",
         "grade": rng.randrange(13), "groups": _groups(rng)}
        for i in range(ENROLLED)
    ]


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        async with engine.begin() as conn:
            await conn.execute(table.insert(), rows[i : i + CHUNK])


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await fn()
    return round(time.perf_counter() - began, 3)


async def bench(sessions: int, url: str) -> dict[str, Any]:
    rng = random.Random(2024)
    await migrate(Settings(database_url=url))
    engine = create_engine(url)
    try:
        began = time.perf_counter()
        requests, sessions_rows = _history(sessions, rng)
        await _insert(engine, schools, _schools())
        await _insert(engine, help_requests, requests)
        await _insert(engine, tutoring_sessions, sessions_rows)
        await _insert(engine, students, _roster(rng))
        seed_s = round(time.perf_counter() - began, 1)
        year = stats.Filters()
        school = stats.Filters(school_id="s001")
        queries: dict[str, Callable[[stats.Filters], Awaitable[Any]]] = {
            "summary": lambda f: stats.summary(engine, f),
            "waits": lambda f: stats.waits(engine, f),
            "service-level": lambda f: stats.service_level(engine, f),
            "heatmap": lambda f: stats.heatmap(engine, f),
            "unmet": lambda f: stats.unmet(engine, f),
            "groups": lambda f: stats.group_usage(engine, f),
            "vendors": lambda f: stats.vendor_capacity(engine, f),
            "trends": lambda f: stats_trends.trends(engine, f),
        }
        timings = {}
        for name, query in queries.items():
            await query(year)  # warm the page cache once
            timings[name] = {
                "year_s": await _timed(lambda q=query: q(year)),
                "school_s": await _timed(lambda q=query: q(school)),
            }
        total = await stats.summary(engine, year)
        groups = await stats.group_usage(engine, year)
    finally:
        await engine.dispose()
    return {
        "sessions": total["sessions"],
        "requests": total["requests"],
        "students_served": total["students_served"],
        "sessions_per_student": total["sessions_per_student"],
        "groups": groups["groups"],
        "seed_s": seed_s,
        "timings": timings,
    }


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        f"`python -m bench.stats {r['sessions']}` ({dt.date.today()}, Python "
        f"{platform.python_version()}, SQLite, 2 CPUs shared with other work). A synthetic "
        f"year: {r['requests']:,} requests, {r['sessions']:,} sessions from "
        f"{r['students_served']:,} students ({r['sessions_per_student']} each), a roster of "
        f"{ENROLLED:,}; seeding took {r['seed_s']} s. Each query timed once warm, over the "
        f"whole year and over one school. Goal: each under {GOAL_SECONDS} s for the year.",
        "",
        "| endpoint | whole year s | one school s | goal met |",
        "|---|---|---|---|",
    ]
    for name, t in r["timings"].items():
        ok = "yes" if t["year_s"] < GOAL_SECONDS else "NO"
        lines.append(f"| {name} | {t['year_s']} | {t['school_s']} | {ok} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    sessions = int(argv[1]) if len(argv) > 1 else SESSIONS
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'stats.db'}"
        results = asyncio.run(bench(sessions, url))
    print(json.dumps(results, indent=2))
    write_section(SECTION, _markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
