"""Driving a :class:`~broker.service.Broker` directly, with nothing that depends on time.

The broker runs on a real :class:`~broker.lifecycle_store.LifecycleStore` on an SQLite
file (the one source of truth) and in-process presence and throttles, with

* a :class:`FakeClock` that moves only when a test calls :meth:`FakeClock.advance` (the
  broker is the only reader of time: presence, the throttles and the wait estimates are
  all handed the broker's ``now``);
* a :class:`RecordingNotifier` that records every push as ``(to, event, data)``;
* no background sweep (``start(sweep=False)``): a test calls :meth:`Rig.sweep`;
* queue pushes that wait an hour, never at once (``lead_pushes=False``), so none is ever
  made behind a test's back: :meth:`Rig.flush` makes the pending ones
  (``Broker.flush_pushes``). ``broker_rig(url, lead_pushes=True)`` keeps production's
  first push at once, with the hour as the window.

Reuse it from any suite: ``async with broker_rig(url) as rig`` on a database prepared
with ``tests.broker.district.prepare_database``, or the ``rig`` fixture of tests/broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.identity import Identity, Learner, Tutor, student_identity, tutor_identity
from broker.lifecycle_store import LifecycleStore
from broker.presence import MemoryPresence, student_subject, tutor_subject
from broker.service import Broker
from broker.settings import Settings
from routing.schools import School, SchoolDirectory, SchoolKind
from tests.broker.district import SCHOOLS

T0 = 1_718_000_000.0  # 2024-06-10 06:13:20 UTC, a Monday
PUSH_DELAY_S = 3600.0  # "never on its own": pushes are made by Rig.flush


class FakeClock:
    """Epoch seconds that change only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Sent(NamedTuple):
    to: str  # "student:<pseudonym>", "tutor:<id>" or "queue:<vendor>:<language>"
    event: str
    data: dict[str, Any]
    skip: str | None = None  # the connection left out (a student push only)
    local: bool = False  # to this process's connections only (the sweep's reconciliation)


class RecordingNotifier:
    """A :class:`broker.notifier.Notifier` that records instead of sending."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def to_student(
        self, student: str, event: str, data: dict[str, Any], skip: str | None = None,
        *, local: bool = False,
    ) -> None:
        self.sent.append(Sent(student_subject(student), event, data, skip, local))

    async def to_room(
        self, tutor: str, students: list[str], event: str, tutor_data: dict[str, Any],
        student_data: dict[str, Any], *, local: bool = False,
    ) -> None:
        self.sent.append(Sent(f"room-tutor:{tutor}", event, tutor_data, None, local))
        for roster_id in students:
            self.sent.append(Sent(f"room-student:{roster_id}", event, student_data, None, local))

    async def to_tutor(self, tutor_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(Sent(tutor_subject(tutor_id), event, data))

    async def to_queue_watchers(
        self, queue: str, event: str, data: dict[str, Any], *, local: bool = False
    ) -> None:
        self.sent.append(Sent(f"queue:{queue}", event, data, None, local))

    def of(self, to: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """The data of every push to ``to`` (a subject) and/or of ``event``, in order."""
        return [
            s.data
            for s in self.sent
            if (to is None or s.to == to) and (event is None or s.event == event)
        ]

    def clear(self) -> None:
        self.sent.clear()


def student(
    pseudonym: str, school_id: str | None = "elem", grade: int | None = 3, **learner: Any
) -> Identity:
    return student_identity(pseudonym, Learner(school_id=school_id, grade=grade, **learner))


def tutor(
    tutor_id: str, vendor: str = "paper", languages: tuple[str, ...] = ("en",), name: str = ""
) -> Tutor:
    made = tutor_identity(tutor_id, vendor, languages, source="test", display_name=name)
    assert made.tutor is not None
    return made.tutor


def as_identity(who: Tutor) -> Identity:
    """The identity a tutor's chat events come with."""
    return tutor_identity(who.id, who.vendor, who.languages, source="test")


def school_directory() -> SchoolDirectory:
    """The schools of tests/broker/conftest.py's SCHOOLS (the database has the same)."""
    return SchoolDirectory(
        {i: School(i, n, r, lo, hi, SchoolKind(k)) for i, n, r, lo, hi, k in SCHOOLS}
    )


