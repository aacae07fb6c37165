"""Booked sessions run through the broker: rooms for the scheduler's occurrences.

A **room** is a ``tutoring_sessions`` row with a ``programme`` and a ``booking`` (the
occurrence id) and no request: one tutor (the occurrence's, a substitute included) and the
series' students (``session_participants``, up to the offer's group limit). Chat in a room
is the on-demand chat (the session's sequence numbers, buffer, ``chat:send``,
``session:sync``, ``chat:typing``, rate limits) with every message sent to every
participant.

Opening and closing (:func:`run_rooms`, the worker's ``scheduler_rooms`` job, or called
directly with an explicit ``now``):

* A scheduled occurrence's room opens :data:`OPEN_LEAD` (5 minutes) before it starts;
  rooms are written a batch (:data:`OPEN_BATCH`) per transaction, and the unique
  ``booking`` makes a second run or a second worker open nothing twice.
* A room closes :data:`OVERRUN` (5 minutes) after its occurrence's end (end reason
  ``scheduled_end``), or at the next run once its occurrence is cancelled (``cancelled``);
  its tutor may end it earlier (``tutor``). A cancelled occurrence never opens.

Telling people: every broker process, every :data:`ROOM_WATCH_S` (and at each sweep),
compares the open rooms in the database, each with its people's key (the occurrence's
tutor, its series, the series' number of students: :func:`broker.rooms_store.open_people`,
one indexed read), with those it knew (:meth:`Rooms.reconcile`) and tells its own
connected participants of each room that opened (``booked:open``), closed
(``session:ended``) or whose people changed (``booked:open`` again to the tutor and
students now, ``session:ended`` with reason ``substituted`` to a replaced tutor); so
whatever process or worker opened or closed a room, or recorded a substitute or added a
student, each connected person is told within about half a second, and nothing the
worker or the scheduler did depends on reaching the web processes.

Who may enter: what the database says now, as of this process's last look (at most
:data:`ROOM_WATCH_S` old, never read per message): the tutor whose scheduler id
(:attr:`broker.identity.Tutor.scheduler_id`) is the occurrence's (a substitute included),
and students whose launch carried a roster id (:attr:`broker.identity.Learner.roster_id`)
among the series'; anyone else is refused ``not_allowed``. ``booked:join`` records attendance
(:func:`broker.scheduler.attendance.record_join`: present by start + 5 minutes, then late).

Privacy: students see the tutor's display name and the other students by first name (from
their launch) or pseudonym; tutors see pseudonyms, grade bands, the school's kind, the
language and subject (first names only with ``HH_SHOW_FIRST_NAME``); nobody is shown a
roster id.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import rooms_store as store
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.lifecycle_store import Resent, epoch
from broker.round_trips import RoundTrips
from broker.scheduler import attendance
from broker.scheduler.service import Scheduler
from broker.views import iso, message_view, resent_view
from routing.grades import grade_band

if TYPE_CHECKING:
    from broker.service import Broker

log = logging.getLogger(__name__)

OPEN_LEAD = timedelta(minutes=5)
OVERRUN = timedelta(minutes=5)
SOON = timedelta(hours=12)  # a connecting person is told of their next session this far ahead
OPEN_BATCH = 500
ROOM_WATCH_S = 0.5  # how often each broker process looks for rooms opened or closed
ROOMS_CACHED = 20_000
SYNC_TRIES = 3  # how many times a load brings a lagging room's people up to date


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(value: datetime | None) -> float:
    return epoch(value) or 0.0


# -- opening and closing (the worker's job) ------------------------------------------------
async def open_due(engine: AsyncEngine, now: datetime, *, lead: timedelta = OPEN_LEAD,
                   batch: int = OPEN_BATCH) -> list[str]:
    """Open the room of every scheduled occurrence starting within ``lead`` of ``now``
    (and not yet ended); return the ids of the rooms this call opened."""
    opened: list[str] = []
    while True:
        async with engine.connect() as conn:
            due = await store.due_to_open(conn, now + lead, now, batch)
        if not due:
            return opened
        rooms: list[dict[str, Any]] = []
        people: list[dict[str, Any]] = []
        for occ in due:
            sid = new_id()
            grades = [s["grade"] for s in occ["students"] if s["grade"] is not None]
            rooms.append({
                "id": sid, "request_id": None, "student": None,
                "vendor": occ["vendor"], "tutor_id": occ["tutor_id"],
                "tutor_name": (occ["tutor_name"] or "Tutor")[:100],
                "language": occ["language"], "subject": occ["subject"],
                "school_id": occ["school_id"], "school_kind": occ["school_kind"],
                "grade": min(grades) if grades else None,
                "queued_at": occ["starts_at"], "accepted_at": now, "last_activity_at": now,
                "programme": occ["programme"], "booking": occ["id"],
            })
            people += [{"session_id": sid, "student_id": s["student_id"], "grade": s["grade"],
                        "pseudonym": None, "first_name": None, "joined_at": None}
                       for s in occ["students"]]
        made = await store.open_batch(engine, rooms, people)
        opened += [r["id"] for r in rooms if r["id"] in made]
        if len(due) < batch:
            return opened
        if not made:
            return opened  # every one was opened by someone else meanwhile: stop here


async def close_due(engine: AsyncEngine, now: datetime, *,
                    overrun: timedelta = OVERRUN) -> list[str]:
    """Close every open room whose occurrence ended ``overrun`` ago or was cancelled;
    return the ids this call closed."""
    async with engine.connect() as conn:
        due = await store.due_to_close(conn, now - overrun)
    closed = []
    for room in due:
        if await store.close(engine, room["id"], now, room["why"]):
            closed.append(room["id"])
    return closed


async def run_rooms(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """The ``scheduler_rooms`` job: close what is over, open what is due."""
    closed = await close_due(engine, now)
    opened = await open_due(engine, now)
    if opened or closed:
        log.info("rooms: %d opened, %d closed", len(opened), len(closed))
    return {"opened": len(opened), "closed": len(closed)}


# -- the broker's side ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Room:
    """A room as the broker serves it. Its people are what the database says now: for an
    open room, the occurrence's tutor (a substitute included) and the series' students;
    for an ended one, its tutor and participants as they were."""

    id: str
    booking: str
    programme: str
    tutor: str  # the scheduler id of its tutor
    tutor_name: str
    students: frozenset[str]  # roster ids
    vendor: str
    language: str
    subject: str
    school_kind: str
    opened_at: float
    starts_at: float
    ends_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Room:
        """From :func:`broker.rooms_store.rooms`' row."""
        live = row["ended_at"] is None and row["occ_tutor"] is not None
        return cls(
            id=row["id"], booking=row["booking"], programme=row["programme"] or "",
            tutor=row["occ_tutor"] if live else row["tutor_id"],
            tutor_name=(row["occ_tutor_name"] if live else row["tutor_name"]) or "Tutor",
            students=frozenset(s["student_id"] for s in row["students"]) if live
            else frozenset(p["student_id"] for p in row["people"]),
            vendor=row["vendor"], language=row["language"], subject=row["subject"],
            school_kind=row["school_kind"] or "", opened_at=_seconds(row["accepted_at"]),
            starts_at=_seconds(row["starts_at"]), ends_at=_seconds(row["ends_at"]),
        )


