"""``homework-help simulate``: replay synthetic demand through the real broker, fast.

It starts the app in this process on 127.0.0.1 (a temporary SQLite database, migrated,
like ``make run``; or ``--database-url``), gives the broker a **virtual clock**, and drives
a period of the synthetic year (:mod:`broker.capacity.synthetic`; default one week) over
socket.io: each arrival is a student connection sending ``help:request``; simulated tutors
follow a headcount per queue and half-hour (the staffing advice for that week's demand,
or ``--tutors N`` flat), accept the head of their queue with ``help:accept`` when they have
a free chat (after ``--reaction-s``, a mean reading time, if given), and end it with
``session:end`` after the arrival's handle time; a student
not accepted within their patience sends ``help:cancel``. The clock jumps from event to
event and the broker's sweep runs whenever it moved 60 virtual seconds, so a week takes
a few minutes and nothing waits on the wall clock.

Guarantees: deterministic for a seed (events in time order, ties by arrival); only
127.0.0.1; the temporary database is deleted at the end; against ``--database-url`` it
refuses a database holding students other than synthetic ones (``syn-`` ids), as
``demo-seed`` does. Settings used: the tutor-silent and idle timeouts are off (simulated
tutors exchange no messages), everything else is the broker's own.

The report (per queue and overall): arrivals, accepted, gave up, unmet, the service level
(accepted within the target wait over accepted plus gave up, as the advice counts it),
waits p50/p90 of accepted requests, tutor-hours on shift, and the advice's expected
service level for the same headcount beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import json
import logging
import random
import socket
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from broker.capacity.demand import Queue, week_slot
from broker.settings import Settings

HALF_HOUR_S = 1800.0
DEFAULT_WEEK = dt.date(2024, 2, 5)  # a term-time week (Monday) of the synthetic year
#: Virtual seconds between the replay's broker sweeps. Each sweep touches every connection
#: before it judges who has gone, so a longer step loses nobody; it only makes "connected
#: now" (shown to people, not used to route) coarser. 60 s, half the default grace,
#: keeps the broker's timeouts within a minute of due.
SWEEP_EVERY_S = 60.0
#: Student connections opened ahead of their arrival (the handshakes overlap the replay).
CONNECT_AHEAD = 8


# -- the report --------------------------------------------------------------------------
@dataclass
class QueueReport:
    """What the replay measured for one queue (or, with ``queue=None``, overall)."""

    queue: str
    arrivals: int = 0
    accepted: int = 0
    gave_up: int = 0
    within_target: int = 0
    waits: list[float] = field(default_factory=list)
    tutor_hours: float = 0.0
    busy_hours: float = 0.0
    # the advice's expected service level for the headcount used, weighted by arrivals
    expected_weight: float = 0.0
    expected_sum: float = 0.0

    @property
    def service_level(self) -> float | None:
        decided = self.accepted + self.gave_up
        return self.within_target / decided if decided else None

    @property
    def expected_service_level(self) -> float | None:
        return self.expected_sum / self.expected_weight if self.expected_weight else None

    def percentile(self, p: float) -> float | None:
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        return {
            "queue": self.queue, "arrivals": self.arrivals, "accepted": self.accepted,
            "gave_up": self.gave_up, "service_level": r(self.service_level),
            "expected_service_level": r(self.expected_service_level),
            "wait_p50_s": r(self.percentile(0.5), 1), "wait_p90_s": r(self.percentile(0.9), 1),
            "tutor_hours": r(self.tutor_hours, 1), "busy_hours": r(self.busy_hours, 1),
        }


@dataclass
class Report:
    start: dt.datetime
    end: dt.datetime
    target_fraction: float
    target_wait_s: float
    headcount: str
    arrivals: int = 0
    unmet: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    queues: dict[str, QueueReport] = field(default_factory=dict)
    wall_s: float = 0.0

    def queue(self, name: str) -> QueueReport:
        if name not in self.queues:
            self.queues[name] = QueueReport(name)
        return self.queues[name]

    def overall(self) -> QueueReport:
        out = QueueReport("all")
        for q in self.queues.values():
            for f in dataclasses.fields(QueueReport):
                if f.name != "queue":
                    setattr(out, f.name, getattr(out, f.name) + getattr(q, f.name))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "target": {"fraction": self.target_fraction, "wait_s": self.target_wait_s},
            "headcount": self.headcount, "arrivals": self.arrivals,
            "unmet": dict(sorted(self.unmet.items())), "unmet_total": sum(self.unmet.values()),
            "conflicts": self.conflicts, "errors": dict(sorted(self.errors.items())),
            "queues": [q.as_dict() for q in self.queues.values()],
            "overall": self.overall().as_dict(), "wall_s": round(self.wall_s, 1),
        }

    def text(self) -> str:
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:5.1f}%"

        def sec(x: float | None) -> str:
            return "-" if x is None else f"{x:7.0f}"

        lines = [
            f"replay {self.start.isoformat()} .. {self.end.isoformat()}  headcount: "
            f"{self.headcount}  target: {100 * self.target_fraction:.0f}% within "
            f"{self.target_wait_s:.0f} s",
            f"{'queue':<14}{'arrivals':>9}{'accepted':>9}{'gave up':>8}{'SL':>8}"
            f"{'advice':>8}{'p50 s':>8}{'p90 s':>8}{'tutor-h':>9}{'busy-h':>8}",
        ]
        for q in [*self.queues.values(), self.overall()]:
            lines.append(
                f"{q.queue:<14}{q.arrivals:>9}{q.accepted:>9}{q.gave_up:>8}"
                f"{pct(q.service_level):>8}{pct(q.expected_service_level):>8}"
                f"{sec(q.percentile(0.5)):>8}{sec(q.percentile(0.9)):>8}"
                f"{q.tutor_hours:>9.1f}{q.busy_hours:>8.1f}"
            )
        unmet = ", ".join(f"{k} {v}" for k, v in sorted(self.unmet.items())) or "none"
        lines.append(f"arrivals {self.arrivals}; unmet {sum(self.unmet.values())} ({unmet}); "
                     f"open-request conflicts {self.conflicts}; wall {self.wall_s:.1f} s")
        if self.errors:
            lines.append(f"unexpected refusals: {self.errors}")
        return "\n".join(lines)


# -- the virtual clock and the simulated people -----------------------------------------
class VirtualClock:
    """The broker's clock during a replay: a number the replay moves forward."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class SimTutor:
    id: str
    queue: Queue
    client: Any  # socketio.AsyncClient
    sessions: set[str] = field(default_factory=set)
    on_shift: bool = False
    claimed: int = 0  # requests this tutor is about to accept (reaction time)

    @property
    def load(self) -> int:
        return len(self.sessions) + self.claimed


