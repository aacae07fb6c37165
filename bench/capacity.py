"""How long staffing advice takes for every queue over a year of demand.

``python -m bench.capacity [--sessions N] [--backends sqlite,postgres] [--results PATH]
[--quick]`` seeds a fresh database per backend with bench.stats' synthetic school year
(103,315 sessions by default, about 8 % give-ups and 3 % unmet), spread over the shipped
catalog's queues (``paper`` and ``tutorcom``, English and Spanish), then times:

* **demand**: ``observed_demand`` over the whole year (the SQL read model);
* **advice, cold**: ``advise`` for every queue and half-hour of the week with a fresh
  memo (Erlang A with each queue's patience);
* **what-if**: the same advice again with one queue's headcount changed, reusing the memo
  (what a what-if screen does on each change);
* **end to end**: demand + cold advice, the figure the issue's 2 s goal is about.

Each is the median of 3 runs.

Then **the advice checked** (``--replay``, on by default): the term week of 5 February
2024 replayed with the advised headcount, tutors taking ~20 s to accept and nobody asking
twice (the queueing model's own assumptions), its service level per queue beside the
advice's; and **the year replayed** (``--quick``: a few hours): the synthetic 2023-24 year
through the live broker (``homework-help simulate --period year``: week segments on the
embedded stack in one process per CPU and one more, the advised headcount, tutors
accepting at once and students who were refused or gave up asking again, so the sessions
the district counted all happen), timed from start to the merged database; the staff usage report
(``broker.stats.group_usage``) over the replayed database against the district's table;
then the replayed database copied into a scratch PostgreSQL database and every staff
report timed there (``bench.stats.time_reports``: warm, 20 runs, p50/p95), goal p95
under 150 ms.

Only the "## Capacity" and "## Capacity: a year replayed" sections of the results file
change.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import RESULTS, write_section
from bench.scratch_db import pg_reachable, scratch_postgres
from bench.stats import SESSIONS, YEAR_START, _history, _insert
from broker.capacity.advice import Planner, Target, advise
from broker.capacity.demand import SLOTS_PER_WEEK, observed_demand
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import help_requests, tutoring_sessions
from broker.migrate import migrate
from broker.settings import Settings

SECTION = "## Capacity"
REPLAY_SECTION = "## Capacity: a year replayed"
GOAL_SECONDS = 2.0
REPLAY_GOAL_S = 15 * 60
REPORT_GOAL_P95_MS = 150.0
#: Tutors' mean reading time in the week that checks the advice (a realistic ~20 s).
CHECK_REACTION_S = 20.0
CHECK_WEEK = dt.date(2024, 2, 5)
#: The district's 2023-24 usage table (../shared/domain.md).
DISTRICT: dict[str, Any] = {"sessions": 103_315, "students": 25_623,
            "pct": {"All": 6.26, "SWD": 4.66, "EL": 3.91, "RFEP": 7.50}}
RUNS = 3
YEAR_END = YEAR_START + dt.timedelta(days=366)


def _spread(requests: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> None:
    """Move bench.stats' ``tutor`` vendor to the catalog's ``tutorcom`` and give each
    request the queue of its language, so four real queues carry demand."""
    for row in (*requests, *sessions):
        if row.get("vendor") == "tutor":
            row["vendor"] = "tutorcom"
            if "tutor_id" in row:
                row["tutor_id"] = row["tutor_id"].replace("tutor-", "tutorcom-")
    for row in requests:
        if row["queue"] is not None:
            row["queue"] = f"{row['vendor']}:{row['language']}"


def _median(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(RUNS):
        began = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 3), out


async def _bench_one(url: str, sessions: int) -> dict[str, Any]:
    await migrate(Settings(database_url=url))
    engine = create_engine(url)
    catalog = load_catalog()
    try:
        requests, sessions_rows = _history(sessions, random.Random(2024))
        _spread(requests, sessions_rows)  # bench.stats._history filled the read model
        await _insert(engine, help_requests, requests)
        await _insert(engine, tutoring_sessions, sessions_rows)
        demand_times = []
        for _ in range(RUNS):
            began = time.perf_counter()
            demand = await observed_demand(engine, catalog, YEAR_START, YEAR_END)
            demand_times.append(time.perf_counter() - began)
    finally:
        await engine.dispose()
    target = Target()
    cold_s, result = _median(lambda: advise(demand, target))
    planner = Planner(target)
    advise(demand, planner=planner)
    busiest = max(result.queues, key=lambda q: q.needed_tutor_hours)
    plan = [max(0, s.needed.tutors - 1) for s in busiest.slots]
    what_if_s, changed = _median(
        lambda: advise(demand, planner=planner, headcounts={busiest.queue: plan})
    )
    demand_s = round(statistics.median(demand_times), 3)
    scheduled = next(q for q in changed.queues if q.queue == busiest.queue)
    return {
        "requests": sum(q.total().arrivals for q in demand.queues),
        "queues": len(demand.queues),
        "busy_queues": sum(1 for q in demand.queues if q.total().arrivals),
        "cells": len(demand.queues) * SLOTS_PER_WEEK,
        "demand_s": demand_s,
        "advice_s": cold_s,
        "what_if_s": what_if_s,
        "total_s": round(demand_s + cold_s, 3),
        "needed_tutor_hours": round(result.needed_tutor_hours, 1),
        "busiest": ":".join(busiest.queue),
        "busiest_hours": round(busiest.needed_tutor_hours, 1),
        "one_less_hours": scheduled.scheduled_tutor_hours,
        "patience_s": round(busiest.patience_s or 0.0, 1),
    }


def run(backends: list[str], sessions: int) -> dict[str, dict[str, Any]]:
    out = {}
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{Path(folder) / 'capacity.db'}"
                out[backend] = asyncio.run(_bench_one(url, sessions))
        elif backend == "postgres" and pg_reachable():
            with scratch_postgres(f"bench_capacity_{int(time.time())}") as url:
                out[backend] = asyncio.run(_bench_one(url, sessions))
    return out


def _markdown(results: dict[str, dict[str, Any]], sessions: int) -> str:
    lines = [
        SECTION,
        "",
        f"`python -m bench.capacity --sessions {sessions}` ({dt.date.today()}, Python "
        f"{platform.python_version()}, 2 CPUs shared with other work). bench.stats' synthetic "
        "year spread over the catalog's queues; advice for every queue and half-hour of the "
        "week (target 80 % within 60 s, Erlang A with each queue's observed patience). "
        f"Median of {RUNS}. Goal: demand + advice under {GOAL_SECONDS} s.",
        "",
        "| stack | requests | queues (with demand) | demand s | advice s (cold) | "
        "what-if s (memo) | demand + advice s | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stack, r in results.items():
        ok = "yes" if r["total_s"] < GOAL_SECONDS else "NO"
        lines.append(
            f"| {stack} | {r['requests']:,} | {r['queues']} ({r['busy_queues']}) | "
            f"{r['demand_s']} | {r['advice_s']} | {r['what_if_s']} | {r['total_s']} | {ok} |"
        )
    for stack, r in results.items():
        lines += [
            "",
            f"{stack}: the advice asks for {r['needed_tutor_hours']:,} tutor-hours a week in "
            f"all; the busiest queue ({r['busiest']}, observed patience {r['patience_s']} s) "
            f"{r['busiest_hours']:,}; one tutor fewer in each of its staffed half-hours "
            f"would be {r['one_less_hours']:,}.",
        ]
    return "\n".join(lines) + "\n"


# -- the year replayed -------------------------------------------------------------------
async def _replay(folder: Path, hours: float | None) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from broker import stats
    from broker.capacity import synthetic
    from web.commands.replay_parallel import default_workers, replay_parallel
    from web.commands.simulate import free_port

    year = synthetic.generate(seed=2024)
    tz = ZoneInfo(year.shape.timezone)
    if hours is None:
        start = dt.datetime.combine(year.shape.start, dt.time(), tz).astimezone(dt.UTC)
        end = dt.datetime.combine(year.shape.end, dt.time(), tz).astimezone(dt.UTC)
    else:
        start, _, _ = year.week(dt.date(2024, 2, 5))
        end = start + dt.timedelta(hours=hours)
    out = folder / "replayed.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{folder / 'unused.db'}",
                        port=free_port(), host="127.0.0.1", tutor_silent_s=0.0,
                        session_idle_s=0.0)
    began = time.perf_counter()
    roster = synthetic.enrolled_roster(year)
    report = await replay_parallel(settings, year, start, end, workers=default_workers(),
                                   out=out, retry=True, roster=roster)
    wall = time.perf_counter() - began
    engine = create_engine(f"sqlite+aiosqlite:///{out}")
    try:
        usage = await stats.group_usage(engine, stats.Filters(start=start, end=end))
    finally:
        await engine.dispose()
    overall = report.overall()
    return {"url": f"sqlite+aiosqlite:///{out}", "wall_s": round(wall, 1),
            "report": report.as_dict(), "requests": report.arrivals,
            "originals": report.arrivals - report.retries,
            "cpu_ms_per_request": round(1000 * report.cpu_s / max(1, report.arrivals), 1),
            "service_level": overall.service_level, "usage": usage["groups"],
            "full_year": hours is None}


async def _copy_to(source_url: str, target_url: str) -> float:
    from broker.db.merge import copy_database

    await migrate(Settings(database_url=target_url))
    source, target = create_engine(source_url), create_engine(target_url)
    began = time.perf_counter()
    try:
        await copy_database(source, target)
        # the year as autovacuum leaves it: statistics fresh, pages marked all-visible
        async with target.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await source.dispose()
        await target.dispose()
    return time.perf_counter() - began


async def _check_week(folder: Path, hours: float | None) -> dict[str, Any]:
    """The advice checked: one term week, advised headcount, ~20 s reading, no retries."""
    from broker.capacity import synthetic
    from web.commands.replay_parallel import replay_parallel
    from web.commands.simulate import free_port

    year = synthetic.generate(seed=2024)
    start, end, _ = year.week(CHECK_WEEK)
    if hours is not None:
        end = min(end, start + dt.timedelta(hours=hours))
    settings = Settings(database_url=f"sqlite+aiosqlite:///{folder / 'week.db'}",
                        port=free_port(), host="127.0.0.1", tutor_silent_s=0.0,
                        session_idle_s=0.0)
    report = await replay_parallel(settings, year, start, end, workers=1,
                                   reaction_s=CHECK_REACTION_S)
    return report.as_dict()


def run_replay(hours: float | None) -> dict[str, Any]:
    """The year replayed (or ``hours`` of the week of 5 February 2024), its usage table and
    the staff reports' timings on SQLite and (when reachable) PostgreSQL."""
    from bench.stats import BASELINE, BASELINE_AFTER, REPORTS, time_reports

    timed = (BASELINE, *REPORTS, BASELINE_AFTER)

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        check = asyncio.run(_check_week(Path(tmp), hours))
        out = asyncio.run(_replay(Path(tmp), hours))
        out["check"] = check
        out["sqlite_reports"] = asyncio.run(time_reports(out["url"], reports=timed))
        if pg_reachable():
            with scratch_postgres(f"bench_replay_{int(time.time())}") as pg:
                out["copy_s"] = round(asyncio.run(_copy_to(out["url"], pg)), 1)
                out["pg_reports"] = asyncio.run(time_reports(pg, reports=timed))
    return out