def unit_settings(database_url: str, **changes: Any) -> Settings:
    """Round numbers, so that a test can step to either side of each limit."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "unit",
        "pseudonym_secret": "unit",
        "grace_seconds": 60.0,
        "queue_max_wait_s": 3600.0,
        "session_idle_s": 600.0,
        "chat_rate_messages": 3,
        "chat_rate_window_s": 10.0,
        "tutor_silent_s": 0.0,  # tests/broker/test_safety.py turns it on
    }
    values.update(changes)
    return Settings(**values)


@dataclass
class Rig:
    """A broker and what a test needs to drive and observe it."""

    broker: Broker
    clock: FakeClock
    notifier: RecordingNotifier
    engine: AsyncEngine
    connected: set[str] = field(default_factory=set)  # subjects this "process" serves

    @property
    def presence(self) -> MemoryPresence:
        assert isinstance(self.broker.presence, MemoryPresence)
        return self.broker.presence

    @property
    def settings(self) -> Settings:
        return self.broker.settings

    async def connect(self, who: Identity | Tutor) -> dict[str, Any]:
        """A connection is made (as the socket.io edge would): the person is touched now,
        then by every sweep until :meth:`disconnect`; returns what they are shown."""
        if isinstance(who, Tutor):
            self.connected.add(tutor_subject(who.id))
            return await self.broker.tutor_state(who)
        self.connected.add(student_subject(who.subject))
        return await self.broker.student_state(who)

    def disconnect(self, who: Identity | Tutor) -> None:
        """The person's last connection to this process closes: sweeps stop touching them."""
        if isinstance(who, Tutor):
            self.connected.discard(tutor_subject(who.id))
        else:
            self.connected.discard(student_subject(who.subject))

    async def ask(self, who: Identity, subject: str = "math", language: str = "en") -> str:
        """A connected student asks for help; returns the request id."""
        await self.connect(who)
        return str((await self.broker.request_help(who, subject, language))["id"])

    async def sweep(self) -> None:
        """One sweep at the clock's time, then the pushes it caused."""
        await self.broker.sweep()
        await self.flush()

    async def flush(self) -> None:
        await self.broker.flush_pushes()

    async def waiting(self, queue: str = "paper:en") -> list[str]:
        """The queue's request ids in service order (the database's queued rows)."""
        rows, _ = await self.broker.store.queue(queue)
        return [row["id"] for row in rows]

    async def lengths(self) -> dict[str, int]:
        return {q: n for q, (n, _) in (await self.broker.store.queue_figures()).items()}

    async def load(self, tutor_id: str) -> int:
        """How many sessions the tutor holds (their capacity in use)."""
        state = await self.broker.store.tutor_state(tutor_id)
        return int(state["open_sessions"]) if state else 0

    async def is_open(self, session_id: str) -> bool:
        return bool(await self.broker.store.open_sessions(session_id=session_id))

    async def request_row(self, request_id: str) -> dict[str, Any]:
        return await self._row(self.broker.store.requests, request_id)

    async def session_row(self, session_id: str) -> dict[str, Any]:
        return await self._row(self.broker.store.sessions, session_id)

    async def _row(self, table: sa.Table, row_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            [row] = (await conn.execute(sa.select(table).where(table.c.id == row_id))).mappings()
        return dict(row)


@asynccontextmanager
async def broker_rig(
    database_url: str,
    clock: FakeClock | None = None,
    *,
    lead_pushes: bool = False,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """A started broker (no background sweep) on fresh memory backends over a migrated
    database; a second rig on the same database is a restarted process."""
    engine = create_engine(database_url)
    notifier = RecordingNotifier()
    clock = clock or FakeClock()
    broker = Broker(
        unit_settings(database_url, **settings),
        load_catalog(),
        school_directory(),
        LifecycleStore(engine),
        notifier,
        presence=MemoryPresence(),
        clock=clock,
        push_delay_s=PUSH_DELAY_S,
        lead_pushes=lead_pushes,
    )
    rig = Rig(broker, clock, notifier, engine)
    broker.local_subjects = lambda: sorted(rig.connected)
    await broker.start(sweep=False)
    try:
        yield rig
    finally:
        await broker.stop()
        await engine.dispose()
