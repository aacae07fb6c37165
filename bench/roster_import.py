"""Benchmark: parse and import a synthetic 400,000-student OneRoster bundle.

Goal (issue 2): under 60 s wall time and under 1 GiB peak memory for the whole import
(parse + write), on SQLite and on PostgreSQL.

``run(students)`` writes a synthetic OneRoster v1.1 bundle of that size into a temporary
folder (457 schools over four regions, grades within each school's span, group flags at
the district's rates, one teacher per 20 students, each student's ``identifier`` unlike
their ``sourcedId``), then, for each database, imports it in
a **fresh child process** so the peak RSS (``ru_maxrss``) is that of the import alone:
SQLite into a new file database, PostgreSQL (if reachable at ``DATABASE_URL`` or
127.0.0.1:5432) into a throw-away database that is dropped afterwards. The schema is
created by ``migrate`` before the clock starts.

``python -m bench.roster_import [STUDENTS]`` prints the figures and replaces the
"## Roster import" section of bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.results import RESULTS, write_section
from bench.scratch_db import pg_reachable, scratch_postgres
from routing.grades import grade_code
from routing.oneroster import ORGS_HEADER, USERS_HEADER

SECTION = "## Roster import"
GOAL_SECONDS = 60.0
GOAL_MIB = 1024.0
SPANS = [(0, 5)] * 14 + [(0, 6), (0, 8), (0, 8), (6, 8), (6, 8), (6, 8), (9, 12), (9, 12)]


def generate(folder: Path, students: int, schools: int = 457, seed: int = 1) -> None:
    """Write orgs.csv, users.csv and demographics.csv for ``students`` students."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    regions = ["East", "North", "South", "West"]
    spans = [SPANS[i % len(SPANS)] for i in range(schools)]
    with (folder / "orgs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORGS_HEADER)
        w.writerow(["dist", "active", "", "Bench Unified", "district", "", ""])
        for r in regions:
            w.writerow([f"reg-{r}", "active", "", f"Local District {r}", "local", "", "dist"])
        for i in range(schools):
            w.writerow(
                [
                    f"sch-{i:04d}",
                    "active",
                    "",
                    f"Bench School {i}",
                    "school",
                    str(i),
                    f"reg-{regions[i % 4]}",
                ]
            )
    with (
        (folder / "users.csv").open("w", newline="") as fu,
        (folder / "demographics.csv").open("w", newline="") as fd,
    ):
        wu, wd = csv.writer(fu), csv.writer(fd)
        wu.writerow(USERS_HEADER)
        wd.writerow(
            ["sourcedId", "status", "dateLastModified", "birthDate", "sex", "swd", "el", "rfep"]
        )
        for n in range(students):
            school = n % schools
            low, high = spans[school]
            grade = low if n < schools else rng.randint(low, high)
            sid = f"{10_000_000 + n}"
            wu.writerow(
                [
                    sid,
                    "active",
                    "",
                    "true",
                    f"sch-{school:04d}",
                    "student",
                    f"s{sid}",
                    "",
                    "Given",
                    "Family",
                    "",
                    f"S{sid}",  # the SIS number differs from the roster key, as in real bundles
                    "",
                    "",
                    "",
                    "",
                    grade_code(grade),
                    "",
                ]
            )
            roll = rng.random()
            wd.writerow(
                [
                    sid,
                    "active",
                    "",
                    "",
                    "",
                    str(rng.random() < 0.15).lower(),
                    str(roll < 0.18).lower(),
                    str(0.18 <= roll < 0.44).lower(),
                ]
            )
            if n % 20 == 0:
                wu.writerow(
                    [
                        f"t{n}",
                        "active",
                        "",
                        "true",
                        f"sch-{school:04d}",
                        "teacher",
                        f"t{n}",
                        "",
                        "T",
                        "Teacher",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def _phase(url: str, bundle: Path) -> dict[str, Any]:
    """Child process: migrate (untimed), then parse + import with the clock running."""
    from broker.db.engine import create_engine
    from broker.migrate import migrate
    from broker.roster_import import read_roster, write_roster
    from broker.settings import Settings

    await migrate(Settings(database_url=url))
    engine = create_engine(url)
    try:
        before = _peak_mib()
        started = time.perf_counter()
        roster = read_roster(bundle)
        parsed = time.perf_counter()
        await write_roster(engine, roster)
        done = time.perf_counter()
    finally:
        await engine.dispose()
    return {
        "schools": len(roster.schools),
        "students": len(roster.students),
        "parse_s": round(parsed - started, 2),
        "write_s": round(done - parsed, 2),
        "total_s": round(done - started, 2),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
    }


def _child(url: str, bundle: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.roster_import", "--phase", url, str(bundle)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(students: int = 400_000) -> dict[str, Any]:
    """Generate a bundle of ``students`` students, import it into SQLite and (if reachable)
    PostgreSQL, each in a fresh process; return the figures."""
    results: dict[str, Any] = {"students": students}
    with tempfile.TemporaryDirectory(prefix="hh-roster-bench-") as tmp:
        bundle = Path(tmp) / "bundle"
        started = time.perf_counter()
        generate(bundle, students)
        results["generate_s"] = round(time.perf_counter() - started, 2)
        results["bundle_mib"] = round(sum(p.stat().st_size for p in bundle.iterdir()) / 2**20, 1)
        results["sqlite"] = _child(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", bundle)
        if pg_reachable():
            with scratch_postgres(f"hh_bench_{uuid.uuid4().hex[:8]}") as url:
                results["postgres"] = _child(url, bundle)
        else:
            results["postgres"] = None
    return results


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        f"`python -m bench.roster_import {results['students']}` "
        f"({time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared with other work). A synthetic OneRoster v1.1 bundle "
        f"of {results['students']:,} students in 457 schools ({results['bundle_mib']} MiB); "
        "each import runs in a fresh process after `migrate`; the time is parse + one "
        "transaction of writes; peak RSS is the process's `ru_maxrss`. "
        f"Goal: under {GOAL_SECONDS:.0f} s and under {GOAL_MIB:.0f} MiB.",
        "",
        "| database | parse s | write s | total s | peak RSS MiB | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("sqlite", "postgres"):
        r = results.get(name)
        if r is None:
            lines.append(f"| {name} | - | - | - | - | not reachable |")
            continue
        ok = r["total_s"] < GOAL_SECONDS and r["peak_rss_mib"] < GOAL_MIB
        lines.append(
            f"| {name} | {r['parse_s']} | {r['write_s']} | {r['total_s']} | "
            f"{r['peak_rss_mib']} | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def update_results(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Replace (or append) only the "## Roster import" section of RESULTS.md."""
    write_section(SECTION, _markdown(results), path)


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--phase":
        print(json.dumps(asyncio.run(_phase(argv[2], Path(argv[3])))))
        return 0
    students = int(argv[1]) if len(argv) > 1 else 400_000
    results = run(students)
    print(json.dumps(results, indent=2))
    update_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
