"""The event loop of a replay: simulated students and tutors over socket.io, on a virtual clock.

:class:`Replay` drives a list of arrivals (:class:`broker.capacity.synthetic.Arrival`, from
the synthetic year or a district's recorded requests) through a running broker: each
arrival is a student connection with a signed token sending ``help:request``; simulated
tutors follow a :class:`~web.commands.replay_plans.Plan` (``tutor:status`` as the headcount
changes each half-hour), take the head of their queue with ``help:accept`` while they hold
fewer chats than the vendor's capacity (after a reading time, exponential with mean
``reaction_s``), and send ``session:end`` after the arrival's handle time; a student not
accepted within their patience sends ``help:cancel``.

**Students try again** (``retry=True``), as the district's usage table
implies (every one of its sessions happened): a student refused because no vendor speaks
their language at their school asks again in English a minute later; one who gave up asks
again after a break (exponential, mean :data:`RETRY_AFTER_S`); one whose earlier request is
still open asks again once it has had time to end. At most :data:`MAX_ATTEMPTS` attempts;
a student who never got through is counted in ``never_served``. Retries are requests like
any other (they count in arrivals, waits and the service level) and ``retries`` says how
many there were.

Guarantees: events are taken in time order, ties in the order they were scheduled, and
random draws come from a generator seeded per replay, so the same arrivals, plan and seed
give the same report. The broker's clock is a :class:`VirtualClock` the loop moves to each
event; the broker's own sweep runs whenever it moved :data:`SWEEP_EVERY_S` virtual seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import random
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.capacity.demand import Queue
from web.commands.replay_client import LeanClient
from web.commands.replay_plans import Plan
from web.commands.replay_report import Report

HALF_HOUR_S = 1800.0
#: Virtual seconds between the replay's broker sweeps. Each sweep touches every connection
#: before it judges who has gone, so a longer step loses nobody (a student or tutor who
#: left is found gone at the next sweep, however far it is); it only makes the broker's
#: own timers (maximum wait, the nobody-on-shift alert) fire up to this late, and none of
#: them decides what the replay measures: simulated students cancel before they leave and
#: give up (mean 5 min) long before the broker's maximum wait.
SWEEP_EVERY_S = 1800.0
#: ... and while no student is waiting or chatting (nothing a sweep could close).
IDLE_SWEEP_EVERY_S = 3600.0
#: Virtual seconds between heartbeats of the replay's connections between sweeps.
TOUCH_EVERY_S = 2.0
#: Student connections opened ahead of their arrival (the handshakes overlap the replay).
CONNECT_AHEAD = 8
#: Attempts a student makes before giving up on getting help that day.
MAX_ATTEMPTS = 6
#: Mean break before asking again after giving up (exponential).
RETRY_AFTER_S = 1200.0
#: A refused language: asked again in English after this.
RETRY_LANGUAGE_AFTER_S = 60.0
#: The student's earlier request was still open: asked again after this.
RETRY_CONFLICT_AFTER_S = 1800.0


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
    arrival: Any
    attempt: int
    open: bool = True


class Replay:
    """The event loop of one replay (see the module docstring)."""

    def __init__(self, url: str, secret: str, broker: Any, clock: VirtualClock,
                 catalog: Any, plan: Plan, report: Report, reaction_s: float = 0.0,
                 retry: bool = False) -> None:
        self.url, self.secret, self.broker, self.clock = url, secret, broker, clock
        self.catalog, self.plan, self.report = catalog, plan, report
        self.reaction_s, self.retry = reaction_s, retry
        self.arrivals: list[Any] = []
        self.connecting: dict[int, asyncio.Task[Any]] = {}
        self.rng = random.Random(0)
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.tutors: dict[Queue, list[SimTutor]] = defaultdict(list)
        self.waiting: dict[str, deque[Waiting]] = defaultdict(deque)
        self.capacity = {v.id: v.capacity for v in catalog.on_demand_vendors}
        self.last_sweep = self.last_touch = -1e18
        self.http: Any = None
        self.in_flight = 0  # students waiting or chatting

    def push(self, at: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, data))

    async def connect(self, namespace: str, identity: Any) -> Any:
        from broker import tokens

        if self.http is None:
            import aiohttp

            self.http = aiohttp.ClientSession()
        sio = LeanClient(self.http, self.url, namespace)
        await sio.connect({"token": tokens.issue(self.secret, identity)})
        return sio

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
                continue  # retries past the end still happen: they began inside it
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
        if self.http is not None:
            await self.http.close()

    async def advance(self, at: float) -> None:
        """Move the clock to ``at``; sweep every :data:`SWEEP_EVERY_S` while a student is
        waiting or chatting (every :data:`IDLE_SWEEP_EVERY_S` otherwise), and in between
        heartbeat this process's connections (the sweep's first step) whenever the clock
        moved :data:`TOUCH_EVERY_S`, so the broker sees the simulated people connected as
        a real clock would (wait estimates and "tutors on shift" count who was seen within
        a few seconds)."""
        self.clock.now = max(self.clock.now, at)
        since = self.clock.now - self.last_sweep
        if (since >= SWEEP_EVERY_S and self.in_flight) or since >= IDLE_SWEEP_EVERY_S:
            self.last_sweep = self.last_touch = self.clock.now
            await self.broker.sweep()
            await self.broker.flush_pushes()
        elif self.clock.now - self.last_touch >= TOUCH_EVERY_S:
            self.last_touch = self.clock.now
            await self.broker.presence.touch(self.broker.local_subjects(), self.clock.now)

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
                ack = await tutor.client.call("tutor:status", {"status": status})
                if not ack.get("ok"):
                    self.refused(ack, "tutor:status")

    def preconnect(self, i: int) -> asyncio.Task[Any]:
        """The connection of arrival ``i``, opened ahead (connecting changes nothing the
        replay measures: the student only asks when their arrival comes)."""

        task = self.connecting.get(i)
        if task is None:
            ident = self.identity(self.arrivals[i])
            task = self.connecting[i] = asyncio.ensure_future(self.connect("/student", ident))
        return task

    @staticmethod
    def identity(a: Any) -> Any:
        from broker import tokens

        return tokens.Identity("student", a.student.id, {
            "school_id": a.student.school.id, "grade": a.student.grade,
            "groups": sorted(a.student.groups)})

    async def on_arrive(self, i: int) -> None:
        for ahead in range(i + 1, min(i + 1 + CONNECT_AHEAD, len(self.arrivals))):
            self.preconnect(ahead)
        sio = await self.preconnect(i)
        del self.connecting[i]
        await self.ask(self.arrivals[i], sio, 1)

    async def on_retry(self, data: tuple[Any, int]) -> None:
        arrival, attempt = data
        self.report.retries += 1
        await self.ask(arrival, await self.connect("/student", self.identity(arrival)), attempt)

    def again(self, arrival: Any, attempt: int, after_s: float, **changes: Any) -> None:
        """Schedule the student's next attempt, or count them never served."""
        if not self.retry:
            return
        if attempt >= MAX_ATTEMPTS:
            self.report.never_served += 1
            return
        at = self.clock.now + after_s
        arrival = dataclasses.replace(
            arrival, at=dt.datetime.fromtimestamp(at, dt.UTC), **changes)
        self.push(at, "retry", (arrival, attempt + 1))

    async def ask(self, a: Any, sio: Any, attempt: int) -> None:
        self.report.arrivals += 1
        ack = await sio.call("help:request", {"subject": a.subject, "language": a.language})
        if not ack.get("ok"):
            error = ack.get("error", {})
            if error.get("code") == "unmet":
                reason = error.get("detail", {}).get("reason", "unmet")
                self.report.unmet[reason] = self.report.unmet.get(reason, 0) + 1
                if reason == "language_unsupported" and a.language != "en":
                    self.again(a, attempt, RETRY_LANGUAGE_AFTER_S, language="en")
                elif self.retry:
                    self.report.never_served += 1  # nothing a new attempt would change
            elif error.get("code") == "conflict":
                self.report.conflicts += 1  # the student's earlier request is still open
                self.again(a, attempt, RETRY_CONFLICT_AFTER_S)
            else:
                self.refused(ack, "help:request")
            await sio.disconnect()
            return
        request = ack["request"]
        name = f"{request['vendor']}:{request['language']}"
        w = Waiting(request["id"], name, self.clock.now, a.handle_s, sio, a, attempt)
        q = self.report.queue(name)
        q.arrivals += 1
        expected = self.plan.expected((request["vendor"], request["language"]), a.at)
        if expected is not None:
            q.expected_weight += 1
            q.expected_sum += expected
        self.waiting[name].append(w)
        self.in_flight += 1
        self.push(self.clock.now + a.patience_s, "give_up", w)

    async def leave(self, w: Waiting) -> None:
        """The student of ``w`` closes their widget (their request or chat is over)."""
        self.in_flight -= 1
        await w.client.disconnect()

    async def on_give_up(self, w: Waiting) -> None:
        if not w.open:
            return
        w.open = False
        ack = await w.client.call("help:cancel", {"request_id": w.request_id})
        if ack.get("ok"):
            self.report.queue(w.queue).gave_up += 1
            self.again(w.arrival, w.attempt, self.rng.expovariate(1 / RETRY_AFTER_S))
        else:
            self.refused(ack, "help:cancel")
        await self.leave(w)

    async def on_end(self, data: tuple[SimTutor, str, Waiting]) -> None:
        tutor, session_id, w = data
        ack = await tutor.client.call("session:end", {"session_id": session_id})
        if not ack.get("ok"):
            self.refused(ack, "session:end")
        tutor.sessions.discard(session_id)
        await self.leave(w)

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
        ack = await tutor.client.call("help:accept", {"request_id": w.request_id})
        if not ack.get("ok"):
            self.refused(ack, "help:accept")
            await self.leave(w)
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


__all__ = ["Replay", "SimTutor", "VirtualClock", "Waiting"]