@dataclass
class Waiting:
    request_id: str
    queue: str
    arrived: float
    handle_s: float
    client: Any
    open: bool = True


class Plan:
    """Who is on shift: tutors per queue at an instant, and what the advice expects of
    them (the service level for that half-hour; ``None`` without advice)."""

    label = "plan"

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        raise NotImplementedError

    def expected(self, q: Queue, at: dt.datetime) -> float | None:
        return None


class Replay:
    """The event loop of one replay (see the module docstring)."""

    def __init__(self, url: str, secret: str, broker: Any, clock: VirtualClock,
                 catalog: Any, plan: Plan, report: Report, reaction_s: float = 0.0) -> None:
        self.url, self.secret, self.broker, self.clock = url, secret, broker, clock
        self.catalog, self.plan, self.report = catalog, plan, report
        self.reaction_s = reaction_s
        self.arrivals: list[Any] = []
        self.connecting: dict[int, asyncio.Task[Any]] = {}
        self.rng = random.Random(0)
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.tutors: dict[Queue, list[SimTutor]] = defaultdict(list)
        self.waiting: dict[str, deque[Waiting]] = defaultdict(deque)
        self.by_request: dict[str, Waiting] = {}
        self.capacity = {v.id: v.capacity for v in catalog.on_demand_vendors}
        self.last_sweep = -1e18

    def push(self, at: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, data))

    async def connect(self, namespace: str, identity: Any) -> Any:
        import socketio

        from broker import tokens

        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(self.url, namespaces=[namespace], transports=["websocket"],
                          auth={"token": tokens.issue(self.secret, identity)},
                          wait_timeout=10)
        return sio

    async def call(self, sio: Any, namespace: str, event: str, data: Any) -> Any:
        return await sio.call(event, data, namespace=namespace, timeout=30)

    def refused(self, ack: Any, what: str) -> None:
        code = f"{what}:{ack.get('error', {}).get('code', '?')}"
        self.report.errors[code] = self.report.errors.get(code, 0) + 1

    async def run(self, arrivals: Sequence[Any], start: dt.datetime, end: dt.datetime) -> None:
        t0, t_end = start.timestamp(), end.timestamp()
        self.arrivals = list(arrivals)
        for i, a in enumerate(self.arrivals):
            self.push(a.at.timestamp(), "arrive", i)
        shift = t0 - t0 % HALF_HOUR_S
        while shift < t_end:
            self.push(max(shift, t0), "shift", None)
            shift += HALF_HOUR_S
        while self.events:
            at, _, kind, data = heapq.heappop(self.events)
            if at >= t_end and kind in ("arrive", "shift"):
                continue
            await self.advance(at)
            await getattr(self, f"on_{kind}")(data)
            await self.dispatch()
        await self.advance(max(self.clock.now, t_end))
        for task in self.connecting.values():  # none unless an arrival failed midway
            with contextlib.suppress(Exception):
                await (await task).disconnect()
        for tutors in self.tutors.values():
            for tutor in tutors:
                await tutor.client.disconnect()

    async def advance(self, at: float) -> None:
        self.clock.now = max(self.clock.now, at)
        if self.clock.now - self.last_sweep >= SWEEP_EVERY_S:
            self.last_sweep = self.clock.now
            await self.broker.sweep()
            await self.broker.flush_pushes()

    async def on_shift(self, _: None) -> None:
        now = dt.datetime.fromtimestamp(self.clock.now, dt.UTC)
        slot_end = self.clock.now - self.clock.now % HALF_HOUR_S + HALF_HOUR_S
        hours = (min(slot_end, self.report.end.timestamp()) - self.clock.now) / 3600
        for v in self.catalog.on_demand_vendors:
            for lang in v.languages:
                q = (v.id, lang)
                want = self.plan.tutors(q, now)
                await self.staff(q, want)
                name = f"{v.id}:{lang}"
                self.report.queue(name).tutor_hours += want * hours

    async def staff(self, q: Queue, want: int) -> None:
        from broker import tokens

        pool = self.tutors[q]
        while len(pool) < want:
            tid = f"sim-{q[0]}-{q[1]}-{len(pool) + 1}"
            ident = tokens.Identity("tutor", tid, {"vendor": q[0], "languages": [q[1]],
                                                   "display_name": f"Sim tutor {len(pool) + 1}"})
            pool.append(SimTutor(tid, q, await self.connect("/tutor", ident)))
        for i, tutor in enumerate(pool):
            on = i < want
            if on != tutor.on_shift:
                tutor.on_shift = on
                status = "available" if on else "away"
                ack = await self.call(tutor.client, "/tutor", "tutor:status", {"status": status})
                if not ack.get("ok"):
                    self.refused(ack, "tutor:status")

    def preconnect(self, i: int) -> asyncio.Task[Any]:
        """The connection of arrival ``i``, opened ahead (connecting changes nothing the
        replay measures: the student only asks when their arrival comes)."""
        from broker import tokens

        task = self.connecting.get(i)
        if task is None:
            a = self.arrivals[i]
            ident = tokens.Identity("student", a.student.id, {
                "school_id": a.student.school.id, "grade": a.student.grade,
                "groups": sorted(a.student.groups)})
            task = self.connecting[i] = asyncio.ensure_future(self.connect("/student", ident))
        return task

    async def on_arrive(self, i: int) -> None:
        a = self.arrivals[i]
        self.report.arrivals += 1
        for ahead in range(i + 1, min(i + 1 + CONNECT_AHEAD, len(self.arrivals))):
            self.preconnect(ahead)
        sio = await self.preconnect(i)
        del self.connecting[i]
        ack = await self.call(sio, "/student", "help:request",
                              {"subject": a.subject, "language": a.language})
        if not ack.get("ok"):
            error = ack.get("error", {})
            if error.get("code") == "unmet":
                reason = error.get("detail", {}).get("reason", "unmet")
                self.report.unmet[reason] = self.report.unmet.get(reason, 0) + 1
            elif error.get("code") == "conflict":
                self.report.conflicts += 1  # the student's earlier request is still open
            else:
                self.refused(ack, "help:request")
            await sio.disconnect()
            return
        request = ack["request"]
        name = f"{request['vendor']}:{request['language']}"
        w = Waiting(request["id"], name, self.clock.now, a.handle_s, sio)
        q = self.report.queue(name)
        q.arrivals += 1
        expected = self.plan.expected((request["vendor"], request["language"]), a.at)
        if expected is not None:
            q.expected_weight += 1
            q.expected_sum += expected
        self.waiting[name].append(w)
        self.by_request[w.request_id] = w
        self.push(self.clock.now + a.patience_s, "give_up", w)

    async def on_give_up(self, w: Waiting) -> None:
        if not w.open:
            return
        w.open = False
        ack = await self.call(w.client, "/student", "help:cancel", {"request_id": w.request_id})
        if ack.get("ok"):
            self.report.queue(w.queue).gave_up += 1
        else:
            self.refused(ack, "help:cancel")
        await w.client.disconnect()

    async def on_end(self, data: tuple[SimTutor, str, Waiting]) -> None:
        tutor, session_id, w = data
        ack = await self.call(tutor.client, "/tutor", "session:end", {"session_id": session_id})
        if not ack.get("ok"):
            self.refused(ack, "session:end")
        tutor.sessions.discard(session_id)
        await w.client.disconnect()

    async def dispatch(self) -> None:
        """Free tutors on shift take the head of their queue (first come, first served)."""
        for name, line in self.waiting.items():
            while line and not line[0].open:
                line.popleft()
            if not line:
                continue
            vendor, _, language = name.partition(":")
            cap = self.capacity.get(vendor, 1)
            pool = [t for t in self.tutors.get((vendor, language), []) if t.on_shift]
            while line:
                free = [t for t in pool if t.load < cap]
                if not free:
                    break
                tutor = min(free, key=lambda t: t.load)
                w = line.popleft()
                if not w.open:
                    continue
                if self.reaction_s > 0:  # the tutor reads the request first
                    tutor.claimed += 1
                    delay = self.rng.expovariate(1 / self.reaction_s)
                    self.push(self.clock.now + delay, "accept", (tutor, w))
                else:
                    await self.accept(tutor, w)

    async def on_accept(self, data: tuple[SimTutor, Waiting]) -> None:
        tutor, w = data
        tutor.claimed -= 1
        if w.open:  # else the student gave up while the tutor was reading
            await self.accept(tutor, w)

    async def accept(self, tutor: SimTutor, w: Waiting) -> None:
        w.open = False
        ack = await self.call(tutor.client, "/tutor", "help:accept", {"request_id": w.request_id})
        if not ack.get("ok"):
            self.refused(ack, "help:accept")
            await w.client.disconnect()
            return
        session_id = ack["session"]["session_id"]
        tutor.sessions.add(session_id)
        q = self.report.queue(w.queue)
        wait = self.clock.now - w.arrived
        q.accepted += 1
        q.waits.append(wait)
        q.busy_hours += w.handle_s / 3600
        if wait <= self.report.target_wait_s:
            q.within_target += 1
        self.push(self.clock.now + w.handle_s, "end", (tutor, session_id, w))


