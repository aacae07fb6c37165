"""Benchmark: the bell — 2,000 booked sessions open at the same minute.

``python -m bench.bell [--quick] [--rooms N] [--scaled] [--no-write] [--results PATH]``

A fresh migrated database gets 2,000 booked occurrences (one series each, school-based,
4 students and 1 tutor each: 8,000 students and 2,000 tutors in the roster and the
scheduler's tables) that all start at the same minute. Real ``homework-help serve``
processes run on 127.0.0.1 (one on SQLite for the embedded stack; two on PostgreSQL +
Redis with ``--scaled``), and every one of the 10,000 people is connected through raw
websocket clients (``bench/_bell_load.py``, two load processes, spread over the servers).
Then the rooms job (:func:`broker.rooms.run_rooms`, what the worker runs every 30 s) runs
once, here, at the opening time, and each client records when its ``booked:open`` came.

Measured, against the goal "every room open and both sides told within 5 s":

* the job's own time (2,000 rooms and 8,000 participants written in batches of 500, one
  transaction per batch);
* from the job's start, the time until the last person was told, and p50/p99 over all
  people (the push comes from each process's next sweep, every 2 s by default: the sweep
  interval is part of the figure);
* the same run's echo baseline: a bare python-socketio server (``bench/_baseline_server.py``)
  with the same number of raw clients connected, every client calling ``echo`` at the
  same instant: p50/p99/last from that instant to each ack.

Replaces only the "## The bell" section of bench/RESULTS.md (``--quick`` writes nothing
unless ``--results PATH`` is given). Every process it starts is stopped by it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.broker import (
    Server,
    Stack,
    Worker,
    clean_env,
    free_port,
    git_commit,
    homework_help,
    percentile,
    raise_nofile,
    stack_kinds,
)
from bench.results import RESULTS, write_section
from broker.db import scheduler_models as m
from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.rooms import OPEN_LEAD, run_rooms

SECTION = "## The bell"
SECRET = "bench-bell-secret-not-for-production"
GOAL_S = 5.0
LOADS = 2  # load processes (each well under the 20,000 open files a process may have)
WAIT_S = 30.0
# People connect at this rate (all load processes together): each connect reads the
# person's state, their open room and their next session; faster, the servers' admission
# gates answer 503 and the clients back off (a connect storm is bench.peak's subject).
RATE = 500.0


def log(msg: str) -> None:
    print(f"[bench.bell {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def seed(url: str, rooms: int, starts: datetime) -> list[list[str]]:
    """The roster and the bookings: ``rooms`` occurrences at ``starts``, 4 students and a
    tutor each; returns the people as ``[kind, id]``."""
    engine = create_engine(url)
    made = datetime(2026, 1, 1, tzinfo=UTC)
    day = starts.date()
    people: list[list[str]] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(m.programme_offers.insert(), [{
                "id": "bell-offer", "programme": "school_based", "vendor": "benchco",
                "subjects": "math", "low_grade": 0, "high_grade": 12, "languages": "en",
                "group_limit": 4, "session_minutes": 30, "min_sessions_per_week": 1,
                "term_start": day - timedelta(days=30), "term_end": day + timedelta(days=30),
                "created_by": "bench", "created_at": made}])
            for lo in range(0, rooms, 500):
                hi = min(rooms, lo + 500)
                await conn.execute(metadata.tables["students"].insert(), [
                    {"sourced_id": f"b{i}-{k}", "sis_id": f"sis-b{i}-{k}", "school_id": "hs",
                     "grade": 9, "groups": "", "given_name": "Kid", "family_name": "X"}
                    for i in range(lo, hi) for k in range(4)])
                await conn.execute(m.tutor_profiles.insert(), [
                    {"tutor_id": f"bt{i}", "vendor": "benchco", "display_name": f"Tutor {i}",
                     "languages": "en", "accommodations": "", "timezone": "UTC"}
                    for i in range(lo, hi)])
                await conn.execute(m.booking_series.insert(), [
                    {"id": f"bs{i}", "offer_id": "bell-offer", "school_id": "hs",
                     "group_id": None, "student_id": None, "tutor_id": f"bt{i}",
                     "subject": "math", "language": "en", "rrule": "FREQ=WEEKLY;COUNT=1",
                     "first_day": day, "start_min": starts.hour * 60 + starts.minute,
                     "minutes": 30, "timezone": "UTC", "created_by": "bench",
                     "created_at": made} for i in range(lo, hi)])
                await conn.execute(m.booking_students.insert(), [
                    {"series_id": f"bs{i}", "student_id": f"b{i}-{k}"}
                    for i in range(lo, hi) for k in range(4)])
                await conn.execute(m.occurrences.insert(), [
                    {"id": f"bo{i}", "series_id": f"bs{i}", "school_id": "hs",
                     "tutor_id": f"bt{i}", "local_day": day, "starts_at": starts,
                     "ends_at": starts + timedelta(minutes=30), "original_starts_at": starts,
                     "status": "scheduled"} for i in range(lo, hi)])
                for i in range(lo, hi):
                    people.append(["tutor", f"bt{i}"])
                    people += [["student", f"b{i}-{k}"] for k in range(4)]
    finally:
        await engine.dispose()
    return people


def loads(people: list[list[str]], ports: list[int], scenario: str, tmp: Path,
          tag: str) -> list[Worker]:
    """Start the load processes (each holds every LOADS-th person) and wait until ready."""
    workers = []
    for n in range(LOADS):
        cfg = {"scenario": scenario, "ports": ports, "secret": SECRET, "rate": RATE / LOADS,
               "people": people[n::LOADS], "max_s": 1200, "connect_s": 400}
        workers.append(Worker(cfg, tmp, f"{tag}-load{n}", None, module="bench._bell_load"))
    for w in workers:
        ready = json.loads(w.expect("ready", 450).split(" ", 1)[1])
        log(f"{w.name}: {ready}")
        w.ready = ready
    return workers


def collect(workers: list[Worker], t0: float) -> dict[str, Any]:
    """Every client's delay from ``t0`` to its event, over all load processes."""
    for w in workers:
        w.send(f"wait {WAIT_S}")
    delays: list[float] = []
    connected = 0
    for w in workers:
        w.expect("done", WAIT_S + 60)
        res = w.result()
        connected += res["connected"]
        delays += [x - t0 for x in res["received"]]
        w.finish()
    delays.sort()
    return {"connected": connected, "told": len(delays),
            "p50": percentile(delays, 50), "p99": percentile(delays, 99),
            "last": delays[-1] if delays else None}


