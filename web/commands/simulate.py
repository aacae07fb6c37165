"""``homework-help simulate``: replay a period of demand through the real broker, fast.

It starts the app on 127.0.0.1 (a temporary SQLite database, migrated, like ``make run``;
or ``--database-url``), gives the broker a **virtual clock**, and drives a period over
socket.io with :class:`web.commands.replay.Replay`: the synthetic year's arrivals
(:mod:`broker.capacity.synthetic`; default one week) or a period of the district's own
recorded requests (``--recorded``, :mod:`broker.capacity.recorded`), simulated tutors
following a plan (:mod:`web.commands.replay_plans`: the staffing advice, the published
shift plans, a plan file, or a flat headcount). The clock jumps from event to event, so a
week takes a minute and nothing waits on the wall clock.

A period longer than a week runs as **segments in parallel processes**
(:mod:`web.commands.replay_parallel`): each local week is replayed by its own broker into
its own SQLite file, and the files are merged into one database (``--out``) the staff
reports can read. Segments are independent apart from a student's retry or session that
crosses a local Monday midnight (it stays in the week it began in).

Guarantees: deterministic for a seed (events in time order, ties by arrival; the same
seed gives the same report however many processes run it); only 127.0.0.1; temporary
databases are deleted at the end; against ``--database-url`` it refuses a database holding
students other than synthetic or pseudonymised ones (``syn-`` ids), as ``demo-seed`` does.
Settings used: the tutor-silent and idle timeouts are off (simulated tutors exchange no
messages), everything else is the broker's own.

The report (per queue and overall): requests (retries included), accepted, gave up, unmet,
the service level (accepted within the target wait over accepted plus gave up, as the
advice counts it), waits p50/p90 of accepted requests, tutor-hours on shift and busy, and
the advice's expected service level for the same headcount beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from broker.settings import Settings
from web.commands.replay import Replay, VirtualClock
from web.commands.replay_plans import PlanSpec
from web.commands.replay_report import Report

DEFAULT_WEEK = dt.date(2024, 2, 5)  # a term-time week (Monday) of the synthetic year


# -- the in-process app -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_app(settings: Settings, schools: Sequence[Any]) -> AsyncIterator[
        tuple[str, Any]]:
    """Migrate, add the schools, start the app on 127.0.0.1; yield (url, broker)."""
    from aiohttp import web

    from broker.db.engine import create_engine
    from broker.errors import Conflict
    from broker.migrate import migrate
    from broker.roster_import import count_students_outside, write_roster
    from routing.oneroster import Roster
    from web.app import init_app
    from web.keys import BROKER

    await migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        others = await count_students_outside(engine, "syn-")
        if others:
            raise Conflict(f"the database holds {others} non-synthetic students; "
                           "simulate only runs on an empty or synthetic database")
        await write_roster(engine, Roster({s.id: s for s in schools}, []))
    finally:
        await engine.dispose()
    app = init_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{settings.port}", app[BROKER]
    finally:
        await runner.cleanup()


async def replay(settings: Settings, year: Any, start: dt.datetime, end: dt.datetime, *,
                 tutors: int | None = None, plan: PlanSpec | None = None,
                 reaction_s: float = 0.0, retry: bool = False) -> Report:
    """Replay ``year``'s arrivals in ``[start, end)`` through one broker on ``settings``
    (``year``: a :class:`broker.capacity.synthetic.Year`, or recorded arrivals with the
    same ``students``, ``between`` and ``week``)."""
    from broker.capacity.advice import Target
    from broker.catalog_source import load_catalog

    catalog = load_catalog(settings)
    target = Target.from_settings(settings)
    spec = plan or (PlanSpec() if tutors is None else PlanSpec("flat", tutors))
    following = spec.build(year, catalog, target)
    report = Report(start, end, target.fraction, target.wait_s, following.label)
    schools = {s.school.id: s.school for s in year.students}.values()
    clock = VirtualClock(start.timestamp())
    began = time.perf_counter()
    async with running_app(settings, list(schools)) as (url, broker):
        broker.clock = clock
        sim = Replay(url, settings.secret_key, broker, clock, catalog, following, report,
                     reaction_s, retry)
        cpu = time.process_time()
        await sim.run(year.between(start, end), start, end)
        report.cpu_s = time.process_time() - cpu
    report.wall_s = time.perf_counter() - began
    return report


def quiet_logs() -> None:
    """Only errors from the broker and the libraries: a log line per request, session or
    alert (simulated students meet nobody-on-shift alerts) costs more than the replay and
    buries its report."""
    for name in ("broker", "web", "socketio", "engineio", "alembic", "aiohttp"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- the command ---------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate", help="replay a synthetic week or year, or recorded requests, fast")
    p.add_argument("--period", choices=("week", "year"), default="week")
    p.add_argument("--week", type=dt.date.fromisoformat, default=DEFAULT_WEEK,
                   help="the Monday of the week to replay (default %(default)s)")
    p.add_argument("--hours", type=float, default=None,
                   help="replay only this many hours from the period's start")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--tutors", type=int, default=None,
                   help="a flat headcount per queue instead of the advice")
    p.add_argument("--plan", default="advice", metavar="advice|published|FILE",
                   help="who is on shift: the advice (default), the shift plans published "
                        "in the district's database, or a plan file (CSV or JSON, as "
                        "import-shifts reads)")
    p.add_argument("--recorded", nargs=2, type=dt.date.fromisoformat, default=None,
                   metavar=("FROM", "TO"),
                   help="replay the district's own requests queued between these local "
                        "dates (TO exclusive), read from its database, instead of the "
                        "synthetic year")
    p.add_argument("--reaction-s", type=float, default=0.0,
                   help="tutors' mean time to accept a request they take (exponential)")
    p.add_argument("--retries", choices=("auto", "on", "off"), default="auto",
                   help="students refused or giving up ask again: on for --period year "
                        "(the district's table counts sessions that happened), off for a "
                        "week (the advice check) and for recorded requests (their retries "
                        "are in the records)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes replaying weeks side by side (default: CPUs + 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="keep the replayed database (SQLite) at this path")
    p.add_argument("--database-url", default=None,
                   help="replay into this database, in one process (default: temporary "
                        "SQLite files)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verbose", action="store_true",
                   help="keep the broker's per-request log lines (slower)")
    p.set_defaults(func=run)


async def plan_spec(args: argparse.Namespace, settings: Settings) -> PlanSpec:
    """The plan the command line asks for (published plans and files read here, once)."""
    from broker.capacity import shifts
    from broker.catalog_source import load_catalog

    if args.tutors is not None:
        return PlanSpec("flat", args.tutors)
    if args.plan == "advice":
        return PlanSpec()
    catalog = load_catalog(settings)
    if args.plan == "published":
        from broker.db.engine import create_engine

        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                plans = await shifts.load_plans(conn, shifts.queues(catalog))
        finally:
            await engine.dispose()
        return PlanSpec("published", plans=plans, source="published")
    path = Path(args.plan)
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    plans = shifts.parse_import(text, fmt, catalog.timezone, catalog)
    return PlanSpec("published", plans=plans, source=path.name)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.capacity import synthetic

    if not args.verbose:  # a log line per request and session costs more than the replay
        quiet_logs()
    spec = await plan_spec(args, settings)
    if args.recorded is not None:
        from broker.capacity.recorded import read_recorded

        first, until = args.recorded
        recorded = await read_recorded(settings, first, until, seed=args.seed)
        year: Any = recorded.year
        start, end = recorded.start, recorded.end
        if recorded.skipped:
            print(f"{recorded.skipped} recorded requests without a known school left out",
                  file=sys.stderr)
    else:
        year = synthetic.generate(seed=args.seed)
        if args.period == "year":
            tz = ZoneInfo(year.shape.timezone)
            start = dt.datetime.combine(year.shape.start, dt.time(), tz).astimezone(dt.UTC)
            end = dt.datetime.combine(year.shape.end, dt.time(), tz).astimezone(dt.UTC)
        else:
            start, end, _ = year.week(args.week)
    if args.hours is not None:
        end = min(end, start + dt.timedelta(hours=args.hours))
    retry = args.retries == "on" or (
        args.retries == "auto" and args.period == "year" and args.recorded is None)
    options: dict[str, Any] = {"plan": spec, "reaction_s": args.reaction_s, "retry": retry}
    with tempfile.TemporaryDirectory(prefix="hh-simulate-") as tmp:
        sim_settings = dataclasses.replace(
            settings, port=free_port(), host="127.0.0.1", tutor_silent_s=0.0,
            session_idle_s=0.0, demo=False,
            database_url=args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sim.db'}",
            redis_url=settings.redis_url if args.database_url else None,
        )
        if args.database_url is None:
            from web.commands.replay_parallel import default_workers, replay_parallel

            roster = None
            if args.out is not None and args.recorded is None:  # the enrolment, for % enrolled
                roster = await asyncio.to_thread(synthetic.enrolled_roster, year)
            report = await replay_parallel(
                sim_settings, year, start, end, workers=args.workers or default_workers(),
                out=args.out, quiet=not args.verbose, roster=roster, **options)
        else:
            report = await replay(sim_settings, year, start, end, **options)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text(),
          file=sys.stdout)
    return 0


__all__ = ["free_port", "register", "replay", "running_app"]