# -- headcounts ---------------------------------------------------------------------------
class AdvisedPlan(Plan):
    """The advice for each local week's own demand (Erlang C on the offered load, as
    :func:`broker.capacity.synthetic.synthetic_demand` gives it), per queue and half-hour:
    a perfect forecast, so the replay checks the queueing model and nothing else."""

    label = "advice (Erlang C on each week's own demand)"

    def __init__(self, year: Any, catalog: Any, target: Any) -> None:
        self.year, self.catalog, self.target = year, catalog, target
        self.weeks: dict[dt.date, dict[Queue, Any]] = {}

    def _slot(self, q: Queue, at: dt.datetime) -> Any:
        from broker.capacity.advice import advise
        from broker.capacity.synthetic import synthetic_demand

        tz = self.catalog.timezone
        local = at.astimezone(tz).date()
        monday = local - dt.timedelta(days=local.weekday())
        if monday not in self.weeks:
            start, end, arrivals = self.year.week(monday)
            demand = synthetic_demand(arrivals, start, end, self.catalog)
            advice = advise(demand, self.target, use_abandonment=False)
            self.weeks[monday] = {qa.queue: qa for qa in advice.queues}
        found = self.weeks[monday].get(q)
        return found.slots[week_slot(at, tz)] if found is not None else None

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        slot = self._slot(q, at)
        return int(slot.needed.tutors) if slot is not None else 0

    def expected(self, q: Queue, at: dt.datetime) -> float | None:
        slot = self._slot(q, at)
        return float(slot.needed.service_level) if slot is not None else None