def role_in(identity: Identity, room: Room) -> str | None:
    """``tutor`` or ``student`` if ``identity`` is one of the room's people, else None."""
    if identity.tutor is not None and identity.tutor.scheduler_id == room.tutor:
        return "tutor"
    learner = identity.learner
    if learner is not None and learner.roster_id is not None and learner.roster_id in room.students:
        return "student"
    return None


def _slot(room_id: str, kind: str, person: str) -> str:
    """What a room's buffer records as a message's sender (8 characters): ``kind`` (``t``
    for a tutor, ``s`` for a student) and 7 of a digest of the room and the person's
    scheduler or roster id. It stays the same while the room's people change (a
    substitute, a student added), so the messages a page rejoins with name their senders as
    the pushes did; it names nobody by itself."""
    return kind + hashlib.sha256(f"{room_id}:{person}".encode()).hexdigest()[:7]


def _sender_slot(room: Room, identity: Identity, role: str) -> str:
    if role == "tutor":
        return _slot(room.id, "t", room.tutor)
    assert identity.learner is not None and identity.learner.roster_id is not None
    return _slot(room.id, "s", identity.learner.roster_id)


def _first_name(given_name: str) -> str:
    words = given_name.split()
    return words[0][:40] if words else ""


class Rooms:
    """The broker's handling of rooms (one per :class:`~broker.service.Broker`)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._cache: dict[str, Room] = {}
        # open rooms at this process's last look, with their people's key (open_people)
        self._known: dict[str, tuple[Any, ...]] | None = None
        self._looking = asyncio.Lock()  # one reconcile at a time (the watch and the sweep)
        # what people connecting together are told, looked up together (store.people_rooms)
        self._people = {
            role: RoundTrips[str, tuple[list[dict[str, Any]], dict[str, Any] | None]](
                f"rooms-of-{role}s", functools.partial(self._rooms_of, role))
            for role in store.ROLES
        }

    @property
    def engine(self) -> AsyncEngine:
        return self.broker.store.engine

    async def start(self) -> None:
        """Learn which rooms are open now (at the process's start): the sweeps tell of
        those that open or close after it; people connecting are told on connect."""
        try:
            self._known = await store.open_people(self.engine)
        except Exception:
            log.warning("could not read the open rooms at start; the first sweep will",
                        exc_info=True)

    def now(self) -> datetime:
        return _at(self.broker.clock())

    async def _rooms_of(
        self, role: str, people: list[str]
    ) -> list[tuple[list[dict[str, Any]], dict[str, Any] | None] | BaseException]:
        now = self.now()
        return [*await store.people_rooms(self.engine, self.broker.store.reader, now,
                                          now + SOON, role, people)]

    # -- lookups ----------------------------------------------------------------------
    def cached(self, session_id: str) -> bool:
        """Whether :meth:`room` would answer ``session_id`` from this process's cache."""
        return session_id in self._cache

    async def room(self, session_id: str) -> Room | None:
        """The open room ``session_id``, or None (no such session, an on-demand one, or
        ended)."""
        found = self._cache.get(session_id)
        if found is not None:
            return found
        rows = [r for r in await self._load([session_id]) if r["ended_at"] is None]
        if not rows:
            return None
        return self._remember(Room.from_row(rows[0]))

    async def _load(self, ids: set[str] | list[str]) -> list[dict[str, Any]]:
        """The rooms' rows, those whose session row lagged its occurrence's people (a
        substitute, a student added) first brought up to date (:func:`store.sync_people`),
        so a new student's join has its participant row and a substitute's connect finds
        the room. A row may still lag (:func:`store.drifted`) only if the people changed
        again during each of :data:`SYNC_TRIES` tries."""
        rows = await store.rooms(self.engine, ids)
        for _ in range(SYNC_TRIES):
            lagging = [r for r in rows if store.drifted(r)]
            if not lagging:
                break
            await store.sync_people(self.engine, lagging)
            # a student added or a substitute recorded between the sync and this read
            # leaves the row lagging again: bring it up again, a few times at most
            rows = await store.rooms(self.engine, ids)
        return rows

    def _remember(self, room: Room) -> Room:
        if len(self._cache) >= ROOMS_CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[room.id] = room
        return room

    def forget(self, session_id: str) -> None:
        self._cache.pop(session_id, None)

    @staticmethod
    def member(identity: Identity, room: Room) -> str:
        """The caller's role in the room; :class:`NotAllowed` for anyone not booked."""
        role = role_in(identity, room)
        if role is None:
            raise NotAllowed("this session is for its booked tutor and students")
        return role

    # -- views ------------------------------------------------------------------------
    def view(self, room: Room, people: list[dict[str, Any]], for_role: str,
             seq: int = 0) -> dict[str, Any]:
        """What a participant sees of the room: for students, the tutor's display name and
        the students who joined by first name or pseudonym; for the tutor, every booked
        student's pseudonym (once joined) and grade band."""
        show = self.broker.settings.show_first_name_to_tutors
        view: dict[str, Any] = {
            "session_id": room.id, "request_id": None, "programme": room.programme,
            "booking": room.booking, "vendor": room.vendor,
            "vendor_name": self.broker._vendor_name(room.vendor), "language": room.language,
            "subject": room.subject, "started_at": iso(room.opened_at),
            "starts_at": iso(room.starts_at), "ends_at": iso(room.ends_at),
            "closes_at": iso(room.ends_at + OVERRUN.total_seconds()),
            "tutor": {"display_name": room.tutor_name}, "seq": seq,
        }
        if for_role == "tutor":
            view["school_kind"] = room.school_kind
            view["students"] = [{
                "pseudonym": p["pseudonym"], "joined": p["joined_at"] is not None,
                "grade_band": grade_band(p["grade"]) if p["grade"] is not None else "",
                **({"first_name": p["first_name"] or ""} if show else {}),
            } for p in people if p["student_id"] in room.students]
        else:
            view["students"] = [{
                "pseudonym": p["pseudonym"], "name": p["first_name"] or p["pseudonym"],
            } for p in people if p["joined_at"] is not None and p["student_id"] in room.students]
        return view

    def _sender(self, identity: Identity, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(what students see, what the tutor sees) of a message's sender."""
        if role == "tutor":
            shown = {"role": "tutor", "name": identity.tutor.display_name if identity.tutor
                     else "Tutor"}
            return shown, shown
        first = _first_name(identity.learner.given_name) if identity.learner else ""
        to_students = {"role": "student", "pseudonym": identity.subject,
                       "name": first or identity.subject}
        to_tutor: dict[str, Any] = {"role": "student", "pseudonym": identity.subject}
        if self.broker.settings.show_first_name_to_tutors and first:
            to_tutor["first_name"] = first
        return to_students, to_tutor

    async def _messages(self, room: Room, people: list[dict[str, Any]], for_role: str,
                        after_seq: int) -> list[dict[str, Any]]:
        """The room's buffered messages after ``after_seq``, each with ``by`` as its push
        had it for ``for_role`` (a student's from their slot, see :func:`_slot`; none for a
        student who wrote before joining, whose pseudonym the room does not know; a
        replaced tutor's as ``Tutor``, whose name the room no longer holds)."""
        joined = {_slot(room.id, "s", p["student_id"]): p for p in people if p["pseudonym"]}
        tutor = _slot(room.id, "t", room.tutor)
        show = self.broker.settings.show_first_name_to_tutors
        out = []
        for m in await self.broker.store.messages_after(room.id, after_seq):
            sender = str(m["sender"])
            by_tutor = sender.startswith("t")
            message = message_view(room.id, m["seq"], "tutor" if by_tutor else "student",
                                   m["text"], epoch(m["at"]) or 0.0)
            if by_tutor:
                message["by"] = {"role": "tutor",
                                 "name": room.tutor_name if sender == tutor else "Tutor"}
            else:
                p = joined.get(sender)
                if p is not None:
                    by: dict[str, Any] = {"role": "student", "pseudonym": p["pseudonym"]}
                    if for_role == "student":
                        by["name"] = p["first_name"] or p["pseudonym"]
                    elif show and p["first_name"]:
                        by["first_name"] = p["first_name"]
                    message["by"] = by
            out.append(message)
        return out

    async def _tell(self, room: Room, event: str, to_students: dict[str, Any],
                    to_tutor: dict[str, Any], *, local: bool = False) -> None:
        await self.broker.notifier.to_room(
            room.tutor, sorted(room.students), event, to_tutor, to_students, local=local
        )

    # -- what a participant does ------------------------------------------------------
    async def join(self, identity: Identity, room: Room, after_seq: int) -> dict[str, Any]:
        """Enter the room: record attendance (present or late) and, for a student, their
        pseudonym and first name; tell the others; answer the room and the messages after
        ``after_seq``."""
        role = self.member(identity, room)
        at = self.now()
        ctx = Scheduler(self.engine, secret="", clock=lambda: at)
        person = identity.tutor.scheduler_id if identity.tutor else (
            identity.learner.roster_id if identity.learner else None)
        assert person is not None  # member() checked it
        status = await attendance.record_join(ctx, room.booking, role, person, at)
        to_students, to_tutor = self._sender(identity, role)
        if role == "student":
            first = _first_name(identity.learner.given_name) if identity.learner else ""
            await store.join(self.engine, room.id, person, identity.subject, first or None, at)
            await self._tell(room, "booked:joined", {"session_id": room.id, "who": to_students},
                             {"session_id": room.id, "who": to_tutor})
        [row] = await store.rooms(self.engine, [room.id])
        messages = await self._messages(room, row["people"], role, after_seq)
        return {"session": self.view(room, row["people"], role, int(row["seq"] or 0)),
                "messages": messages, "attendance": status,
                "me": to_tutor if role == "tutor" else to_students}

    async def send(
        self, identity: Identity, room: Room, text: str, client_id: str | None = None,
        moderation: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Number, store and relay a message to every participant (as on demand, at most
        once per ``client_id``); ``text`` is what moderation let through
        (:meth:`broker.safety.Safety.screen`), ``moderation`` goes on the message."""
        role = self.member(identity, room)
        b = self.broker
        await b._throttle(b.chat_limiter, f"{role}:{identity.subject}", "too many messages")
        now = b.clock()
        slot = _sender_slot(room, identity, role)
        seq = await b.store.add_message(room.id, role, text, now, room.opened_at,
                                        buffered_as=slot, client_id=client_id)
        if seq is None:
            self.forget(room.id)
            raise NotFound("no such open session of yours")
        to_students, to_tutor = self._sender(identity, role)
        if isinstance(seq, Resent):
            message = {**resent_view(room.id, seq, slot), "from": role}
            return {**message, "by": to_tutor if role == "tutor" else to_students}
        message = message_view(room.id, seq, role, text, now)
        if moderation is not None:
            message["moderation"] = moderation
        await self._tell(room, "chat:message", {**message, "by": to_students},
                         {**message, "by": to_tutor})
        return {**message, "by": to_tutor if role == "tutor" else to_students}

    async def typing(self, identity: Identity, room: Room) -> None:
        role = self.member(identity, room)
        to_students, to_tutor = self._sender(identity, role)
        await self._tell(room, "chat:typing",
                         {"session_id": room.id, "from": role, "by": to_students},
                         {"session_id": room.id, "from": role, "by": to_tutor})

    async def end(self, identity: Identity, room: Room) -> None:
        """The tutor ends the room early (reason ``tutor``); students may not end it."""
        if self.member(identity, room) != "tutor":
            raise NotAllowed("a booked session ends at its time or by its tutor")
        if not await self.close(room, "tutor"):
            raise NotFound("no such open session of yours")

    async def close(self, room: Room, reason: str) -> bool:
        """End the room now (its tutor, or staff: ``ended_by_staff``); ``False`` if it had
        already ended."""
        closed = await store.close(self.engine, room.id, self.now(), reason)
        self.forget(room.id)
        # Told like a close by the job: this process's people now, every other process's
        # at its next look (one path, so nobody is told twice).
        await self.reconcile()
        return closed

    async def sync(self, identity: Identity, row: dict[str, Any],
                   after_seq: int) -> dict[str, Any]:
        """:meth:`Broker.sync` for a room (open or ended) of the caller's."""
        room = Room.from_row(row)
        role = self.member(identity, room)
        messages = await self._messages(room, row["people"], role, after_seq)
        if row["ended_at"] is not None:
            return {"session": None, "messages": messages,
                    "ended": {"session_id": room.id, "reason": row["end_reason"]}}
        return {"session": self.view(room, row["people"], role, int(row["seq"] or 0)),
                "messages": messages, "ended": None}

    # -- state on connect -------------------------------------------------------------
    async def state(self, *, tutor: str | None = None,
                    student: str | None = None) -> dict[str, Any] | None:
        """A tutor's (scheduler id) or student's (roster id) open room (the earliest; any
        other open one, as back-to-back sessions overlap, in ``also_open``), else their next
        session starting within :data:`SOON` (``{"session": None, "booking",
        "starts_at", "ends_at", "opens_at", "starts_in_s", "vendor_name", ...}`` for a
        countdown: ``starts_in_s`` is from the broker's clock, so a page with a wrong clock
        still counts down right), else None."""
        if tutor is not None:
            role, who = "tutor", tutor
        elif student is not None:
            role, who = "student", student
        else:
            return None
        now = self.now()
        rows, nxt = await self._people[role].call(who)
        if rows:
            rows.sort(key=lambda r: (_seconds(r["starts_at"]), r["id"]))
            views = [self.view(self._remember(Room.from_row(r)), r["people"], role,
                               int(r["seq"] or 0)) for r in rows]
            return {"session": views[0], "booking": views[0]["booking"],
                    "starts_at": views[0]["starts_at"], "ends_at": views[0]["ends_at"],
                    "also_open": views[1:]}
        if nxt is None:
            return None
        starts = _seconds(nxt["starts_at"])
        return {"session": None, "booking": nxt["id"], "programme": nxt["programme"],
                "vendor": nxt["vendor"], "vendor_name": self.broker._vendor_name(nxt["vendor"]),
                "subject": nxt["subject"], "language": nxt["language"],
                "starts_at": iso(starts), "ends_at": iso(_seconds(nxt["ends_at"])),
                "opens_at": iso(starts - OPEN_LEAD.total_seconds()),
                "starts_in_s": round(starts - _seconds(now))}

    # -- the sweep --------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Tell this process's connected participants of every room that opened or closed
        or whose people changed since the last look here (pushed to the rooms' people with
        ``local=True``: each process tells its own connections). A look only learns what is
        open when :meth:`start` could not read it.

        What a look told is what it read whole: this process's notion of what is open
        (``_known``) moves on only once the look's reads succeeded, so a read that fails is
        retried by the next look rather than its change never being told; and a room read
        while its people were still changing (:func:`store.drifted` after the load) is not
        remembered as told, so the next look tells it again as it settled."""
        async with self._looking:
            await self._reconcile()

    async def _reconcile(self) -> None:
        now_open = await store.open_people(self.engine)
        known = self._known
        if known is None:
            self._known = now_open
            return
        opened = now_open.keys() - known.keys()
        closed = known.keys() - now_open.keys()
        changed = {i for i in now_open.keys() & known.keys() if now_open[i] != known[i]}
        if not opened and not closed and not changed:
            self._known = now_open
            return
        rows = await self._load(opened | closed | changed)
        self._known = now_open
        before = {i: self._cache.get(i) for i in changed}
        for row in rows:
            room = Room.from_row(row)
            if row["ended_at"] is not None:
                self.forget(room.id)
                event = {"session_id": room.id, "reason": row["end_reason"],
                         "booking": room.booking}
                await self._tell(room, "session:ended", event, event, local=True)
                continue
            if store.drifted(row):  # its people changed while it was read: the next look
                self.forget(room.id)  # takes it as newly open and tells it again
                now_open.pop(room.id, None)
            else:
                self._remember(room)
            was = before.get(room.id)
            if was is not None and was.tutor != room.tutor:
                # the replaced tutor: out of the room, for their view only
                gone = {"session_id": room.id, "reason": "substituted", "booking": room.booking}
                await self.broker.notifier.to_room(was.tutor, [], "session:ended", gone, gone,
                                                   local=True)
            if was is not None and (was.tutor, was.students) == (room.tutor, room.students):
                continue  # the process had already read the room as it is now
            await self._tell(room, "booked:open",
                             self.view(room, row["people"], "student"),
                             self.view(room, row["people"], "tutor"), local=True)


def check_text(text: str, max_chars: int) -> str:
    """A message's text as :meth:`Broker.send` takes it (stripped, not empty, not too long)."""
    text = text.strip()
    if not text:
        raise InvalidPayload("message is empty")
    if len(text) > max_chars:
        raise InvalidPayload(f"message is longer than {max_chars} characters")
    return text