def run_echo(people: list[list[str]], tmp: Path) -> dict[str, Any]:
    port = free_port()
    workers: list[Worker] = []
    server = Server("bell-baseline", [sys.executable, "-m", "bench._baseline_server", "--port",
                                      str(port)], clean_env(), port, tmp)
    try:
        server.wait_ready()
        workers = loads(people, [port], "echo", tmp, "echo")
        t0 = time.monotonic()
        for w in workers:
            w.send("go")
        for w in workers:
            w.expect("went", 60)
        return collect(workers, t0)
    finally:
        for w in workers:
            w.finish()
        server.stop()


def run_bell(kind: str, people_rooms: int, tmp: Path) -> dict[str, Any]:
    stack = Stack(kind, tmp)
    try:
        stack.prepare()
        env = stack.fresh("bell")
        url = env["DATABASE_URL"]
        starts = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=0, microsecond=0)
        people = asyncio.run(seed(url, people_rooms, starts))
        servers: list[Server] = []
        workers: list[Worker] = []
        for i in range(1 if kind == "embedded" else 2):
            port = free_port()
            servers.append(Server(
                f"bell-{kind}{i}", [*homework_help(), "serve", "--port", str(port)],
                clean_env(**env, HH_SECRET_KEY=SECRET, HH_PSEUDONYM_SECRET=SECRET,
                          HH_LOG_LEVEL="WARNING"), port, tmp))
        try:
            for s in servers:
                s.wait_ready()
            workers += loads(people, [s.port for s in servers], "bell", tmp, kind)
            engine = create_engine(url)
            t0 = time.monotonic()
            counts = asyncio.run(_job(engine, starts - OPEN_LEAD))
            job_s = time.monotonic() - t0
            log(f"{kind}: job {counts} in {job_s:.2f} s")
            out = collect(workers, t0)
            return {**out, "job_s": job_s, "opened": counts["opened"], "people": len(people),
                    "processes": len(servers),
                    "connect_s": max(w.ready["connect_s"] for w in workers),
                    "refused": sum(w.ready["errors"].get("http 503", 0) for w in workers)}
        finally:
            for w in workers:
                w.finish()
            for s in servers:
                s.stop()
    finally:
        stack.cleanup()