class FlatPlan(Plan):
    """The same headcount in every queue, all the time."""

    def __init__(self, tutors: int) -> None:
        self.headcount = tutors
        self.label = f"flat {tutors} per queue"

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        return self.headcount


# -- the in-process app -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_app(settings: Settings, schools: Sequence[Any]) -> AsyncIterator[
        tuple[str, Any]]:
    """Migrate, add the synthetic schools, start the app on 127.0.0.1; yield (url, broker)."""
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
                 tutors: int | None = None, reaction_s: float = 0.0) -> Report:
    """Replay ``year``'s arrivals in ``[start, end)`` through a broker on ``settings``."""
    from broker.capacity.advice import Target
    from broker.catalog_source import load_catalog

    catalog = load_catalog(settings)
    target = Target.from_settings(settings)
    plan: Plan = AdvisedPlan(year, catalog, target) if tutors is None else FlatPlan(tutors)
    report = Report(start, end, target.fraction, target.wait_s, plan.label)
    schools = {s.school.id: s.school for s in year.students}.values()
    clock = VirtualClock(start.timestamp())
    began = time.perf_counter()
    async with running_app(settings, list(schools)) as (url, broker):
        broker.clock = clock
        sim = Replay(url, settings.secret_key, broker, clock, catalog, plan, report,
                     reaction_s)
        await sim.run(year.between(start, end), start, end)
    report.wall_s = time.perf_counter() - began
    return report