def _deviation(measured: float, expected: float) -> str:
    return f"{100 * (measured - expected) / expected:+.2f}%"


def _replay_markdown(r: dict[str, Any]) -> str:
    rep = r["report"]
    scope = "the whole synthetic year" if r["full_year"] else "part of the synthetic year"
    ok = "yes" if r["wall_s"] < REPLAY_GOAL_S else "NO"
    lines = [
        REPLAY_SECTION, "",
        f"`python -m bench.capacity` ({dt.date.today()}, Python {platform.python_version()}, "
        f"2 CPUs). {scope.capitalize()} ({rep['start'][:10]} to {rep['end'][:10]}) replayed "
        "through the live broker on the embedded stack (SQLite, in-process state), "
        f"{rep['segments']} week segments on {rep['workers']} processes, the advised "
        "headcount, tutors accepting at once, students who give up or are refused asking "
        "again. Goal: a full year under 15 minutes; staff reports over "
        f"it under {REPORT_GOAL_P95_MS:.0f} ms p95 on PostgreSQL; the usage table within 1%.",
        "",
        "| figure | measured | goal met |", "|---|---|---|",
        f"| wall time, start to merged database | {r['wall_s']:.0f} s "
        f"({r['wall_s'] / 60:.1f} min) | {ok if r['full_year'] else 'n/a (not a full year)'} |",
        f"| requests (of which retries) | {r['requests']:,} ({rep['retries']:,}) | |",
        f"| replay CPU per request | {r['cpu_ms_per_request']} ms | |",
        f"| service level (80% within 60 s target) | {100 * (r['service_level'] or 0):.1f}% "
        f"(advice expected {100 * (rep['overall']['expected_service_level'] or 0):.1f}%) | |",
        f"| gave up / unmet / never served | {rep['overall']['gave_up']:,} / "
        f"{rep['unmet_total']:,} / {rep['never_served']:,} | |",
    ]
    check = r["check"]
    lines += [
        "", f"The advice checked: the week of {check['start'][:10]} (UTC start), advised "
        f"headcount, tutors reading ~{CHECK_REACTION_S:.0f} s, nobody asking twice "
        f"({check['arrivals']:,} requests, {check['unmet_total']} unmet; wall "
        f"{check['wall_s']} s):", "",
        "| queue | requests | service level | advice expects | difference |",
        "|---|---|---|---|---|",
    ]
    for q in [*check["queues"], check["overall"]]:
        sl, exp = q["service_level"], q["expected_service_level"]
        diff = "" if sl is None or exp is None else f"{100 * (sl - exp):+.1f} points"
        lines.append(f"| {q['queue']} | {q['arrivals']:,} | "
                     f"{'-' if sl is None else f'{100 * sl:.1f}%'} | "
                     f"{'-' if exp is None else f'{100 * exp:.1f}%'} | {diff} |")
    if r["full_year"]:
        usage = {row["group"]: row for row in r["usage"]}
        every = usage["All"]
        lines += [
            "", "Usage table over the replayed year (`/api/stats/groups`), against the "
            "district's:", "",
            "| figure | district | replayed | deviation | within 1% |", "|---|---|---|---|---|",
        ]
        pairs = [("sessions", DISTRICT["sessions"], every["sessions"]),
                 ("students", DISTRICT["students"], every["students_using"]),
                 ("sessions per student", DISTRICT["sessions"] / DISTRICT["students"],
                  every["sessions"] / max(1, every["students_using"]))]
        for group, pct in DISTRICT["pct"].items():
            pairs.append((f"{group} % of enrolled", pct, usage[group]["pct_of_enrolled"] or 0.0))
        for name, want, got in pairs:
            dev = abs(got - want) / want
            lines.append(f"| {name} | {want:,.2f} | {got:,.2f} | {_deviation(got, want)} | "
                         f"{'yes' if dev <= 0.01 else 'NO'} |")
    for label, key in (("PostgreSQL", "pg_reports"), ("SQLite", "sqlite_reports")):
        if key not in r:
            continue
        goal = label == "PostgreSQL"
        lines += ["", f"Staff reports over the replayed database on {label}"
                  + (f" (copied in {r['copy_s']} s)" if goal else "")
                  + ", ms; the baseline rows are one pass over the same requests, timed "
                  "first and last (`bench.stats`), as this machine's speed moves:", "",
                  "| report | whole period p50 | p95 | one school p50 | p95 |"
                  + (" goal met |" if goal else ""),
                  "|---|---|---|---|---|" + ("---|" if goal else "")]
        for name, by in r[key].items():
            year_t, school_t = by.get("year", {}), by.get("school", {})
            cells = [f"{t.get('p50_ms', 0):.1f} | {t.get('p95_ms', 0):.1f}"
                     for t in (year_t, school_t)]
            worst = max(t.get("p95_ms", 0) for t in (year_t, school_t))
            met = (" yes |" if worst < REPORT_GOAL_P95_MS else " NO |") if goal else ""
            if goal and "baseline" in name:  # one pass over the requests: not a report
                met = " - |"
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |{met}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 sessions, SQLite only; replay one week")
    parser.add_argument("--no-advice", action="store_true", help="skip the advice timing")
    parser.add_argument("--no-replay", action="store_true", help="skip the year replayed")
    parser.add_argument("--replay-hours", type=float, default=None,
                        help="replay only this many hours (from Monday 5 February 2024)")
    args = parser.parse_args(argv[1:])
    sessions = 2000 if args.quick else args.sessions
    backends = ["sqlite"] if args.quick else args.backends.split(",")
    if not args.no_advice:
        results = run(backends, sessions)
        for stack, r in results.items():
            print(stack, r)
        write_section(SECTION, _markdown(results, sessions), args.results)
    if not args.no_replay:
        hours = args.replay_hours or (7 * 24.0 if args.quick else None)
        replayed = run_replay(hours)
        print({k: v for k, v in replayed.items() if k not in ("report", "usage")})
        write_section(REPLAY_SECTION, _replay_markdown(replayed), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