async def _job(engine: Any, now: datetime) -> dict[str, int]:
    try:
        return await run_rooms(engine, now)
    finally:
        await engine.dispose()


def seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def report(rooms: int, echo: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        SECTION, "",
        f"{dt.date.today().isoformat()}, commit {git_commit()}, {platform.machine()}, "
        f"`python -m bench.bell{' --scaled' if 'scaled' in runs else ''}` "
        f"({rooms:,} rooms, {rooms * 5:,} people). Goal: every room open and both sides "
        f"told within {GOAL_S:.0f} s of the job's start.", "",
        "| | job (open all rooms) | people told | p50 | p99 | last told | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, r in runs.items():
        ok = r["told"] == r["people"] and r["last"] is not None and r["last"] <= GOAL_S
        lines.append(
            f"| {kind} ({r['processes']} process{'es' if r['processes'] > 1 else ''}) | "
            f"{seconds(r['job_s'])} ({r['opened']:,} rooms) | {r['told']:,} / {r['people']:,} | "
            f"{seconds(r['p50'])} | {seconds(r['p99'])} | {seconds(r['last'])} | "
            f"{'met' if ok else 'NOT met'} |")
    lines.append(
        f"| echo baseline (1 process) | - | {echo['told']:,} / {echo['connected']:,} acks | "
        f"{seconds(echo['p50'])} | {seconds(echo['p99'])} | {seconds(echo['last'])} | - |")
    lines += ["", "Times from the job's start (the baseline: from the instant every client "
              "calls `echo`) to each person's `booked:open` (ack). Each broker process looks "
              "for rooms opened every 0.5 s (`broker.rooms.ROOM_WATCH_S`) and pushes to its "
              "own people: the last told is the job, plus up to one look, plus the pushes. "
              "Connecting everyone first (at 500/s): "
              + "; ".join(f"{kind} {r['connect_s']:.0f} s, {r['refused']:,} attempts "
                          "answered 503 by the admission gate and retried"
                          for kind, r in runs.items()) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bell")
    parser.add_argument("--quick", action="store_true", help="20 rooms (a smoke run)")
    parser.add_argument("--rooms", type=int, default=None)
    parser.add_argument("--scaled", action="store_true", help="also PostgreSQL + Redis")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    rooms = args.rooms or (20 if args.quick else 2000)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="hh-bell-"))
    try:
        kinds = stack_kinds(args.scaled, log)
        runs = {kind: run_bell(kind, rooms, tmp) for kind in kinds}
        everyone = [["student", str(i)] for i in range(rooms * 5)]
        echo = run_echo(everyone, tmp)
        body = report(rooms, echo, runs)
        print(body)
        target = args.results or (None if args.quick or args.no_write else RESULTS)
        if target is not None:
            write_section(SECTION, body, target)
        return 0 if all(r["told"] == r["people"] for r in runs.values()) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
