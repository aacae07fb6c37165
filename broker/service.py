"""The broker: help requests in, routed and queued, claimed by tutors, relayed, recorded.

Guarantees:

* **Every request gets exactly one recorded outcome.** A request is written once when it is
  decided (``queued`` or ``unmet``, with its reason); from ``queued`` it moves to exactly
  one of ``accepted`` / ``cancelled`` / ``abandoned`` / ``expired``, because each move first
  wins an atomic removal from the shared queue and only the winner writes.
* **A request is matched at most once**, even with many tutors in many processes: accept
  is the queue's atomic claim, which also enforces the tutor's capacity.
* **A session ends at most once** (the live state's atomic close); its counters are written
  with its ending, so a chat costs no database write per message unless the district turned
  on message retention.
* **Order**: each queue is FIFO by enqueue time with a bounded priority head start; a
  request whose tutor was lost goes back with its original enqueue time (so at the head).
* **Restart**: queued requests and open sessions live in the database; when the shared
  queue or live state has no state (a fresh process, or a Redis that lost its data) they
  are rebuilt from it, in order. Message counters of sessions open across a restart of the
  in-process backend restart from zero.
* Students and tutors who drop keep their place / session for ``grace_seconds``: presence
  is a heartbeat, touched when a connection is made and then by every sweep of the process
  holding it (events do not touch it again), checked by the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from broker.constants import QUEUE_PUSH_COALESCE_S, TOPIC_MAX_CHARS, TUTOR_COUNT_MAX_AGE_S
from broker.errors import (
    AlreadyTaken,
    Conflict,
    InvalidPayload,
    NotAllowed,
    NotFound,
    RateLimited,
    Unmet,
)
from broker.eta import AcceptRateTracker, estimate_wait_s
from broker.identity import Identity, Tutor
from broker.ids import new_id
from broker.lifecycle_store import LifecycleStore, at, epoch
from broker.live.base import LiveSession, LiveState, TutorPresence
from broker.notifier import Notifier
from broker.queue.base import QueueBackend, QueuedRequest
from broker.ratelimit import RateLimiter
from broker.settings import Settings
from broker.views import iso, session_view, tutor_request_view
from routing.catalog import Catalog
from routing.decision import HelpRequest, Routed, route
from routing.grades import grade_band
from routing.schools import SchoolDirectory

log = logging.getLogger(__name__)

SNAPSHOT_LIMIT = 50  # tutors see the head of each queue, plus its total
END_REASONS = frozenset({"student", "tutor", "timeout", "tutor_lost"})
TUTOR_STATUSES = frozenset({"available", "away"})


def student_subject(pseudonym: str) -> str:
    return f"student:{pseudonym}"


def tutor_subject(tutor_id: str) -> str:
    return f"tutor:{tutor_id}"


class QueueFigures(TypedDict):
    queue: str
    queued: int
    longest_wait_s: int


class Broker:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        directory: SchoolDirectory,
        queue: QueueBackend,
        live: LiveState,
        store: LifecycleStore,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        push_delay_s: float = QUEUE_PUSH_COALESCE_S,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.directory = directory
        self.queue = queue
        self.live = live
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.push_delay_s = push_delay_s
        self.accepts = AcceptRateTracker()
        self.chat_limiter = RateLimiter(settings.chat_rate_messages, settings.chat_rate_window_s)
        # queue name -> its push, still waiting out ``push_delay_s`` (cancellable until then)
        self._pending_pushes: dict[str, asyncio.Task[Any]] = {}
        self._last_position: dict[str, tuple[int, int | None]] = {}
        self._available: tuple[float, dict[str, int]] | None = None  # (at, queue -> tutors)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.local_subjects: Callable[[], list[str]] = list

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        await self.queue.start()
        await self.live.start()
        await self.ensure_state()
        if sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="broker-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._pending_pushes.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        await self.queue.close()
        await self.live.close()

    async def ensure_state(self) -> None:
        """Rebuild the shared queue and live sessions from the database if they are lost."""
        now = self.clock()
        if not await self.live.has_state():
            rows = await self.store.open_sessions()
            sessions = [self._live_from_row(row, now) for row in rows]
            holds = {s.student: s.request_id for s in sessions}
            holds.update({r["student"]: r["id"] for r in await self.store.queued_requests()})
            await self.live.rebuild(sessions, holds)
            log.info("rebuilt %d open sessions from the database", len(sessions))
        if not await self.queue.has_state():
            queued = [self._queued_from_row(row) for row in await self.store.queued_requests()]
            loads: dict[str, int] = {}
            for session in await self.live.sessions():
                loads[session.tutor_id] = loads.get(session.tutor_id, 0) + 1
            await self.queue.rebuild(queued, loads)
            # Students of rebuilt requests get a full grace period to reconnect.
            await self.live.touch([student_subject(q.student) for q in queued], now)
            log.info("rebuilt %d queued requests from the database", len(queued))
            for name in {q.queue for q in queued}:
                self.push_queue(name)

    def _queued_from_row(self, row: dict[str, Any]) -> QueuedRequest:
        return QueuedRequest(
            id=row["id"],
            queue=row["queue"],
            vendor=row["vendor"],
            language=row["language"],
            subject=row["subject"],
            grade_band=grade_band(row["grade"]) if row["grade"] is not None else "",
            school_kind=row["school_kind"] or "",
            student=row["student"],
            enqueued_at=epoch(row["queued_at"]) or 0.0,
            priority=int(row["priority"] or 0),
            school_id=row["school_id"] or "",
            grade=row["grade"],
        )

    def _live_from_row(self, row: dict[str, Any], now: float) -> LiveSession:
        request = self._queued_from_row(
            {**row, "id": row["request_id"], "priority": row.get("priority", 0)}
        )
        return LiveSession(
            id=row["id"],
            request_id=row["request_id"],
            student=row["student"],
            tutor_id=row["tutor_id"],
            tutor_name=row.get("tutor_name") or "Tutor",
            vendor=row["vendor"],
            queue=row["queue"],
            language=row["language"],
            subject=row["subject"],
            accepted_at=epoch(row["accepted_at"]) or now,
            request=request.to_dict(),
            messages_student=row["messages_student"] or 0,
            messages_tutor=row["messages_tutor"] or 0,
            chars_student=row["chars_student"] or 0,
            chars_tutor=row["chars_tutor"] or 0,
            last_activity_at=now,
        )

    # -- background ---------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def sweep_interval(self) -> float:
        return max(0.05, min(2.0, self.settings.grace_seconds / 4))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; will retry")

    async def sweep(self) -> None:
        """Heartbeat local connections, rebuild lost state, expire what the grace allows.

        Safe to run in every process at once: each removal or close is atomic, and only
        the process that wins it records the outcome.
        """
        now = self.clock()
        await self.live.touch(self.local_subjects(), now)
        await self.ensure_state()
        grace = self.settings.grace_seconds
        max_wait = self.settings.queue_max_wait_s
        lengths = await self.queue.lengths()
        for name in lengths:
            waiting = await self.queue.snapshot(name)
            seen = await self.live.last_seen([student_subject(q.student) for q in waiting])
            for q in waiting:
                last = seen.get(student_subject(q.student))
                if last is None or now - last > grace:
                    await self._close_queued(q.id, "abandoned", now, "student_disconnected")
                elif max_wait and now - q.enqueued_at > max_wait:
                    await self._close_queued(q.id, "expired", now, "max_wait")
        sessions = await self.live.sessions()
        if not sessions:
            return
        subjects = [tutor_subject(s.tutor_id) for s in sessions]
        subjects += [student_subject(s.student) for s in sessions]
        seen = await self.live.last_seen(subjects)
        idle = self.settings.session_idle_s
        for s in sessions:
            tutor_last = seen.get(tutor_subject(s.tutor_id))
            student_last = seen.get(student_subject(s.student))
            if tutor_last is None or now - tutor_last > grace:
                await self._end(s.id, "tutor_lost", now, requeue=True)
            elif student_last is None or now - student_last > grace:
                await self._end(s.id, "timeout", now, detail="student_disconnected")
            elif idle and now - max(s.last_activity_at, s.accepted_at) > idle:
                await self._end(s.id, "timeout", now, detail="idle")

    # -- students -----------------------------------------------------------------------
    async def request_help(
        self,
        student: Identity,
        subject: str,
        language: str,
        topic: str = "",
        grade: str | int | None = None,
    ) -> dict[str, Any]:
        """Route, record and queue a request; raise :class:`Unmet` (recorded) if none can serve."""
        if len(topic) > TOPIC_MAX_CHARS:
            raise InvalidPayload(f"topic is longer than {TOPIC_MAX_CHARS} characters")
        request_id = new_id()
        held = await self.live.hold_student(student.subject, request_id)
        if held is not None:
            raise Conflict("you already have an open request", request_id=held)
        try:
            return await self._request_help(student, request_id, subject, language, topic, grade)
        except BaseException:
            await self.live.release_student(student.subject, request_id)
            raise

    async def _request_help(
        self,
        student: Identity,
        request_id: str,
        subject: str,
        language: str,
        topic: str,
        grade: str | int | None,
    ) -> dict[str, Any]:
        learner = student.learner
        if learner is None:
            raise NotAllowed("only students ask for help")
        school_id = learner.school_id
        effective_grade = learner.grade if learner.grade is not None else grade
        now = self.clock()
        when = at(now)  # one timestamp for the decision and every column of this step
        decision = route(
            HelpRequest(
                school_id=school_id,
                grade=effective_grade,
                language=language,
                subject=subject,
                at=when,
            ),
            self.catalog,
            self.directory,
        )
        school = self.directory.get(school_id)
        grade_value = _grade_or_none(effective_grade)
        row: dict[str, Any] = {
            "id": request_id,
            "student": student.subject,
            "school_id": school_id,
            "school_kind": str(school.kind) if school else None,
            "grade": grade_value,
            "groups": ",".join(learner.groups),
            "language": language[:16],
            "subject": subject[:64],
            "requested_at": when,
            "is_test": learner.test,
        }
        if not isinstance(decision, Routed):
            row.update(
                status="unmet",
                unmet_reason=str(decision.reason),
                unmet_detail=decision.detail[:200],
                closed_at=when,
            )
            await self.store.record_request(row)
            log.info("unmet request %s: %s", request_id, decision.reason)
            raise Unmet(decision.detail, reason=str(decision.reason), request_id=request_id)
        row.update(
            status="queued",
            vendor=decision.vendor,
            queue=decision.queue,
            language=decision.language,
            overflow=decision.overflow,
            first_choice_unmet=(
                str(decision.first_choice_unmet) if decision.first_choice_unmet else None
            ),
            queued_at=when,
        )
        await self.store.record_request(row)
        queued = QueuedRequest(
            id=request_id,
            queue=decision.queue,
            vendor=decision.vendor,
            language=decision.language,
            subject=row["subject"],
            grade_band=grade_band(grade_value) if grade_value is not None else "",
            school_kind=row["school_kind"] or "",
            student=student.subject,
            enqueued_at=now,
            topic=topic,
            school_id=school_id or "",
            grade=grade_value,
            first_name=self._first_name(learner.given_name),
        )
        position = await self.queue.enqueue(queued)
        eta = await self._eta(decision.queue, position)
        self._last_position[request_id] = (position, eta)
        self.push_queue(decision.queue)
        return {
            "id": request_id,
            "vendor": decision.vendor,
            "vendor_name": self._vendor_name(decision.vendor),
            "language": decision.language,
            "subject": row["subject"],
            "position": position,
            "eta_s": eta,
            "overflow": decision.overflow,
        }

    async def cancel(self, student: Identity, request_id: str, origin: str | None = None) -> None:
        """Cancel the student's waiting request. ``origin`` (the cancelling connection) is
        not sent ``request:closed``: its acknowledgement says so."""
        if not await self._close_queued(
            request_id, "cancelled", self.clock(), "student", origin=origin, owner=student.subject
        ):
            raise NotFound("no such waiting request")

    async def _close_queued(
        self,
        request_id: str,
        status: str,
        now: float,
        reason: str,
        origin: str | None = None,
        owner: str | None = None,
    ) -> bool:
        """Close a queued request (only ``owner``'s, if given); False if it was not."""
        removed = await self.queue.remove(request_id, owner)
        if removed is None:
            return False
        await self.store.close_request(request_id, status, now, reason)
        await self.live.release_student(removed.student, request_id)
        self._last_position.pop(request_id, None)
        await self.notifier.to_student(
            removed.student,
            "request:closed",
            {"request_id": request_id, "status": status, "reason": reason},
            skip=origin,
        )
        self.push_queue(removed.queue)
        log.info("request %s %s (%s)", request_id, status, reason)
        return True

    async def student_state(self, student: Identity) -> dict[str, Any]:
        """What a (re)connecting student should see: their waiting request or open session."""
        await self.live.touch([student_subject(student.subject)], self.clock())
        row = await self.store.open_request_of(student.subject)
        if row is None:
            return {"request": None, "session": None}
        if row["status"] == "queued":
            position = await self.queue.position(row["id"])
            if position is None:
                return {"request": None, "session": None}
            eta = await self._eta(row["queue"], position)
            return {
                "request": {
                    "id": row["id"],
                    "vendor": row["vendor"],
                    "position": position,
                    "eta_s": eta,
                    "language": row["language"],
                    "subject": row["subject"],
                },
                "session": None,
            }
        for session in await self.live.sessions():
            if session.request_id == row["id"]:
                return {
                    "request": None,
                    "session": session_view(session, self._vendor_name(session.vendor), "student"),
                }
        return {"request": None, "session": None}

    async def rate(
        self, student: Identity, session_id: str, helped: bool | None, stars: int
    ) -> None:
        if not await self.store.rate(session_id, student.subject, helped, stars):
            raise NotFound("no such ended session of yours")

    # -- tutors -------------------------------------------------------------------------
    async def tutor_state(self, tutor: Tutor) -> dict[str, Any]:
        now = self.clock()
        await self.live.touch([tutor_subject(tutor.id)], now)
        sessions = [
            session_view(s, self._vendor_name(s.vendor), "tutor")
            for s in await self.live.sessions()
            if s.tutor_id == tutor.id
        ]
        status = "away"
        for presence in await self.live.tutors():
            if presence.tutor_id == tutor.id:
                status = presence.status
        snapshots = [await self._snapshot(q, now) for q in tutor.queues()]
        return {
            "status": status,
            "sessions": sessions,
            "queues": snapshots,
            "capacity": self._capacity(tutor.vendor),
        }

    async def set_status(self, tutor: Tutor, status: str) -> dict[str, Any]:
        if status not in TUTOR_STATUSES:
            raise InvalidPayload("status must be 'available' or 'away'")
        await self.live.set_tutor(
            TutorPresence(tutor.id, tutor.vendor, tutor.languages, status), tutor.id
        )
        self._available = None  # estimates from now on count this change
        for name in tutor.queues():
            self.push_queue(name)
        return {"status": status}

    async def accept(self, tutor: Tutor, request_id: str) -> dict[str, Any]:
        """Claim a request for a tutor: exactly one tutor wins; capacity is enforced."""
        queued = await self.queue.get(request_id)
        if queued is None:
            raise AlreadyTaken("this request is no longer waiting")
        if queued.vendor != tutor.vendor or queued.language not in tutor.languages:
            raise NotAllowed("this request is not in your queues")
        claimed = await self.queue.claim(request_id, tutor.id, self._capacity(tutor.vendor))
        now = self.clock()
        session = LiveSession(
            id=new_id(),
            request_id=claimed.id,
            student=claimed.student,
            tutor_id=tutor.id,
            tutor_name=tutor.display_name,
            vendor=claimed.vendor,
            queue=claimed.queue,
            language=claimed.language,
            subject=claimed.subject,
            accepted_at=now,
            request=claimed.to_dict(),
            last_activity_at=now,
        )
        try:
            await self.store.start_session(
                {
                    "id": session.id,
                    "request_id": claimed.id,
                    "student": claimed.student,
                    "vendor": claimed.vendor,
                    "tutor_id": tutor.id,
                    "language": claimed.language,
                    "subject": claimed.subject,
                    "school_kind": claimed.school_kind or None,
                    "school_id": claimed.school_id or None,
                    "grade": claimed.grade,
                    "queued_at": at(claimed.enqueued_at),
                    "accepted_at": at(now),
                }
            )
        except Exception:
            await self.queue.requeue(claimed)
            await self.queue.release(tutor.id)
            raise
        await self.live.open_session(session)
        self.accepts.record(claimed.queue, now)
        self._last_position.pop(claimed.id, None)
        vendor_name = self._vendor_name(claimed.vendor)
        await self.notifier.to_student(
            claimed.student, "session:started", session_view(session, vendor_name, "student")
        )
        self.push_queue(claimed.queue)
        return session_view(session, vendor_name, "tutor")

    # -- chat ---------------------------------------------------------------------------
    async def _participant(self, identity: Identity, session_id: str) -> tuple[LiveSession, str]:
        session = await self.live.get_session(session_id)
        if session is not None:
            if identity.role == "student" and session.student == identity.subject:
                return session, "student"
            if identity.role == "tutor" and session.tutor_id == identity.subject:
                return session, "tutor"
        raise NotFound("no such open session of yours")

    async def send(self, identity: Identity, session_id: str, text: str) -> dict[str, Any]:
        """Stamp and relay a message; per session, ids (sequence numbers) increase in order."""
        text = text.strip()
        if not text:
            raise InvalidPayload("message is empty")
        if len(text) > self.settings.chat_max_chars:
            raise InvalidPayload(
                f"message is longer than {self.settings.chat_max_chars} characters"
            )
        session, role = await self._participant(identity, session_id)
        now = self.clock()
        if not self.chat_limiter.allow(f"{role}:{identity.subject}", now):
            raise RateLimited("too many messages; wait a moment")
        stamp = await self.live.record_message(session_id, role, len(text), now)
        if stamp is None:
            raise NotFound("no such open session of yours")
        message_id = f"{session_id}.{stamp.seq}"
        message: dict[str, Any] = {
            "session_id": session_id,
            "id": message_id,
            "seq": stamp.seq,
            "from": role,
            "text": text,
            "at": iso(now),
        }
        if self.settings.message_retention_days > 0:
            await self.store.store_message(message_id, session_id, role, text, now)
        await self.notifier.to_student(session.student, "chat:message", message)
        await self.notifier.to_tutor(session.tutor_id, "chat:message", message)
        return message

    async def typing(self, identity: Identity, session_id: str) -> None:
        session, role = await self._participant(identity, session_id)
        data = {"session_id": session_id, "from": role}
        if role == "student":
            await self.notifier.to_tutor(session.tutor_id, "chat:typing", data)
        else:
            await self.notifier.to_student(session.student, "chat:typing", data)

    async def end(
        self,
        identity: Identity,
        session_id: str,
        outcome: str | None = None,
        tutored_subject: str | None = None,
        resolved: bool | None = None,
    ) -> None:
        _, role = await self._participant(identity, session_id)
        ended = await self._end(
            session_id,
            role,
            self.clock(),
            outcome=outcome,
            tutored_subject=tutored_subject,
            resolved=resolved,
        )
        if not ended:
            raise NotFound("no such open session of yours")

    async def record_outcome(
        self,
        tutor: Tutor,
        session_id: str,
        outcome: str | None,
        tutored_subject: str | None,
        resolved: bool | None,
    ) -> None:
        """Record how an ended session went (when the student ended it before the tutor)."""
        if not await self.store.set_outcome(
            session_id, tutor.id, outcome, tutored_subject, resolved
        ):
            raise NotFound("no such ended session of yours")

    async def _end(
        self,
        session_id: str,
        reason: str,
        now: float,
        *,
        requeue: bool = False,
        detail: str | None = None,
        outcome: str | None = None,
        tutored_subject: str | None = None,
        resolved: bool | None = None,
    ) -> bool:
        session = await self.live.close_session(session_id)
        if session is None:
            return False
        first = session.first_response_at
        values = {
            "ended_at": at(now),
            "end_reason": reason,
            "outcome": outcome or detail,
            "tutored_subject": tutored_subject,
            "resolved": resolved,
            "messages_student": session.messages_student,
            "messages_tutor": session.messages_tutor,
            "chars_student": session.chars_student,
            "chars_tutor": session.chars_tutor,
            "first_response_s": (first - session.accepted_at) if first is not None else None,
        }
        try:
            await self.store.end_session(session.id, session.request_id, values, requeue=requeue)
        except Exception:
            await self.live.open_session(session)  # keep it open rather than lose the record
            raise
        await self.queue.release(session.tutor_id)
        event = {"session_id": session.id, "reason": reason}
        await self.notifier.to_tutor(session.tutor_id, "session:ended", event)
        if requeue:
            request = QueuedRequest.from_dict(session.request)
            position = await self.queue.requeue(request)
            await self.notifier.to_student(
                session.student, "session:ended", {**event, "requeued": True}
            )
            eta = await self._eta(request.queue, position)
            self._last_position[request.id] = (position, eta)  # the push need not repeat it
            await self.notifier.to_student(
                session.student,
                "queue:position",
                {"request_id": request.id, "position": position, "eta_s": eta},
            )
            self.push_queue(request.queue)
        else:
            await self.live.release_student(session.student, session.request_id)
            await self.notifier.to_student(session.student, "session:ended", event)
        log.info("session %s ended (%s)", session.id, reason)
        return True

    # -- queue pushes -------------------------------------------------------------------
    def push_queue(self, name: str) -> None:
        """Schedule a push of positions and the tutors' snapshot for one queue.

        Coalesced: every change to a queue within ``push_delay_s`` (``QUEUE_PUSH_COALESCE_S``)
        makes one push, which reads the queue once and emits only positions or estimates that
        changed, so a burst of requests and cancels costs one pass over the queue, not one
        per change.
        """
        if name in self._pending_pushes:
            return
        self._pending_pushes[name] = self._spawn(self._push_queue_later(name), f"push:{name}")

    async def _push_queue_later(self, name: str) -> None:
        await asyncio.sleep(self.push_delay_s)
        self._pending_pushes.pop(name, None)  # from here on, flush_pushes waits for it
        await self._push_queue(name)

    async def flush_pushes(self) -> None:
        """Make every pending queue push now, and wait for the pushes under way.

        For tests (and anyone who must not wait on the clock): what the coalesced pushes
        would have sent ``push_delay_s`` later is sent before this returns. A push still
        waiting out its delay is cancelled and made here instead, so each change is pushed
        once either way.
        """
        while self._pending_pushes or self._tasks:
            while self._pending_pushes:
                name, task = self._pending_pushes.popitem()
                task.cancel()  # still asleep: it has sent nothing
                await self._push_queue(name)
            await asyncio.gather(*self._tasks, return_exceptions=True)  # failures are logged

    async def _push_queue(self, name: str) -> None:
        now = self.clock()
        waiting = await self.queue.snapshot(name)
        rate = self.accepts.rate(name, now)
        available = await self._tutors_available(name)
        for position, q in enumerate(waiting, start=1):
            eta = estimate_wait_s(position, rate, available)
            if self._last_position.get(q.id) != (position, eta):
                self._last_position[q.id] = (position, eta)
                await self.notifier.to_student(
                    q.student,
                    "queue:position",
                    {"request_id": q.id, "position": position, "eta_s": eta},
                )
        await self.notifier.to_queue_watchers(
            name, "queue:snapshot", self._snapshot_of(name, waiting, now)
        )

    async def _snapshot(self, name: str, now: float) -> dict[str, Any]:
        return self._snapshot_of(name, await self.queue.snapshot(name), now)

    @staticmethod
    def _snapshot_of(name: str, waiting: list[QueuedRequest], now: float) -> dict[str, Any]:
        return {
            "queue": name,
            "total": len(waiting),
            "requests": [tutor_request_view(q, now) for q in waiting[:SNAPSHOT_LIMIT]],
        }

    async def _tutors_available(self, name: str) -> int:
        """Available tutors who may take from queue ``name``, from a count at most
        ``TUTOR_COUNT_MAX_AGE_S`` old (this process's own status changes reset it)."""
        now = self.clock()
        cached = self._available
        if cached is None or not 0 <= now - cached[0] <= TUTOR_COUNT_MAX_AGE_S:
            counts: dict[str, int] = {}
            for t in await self.live.tutors():
                if t.status == "available":
                    for language in t.languages:
                        key = f"{t.vendor}:{language}"
                        counts[key] = counts.get(key, 0) + 1
            cached = self._available = (now, counts)
        return cached[1].get(name, 0)

    async def _eta(self, name: str, position: int) -> int | None:
        return estimate_wait_s(
            position, self.accepts.rate(name, self.clock()), await self._tutors_available(name)
        )

    # -- staff --------------------------------------------------------------------------
    async def live_figures(self, vendor: str | None = None) -> dict[str, Any]:
        """Queued per queue, longest wait, tutors available and busy (optionally one vendor)."""
        now = self.clock()
        queues: list[QueueFigures] = []
        for name, length in sorted((await self.queue.lengths()).items()):
            if vendor is not None and not name.startswith(vendor + ":"):
                continue
            head = await self.queue.snapshot(name)
            longest = max((now - q.enqueued_at for q in head), default=0.0)
            queues.append(QueueFigures(queue=name, queued=length, longest_wait_s=int(longest)))
        tutors = [t for t in await self.live.tutors() if vendor is None or t.vendor == vendor]
        busy_ids = {s.tutor_id for s in await self.live.sessions()}
        return {
            "queues": queues,
            "queued": sum(q["queued"] for q in queues),
            "longest_wait_s": max((q["longest_wait_s"] for q in queues), default=0),
            "tutors_available": sum(
                1 for t in tutors if t.status == "available" and t.tutor_id not in busy_ids
            ),
            "tutors_busy": sum(1 for t in tutors if t.tutor_id in busy_ids),
            "tutors_away": sum(1 for t in tutors if t.status == "away"),
            "at": iso(now),
        }

    # -- helpers ------------------------------------------------------------------------
    def _first_name(self, given_name: str) -> str:
        """The first name tutors may see: only with HH_SHOW_FIRST_NAME, first word only."""
        if not self.settings.show_first_name_to_tutors:
            return ""
        words = given_name.split()
        return words[0][:40] if words else ""

    def _capacity(self, vendor_id: str) -> int:
        vendor = self.catalog.vendor(vendor_id)
        return vendor.capacity if vendor is not None else 0

    def _vendor_name(self, vendor_id: str) -> str:
        vendor = self.catalog.vendor(vendor_id)
        return vendor.name if vendor is not None else vendor_id


def _grade_or_none(value: object) -> int | None:
    from routing.errors import UnknownGradeError
    from routing.grades import parse_grade

    if value is None or value == "":
        return None
    try:
        return parse_grade(value)
    except UnknownGradeError:
        return None
