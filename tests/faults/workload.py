"""Who is in the district during a fault, and what they keep doing.

:class:`Population`: students of four queues (paper and tutorcom, English and Spanish) and
tutors who take from both languages of their vendor, spread over the servers. :class:`Churn`:
every person acts every 50-300 ms (seeded per person): students ask for help, cancel (and
leave a request they failed to cancel alone, so its fate can be checked), chat and end
sessions; tutors accept from the head of what their console shows, chat and end sessions.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tests.broker.harness import student, tutor
from tests.faults.cluster import Cluster
from tests.faults.people import Call, Person, Student, Tutor

# (school, grade, language) -> the queue the test district routes it to
PROFILES = [
    ("elem", 3, "en", "paper:en"),
    ("hs", 10, "en", "tutorcom:en"),
    ("elem", 4, "es", "paper:es"),
    ("hs", 11, "es", "tutorcom:es"),
]
TUTOR_VENDORS = ["paper", "tutorcom"]
LANGUAGES = ["en", "es"]
# Churn chats faster than the documented 10 messages per 10 s, and a busy student asks
# and cancels faster than 30 times a minute: lift both limits so every session keeps
# talking through the fault, and so the checks afterwards (a request and its cancel per
# student) are never throttled: a cancel refused rate_limited left a student's request
# open and failed the check (seed 22). The limits have tests of their own:
# test_chat_across_processes, tests/throttle, tests/broker/test_request_throttle.py.
CHURN_ENV = {"HH_CHAT_RATE_MESSAGES": "1000", "HH_REQUEST_RATE_LIMIT": "1000"}


@dataclass
class Population:
    cluster: Cluster
    students: list[Student] = field(default_factory=list)
    tutors: list[Tutor] = field(default_factory=list)

    @classmethod
    def make(cls, cluster: Cluster, seed: int, students: int = 30, tutors: int = 6) -> Population:
        servers = len(cluster.servers)
        people = cls(cluster)
        for i in range(students):
            school, grade, language, queue = PROFILES[i % len(PROFILES)]
            identity = student(f"st{seed}x{i:02d}", school, grade)
            people.students.append(Student(identity, cluster, i % servers, language, queue))
        for i in range(tutors):
            vendor = TUTOR_VENDORS[i % len(TUTOR_VENDORS)]
            identity = tutor(f"tu{seed}x{i}", vendor, LANGUAGES, name=f"Tutor {i}")
            queues = [f"{vendor}:{language}" for language in LANGUAGES]
            people.tutors.append(Tutor(identity, cluster, (i + 1) % servers, queues))
        return people

    @property
    def everyone(self) -> list[Person]:
        return [*self.students, *self.tutors]

    async def connect(self) -> Population:
        await asyncio.gather(*(p.connect() for p in self.everyone))
        await asyncio.gather(*(t.set_status("available") for t in self.tutors))
        return self

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.everyone), return_exceptions=True)

    def calls(self) -> list[Call]:
        return [c for p in self.everyone for c in p.calls]

    def save(self, folder: Path) -> Path:
        """What every client did and saw (clients.json) and the database's requests and
        sessions (CSV), for reading a failure after the test."""
        folder.mkdir(parents=True, exist_ok=True)
        clients = [
            {
                "name": p.name,
                "home": p.home,
                "offline": p.offline,
                "calls": [vars(c) for c in p.calls],
                "sent": p.sent,
                "sessions": {
                    log.id: {
                        "request_id": log.request_id,
                        "open": log.open,
                        "ended": log.ended,
                        "delivered": [m["id"] for m in log.delivered],
                        "pending": sorted(log.pending),
                        "arrivals": log.arrivals,
                        "reused": log.reused,
                    }
                    for log in p.sessions.values()
                },
            }
            for p in self.everyone
        ]
        (folder / "clients.json").write_text(json.dumps(clients, indent=1, default=str))
        for table in ("help_requests", "tutoring_sessions"):
            self.cluster.pg.dump(self.cluster.database, table, folder / f"{table}.csv")
        return folder

    def named(self, name: str) -> list[Person]:
        """Every connection of one person (a tutor may have a console on each process)."""
        return [p for p in self.everyone if p.name == name]


@dataclass
class Timeline:
    """When the fault was on (epoch seconds), for the error counts of each phase."""

    fault: str
    seed: int
    fault_from: float = 0.0
    fault_until: float = 0.0
    churn_until: float = 0.0
    answers_during: bool = False  # every call must be answered while the fault is on
    # nothing may wait for the 30 s quiet-spell sync (the server knows pushes were lost
    # and must say so with server:resync)
    prompt: bool = False

    def overlaps(self, start: float, end: float, after: float = 0.0) -> bool:
        """A call in flight at any moment the fault was on, or up to ``after`` seconds past
        it (one that started just before the database was killed may be cut by it)."""
        return start <= self.fault_until + after and end >= self.fault_from

    def phase(self, at: float) -> str:
        if at < self.fault_from:
            return "before"
        if at <= self.fault_until:
            return "during"
        return "after"


class Churn:
    """Everyone acting at once until :meth:`stop`. ``chat_only``: sessions stay as they are
    and both sides only chat."""

    def __init__(
        self,
        people: Population,
        seed: int,
        pace_s: tuple[float, float] = (0.05, 0.3),
        chat_only: bool = False,
    ) -> None:
        self.people = people
        self.seed = seed
        self.pace_s = pace_s
        self.chat_only = chat_only
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._actors: list[tuple[Person, random.Random]] = []
        # cancels answered with an error that is not "it was not waiting": (student, request)
        self.failed_cancels: list[tuple[Student, str, Call]] = []

    def start(self) -> Churn:
        for i, person in enumerate(self.people.everyone):
            rng = random.Random(self.seed * 1000 + i)
            self._actors.append((person, rng))
            self._tasks.append(asyncio.create_task(self._loop(person, rng)))
        return self

    def wave(self) -> None:
        """Everyone connected acts now, without waiting for their turn, so that a fault
        injected right after lands with operations of every kind in flight."""
        for person, rng in self._actors:
            if person.server is not None:
                self._tasks.append(asyncio.create_task(self._act(person, rng)))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _loop(self, person: Person, rng: random.Random) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(rng.uniform(*self.pace_s))
            if person.server is not None and not self._stop.is_set():
                await self._act(person, rng)

    async def _act(self, person: Person, rng: random.Random) -> None:
        if isinstance(person, Student):
            await self._student(person, rng)
        elif isinstance(person, Tutor):
            await self._tutor(person, rng)

    async def _student(self, s: Student, rng: random.Random) -> None:
        session = s.session()
        if session is not None:
            if self.chat_only or rng.random() < 0.8:
                await s.say(session.id)
            else:
                await s.end_session(session.id)
        elif self.chat_only:
            return
        elif s.request is None:
            await s.ask_help()
        elif rng.random() < 0.4 and s.request not in self._kept(s):
            rid = s.request
            call = await s.cancel(rid)
            if not call.ok and call.code not in ("not_found", "already_taken"):
                self.failed_cancels.append((s, rid, call))

    def _kept(self, s: Student) -> set[str]:
        return {rid for who, rid, _ in self.failed_cancels if who is s}

    async def _tutor(self, t: Tutor, rng: random.Random) -> None:
        open_sessions = t.open_sessions()
        roll = rng.random()
        if open_sessions and (self.chat_only or roll < 0.5):
            await t.say(rng.choice(open_sessions).id)
        elif open_sessions and roll < 0.65:
            await t.end_session(rng.choice(open_sessions).id)
        elif len(open_sessions) < 2 and not self.chat_only:
            heads = [q["requests"][:3] for q in t.queues.values() if q.get("requests")]
            if heads:
                await t.accept(rng.choice(rng.choice(heads))["id"])


async def pair_up(people: Population, per_tutor: int = 2) -> list[tuple[Student, Tutor, str]]:
    """Open sessions: each tutor takes ``per_tutor`` students of their queues, students on a
    different server from their tutor where the population allows."""
    pairs = []
    free = list(people.students)
    for t in people.tutors:
        mine = [s for s in free if s.queue in t.queue_names]
        mine.sort(key=lambda s: s.home == t.home)
        for s in mine[:per_tutor]:
            free.remove(s)
            ask = await s.ask_help()
            accept = await t.accept(ask.result["request"]["id"])
            assert accept.ok, f"setting up: {t.name} could not accept: {accept.result}"
            pairs.append((s, t, accept.result["session"]["session_id"]))
    for s, _, sid in pairs:
        await wait_for(partial(_shows, s, sid), f"{s.name} told of {sid}")
    return pairs


def _shows(s: Student, session_id: str) -> bool:
    return s.active == session_id


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"setting up: not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


Fault = Callable[[Churn], Awaitable[Any]]


async def churn_through(
    people: Population,
    timeline: Timeline,
    fault: Fault,
    before_s: float = 1.5,
    after_s: float = 1.5,
    chat_only: bool = False,
) -> Churn:
    """Churn ``before_s``, run the fault (timed on ``timeline``), churn ``after_s`` more."""
    churn = Churn(people, timeline.seed, chat_only=chat_only).start()
    await asyncio.sleep(before_s)
    timeline.fault_from = time.time()
    await fault(churn)
    timeline.fault_until = time.time()
    await asyncio.sleep(after_s)
    await churn.stop()
    timeline.churn_until = time.time()
    return churn
