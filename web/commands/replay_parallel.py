"""A long replay split into week segments, replayed in parallel processes, then merged.

:func:`replay_parallel` cuts ``[start, end)`` at local Monday midnights (the district's
zone, so a segment is a local week, as the advice is), replays each segment with
:func:`web.commands.simulate.replay` in a pool of ``workers`` processes, each segment by
its own broker into its own SQLite file (copied from one migrated template), and merges
the segments' reports (:meth:`Report.merge`) and, with ``out``, their databases
(:func:`broker.db.merge.merge_sqlite`) into one file the staff reports read.

Why segments and not one broker: one replay is a single asyncio loop doing the broker's
and the simulated people's work in turn, so it uses one core and waits on SQLite between
steps; independent weeks keep every core busy. Weeks are independent in the model
(tutors go on and off shift at half-hours; a week's advice is its own), except for what
crosses a local Monday midnight: a session or a student's retry that began in one week
is finished by that week's broker, and a student's request open across midnight does not
make their first request of the next week a conflict. Those are a handful of a year's
requests and are said in docs/capacity.md.

Guarantees: the same year, plan and seed give the same merged report and database
whatever ``workers`` is (each segment's replay is deterministic; merging is a sum); a
segment that fails fails the whole replay (its error is raised), and the temporary files
are deleted either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from broker.settings import Settings
from web.commands.replay_plans import PlanSpec
from web.commands.replay_report import Report

_YEAR: Any = None  # the arrivals, sent once to each worker process


def default_workers() -> int:
    """One process more than CPUs: a replay process waits on SQLite's thread about a fifth
    of the time (80% of a core each, measured), so one extra keeps every core busy."""
    return (os.cpu_count() or 1) + 1


def week_segments(start: dt.datetime, end: dt.datetime, tz: Any) -> list[tuple[dt.datetime,
                                                                               dt.datetime]]:
    """``[start, end)`` cut at each local Monday 00:00 in between (aware UTC bounds)."""
    cuts = [start]
    local = start.astimezone(tz).date()
    monday = local + dt.timedelta(days=7 - local.weekday())
    while True:
        cut = dt.datetime.combine(monday, dt.time(), tz).astimezone(dt.UTC)
        if cut >= end:
            break
        if cut > start:
            cuts.append(cut)
        monday += dt.timedelta(days=7)
    cuts.append(end)
    return list(itertools.pairwise(cuts))


def _init_worker(year: Any, quiet: bool) -> None:
    """Keep the arrivals; run segments on uvloop, as ``serve`` does (the event loop's own
    overhead is a quarter of a replay's time on asyncio's)."""
    global _YEAR
    _YEAR = year

    with contextlib.suppress(ImportError):  # pragma: no cover - optional speed-up
        import uvloop

        uvloop.install()
    if quiet:
        from web.commands.simulate import quiet_logs

        quiet_logs()


def _segment(settings: Settings, start: dt.datetime, end: dt.datetime,
             options: dict[str, Any]) -> Report:
    from web.commands.simulate import free_port, replay

    settings = dataclasses.replace(settings, port=free_port())
    return asyncio.run(replay(settings, _YEAR, start, end, **options))


async def _enrol(path: Path, year: Any, roster: Sequence[Any]) -> None:
    """Write ``roster`` (synthetic students) as the replayed database's students, with the
    synthetic schools they attend."""
    from broker.capacity.synthetic import all_schools
    from broker.db.engine import create_engine
    from broker.roster_import import write_roster
    from routing.oneroster import Roster

    schools = {s.school.id: s.school for s in year.students}
    schools.update((s.id, s) for s in all_schools())
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await write_roster(engine, Roster(schools, list(roster)))
    finally:
        await engine.dispose()


async def replay_parallel(settings: Settings, year: Any, start: dt.datetime,
                          end: dt.datetime, *, workers: int, out: Path | None = None,
                          plan: PlanSpec | None = None, reaction_s: float = 0.0,
                          retry: bool = False, quiet: bool = True,
                          roster: Sequence[Any] | None = None) -> Report:
    """Replay ``[start, end)`` of ``year`` as week segments on ``workers`` processes;
    keep the merged database at ``out`` when given, with ``roster`` (students, e.g.
    :func:`broker.capacity.synthetic.enrolled_roster`) as its enrolment. ``settings`` is
    the replay's (its ``database_url`` is replaced by each segment's own SQLite file)."""
    from broker.catalog_source import load_catalog
    from broker.db.merge import merge_sqlite
    from broker.migrate import migrate

    began = time.perf_counter()
    tz = load_catalog(settings).timezone
    parts = week_segments(start, end, tz)
    options = {"plan": plan, "reaction_s": reaction_s, "retry": retry}
    with tempfile.TemporaryDirectory(prefix="hh-replay-") as tmp:
        folder = Path(tmp)
        template = folder / "template.db"
        await migrate(dataclasses.replace(settings,
                                          database_url=f"sqlite+aiosqlite:///{template}"))
        files = [folder / f"week-{i:03d}.db" for i in range(len(parts))]
        for path in files:
            shutil.copyfile(template, path)
        # the busiest weeks first, so no process is left with a long one at the end
        order = sorted(range(len(parts)), key=lambda i: -len(year.between(*parts[i])))
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context,
                                 initializer=_init_worker, initargs=(year, quiet)) as pool:
            futures = {
                i: loop.run_in_executor(pool, _segment, dataclasses.replace(
                    settings, database_url=f"sqlite+aiosqlite:///{files[i]}"),
                    parts[i][0], parts[i][1], options)
                for i in order
            }
            reports = [await futures[i] for i in range(len(parts))]
        report = Report(start, end, reports[0].target_fraction, reports[0].target_wait_s,
                        reports[0].headcount)
        for part in reports:
            report.merge(part)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, out)
            await asyncio.to_thread(merge_sqlite, out, files)
            if roster is not None:
                await _enrol(out, year, roster)
    report.segments, report.workers = len(parts), max(1, min(workers, len(parts)))
    report.wall_s = time.perf_counter() - began
    return report


__all__ = ["default_workers", "replay_parallel", "week_segments"]
