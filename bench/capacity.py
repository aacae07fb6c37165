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

Each is the median of 3 runs. Only the "## Capacity" section of the results file changes.
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
GOAL_SECONDS = 2.0
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
        _spread(requests, sessions_rows)
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="2,000 sessions, SQLite only")
    args = parser.parse_args(argv[1:])
    sessions = 2000 if args.quick else args.sessions
    backends = ["sqlite"] if args.quick else args.backends.split(",")
    results = run(backends, sessions)
    for stack, r in results.items():
        print(stack, r)
    write_section(SECTION, _markdown(results, sessions), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