# -- the command ---------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate", help="replay a synthetic week or year through the broker, fast")
    p.add_argument("--period", choices=("week", "year"), default="week")
    p.add_argument("--week", type=dt.date.fromisoformat, default=DEFAULT_WEEK,
                   help="the Monday of the week to replay (default %(default)s)")
    p.add_argument("--hours", type=float, default=None,
                   help="replay only this many hours from the period's start")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--tutors", type=int, default=None,
                   help="a flat headcount per queue instead of the advice")
    p.add_argument("--reaction-s", type=float, default=0.0,
                   help="tutors' mean time to accept a request they take (exponential)")
    p.add_argument("--database-url", default=None,
                   help="run against this database (default: a temporary SQLite file)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verbose", action="store_true",
                   help="keep the broker's per-request log lines (slower)")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.capacity import synthetic

    if not args.verbose:  # a log line per request and session costs more than the replay
        for name in ("broker", "web", "socketio", "engineio"):
            logging.getLogger(name).setLevel(logging.WARNING)
    year = synthetic.generate(seed=args.seed)
    if args.period == "year":
        tz = ZoneInfo(year.shape.timezone)
        start = dt.datetime.combine(year.shape.start, dt.time(), tz).astimezone(dt.UTC)
        end = dt.datetime.combine(year.shape.end, dt.time(), tz).astimezone(dt.UTC)
    else:
        start, end, _ = year.week(args.week)
    if args.hours is not None:
        end = min(end, start + dt.timedelta(hours=args.hours))
    with tempfile.TemporaryDirectory(prefix="hh-simulate-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'simulate.db'}"
        sim_settings = dataclasses.replace(
            settings, database_url=url, port=_free_port(), host="127.0.0.1",
            redis_url=settings.redis_url if args.database_url else None,
            tutor_silent_s=0.0, session_idle_s=0.0, demo=False,
        )
        report = await replay(sim_settings, year, start, end, tutors=args.tutors,
                              reaction_s=args.reaction_s)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text(),
          file=sys.stdout)
    return 0


__all__ = ["AdvisedPlan", "FlatPlan", "Report", "VirtualClock", "register", "replay"]
