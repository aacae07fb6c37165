"""The broker: help requests in, routed and queued, claimed by tutors, relayed, recorded.

One source of truth: the database (:mod:`broker.lifecycle_store`) holds every fact that
must survive — requests and their queue order, claims, sessions, the one-open-request rule,
the capacity tutors use, message sequence numbers and the open sessions' messages — and
every state change is one transaction there, which happens whole or not at all. What lives
elsewhere is derived from it or allowed to be lost: presence (heartbeats, :mod:`broker.presence`),
rate limits (:mod:`broker.throttle`), and the pushes to people's connections.

Guarantees:

* **Every request gets exactly one recorded outcome.** A request is written once when it is
  decided (``queued`` or ``unmet``, with its reason); from ``queued`` it moves to exactly
  one of ``accepted`` / ``cancelled`` / ``abandoned`` / ``expired``, each move guarded by
  the request still being queued, so of racing moves in any processes exactly one happens.
* **A request is matched at most once**, and no tutor holds more sessions than their
  vendor's capacity: the claim, the capacity slot and the session are one transaction.
* **A session ends at most once**; its request ends or goes back to its queue, the tutor's
  slot is freed and (unless the district keeps messages) its buffered messages are deleted,
  in the same transaction.
* **An error means nothing changed**: a failed write leaves the request queued, the
  session open, the student's place intact; the caller gets a typed error.
* **Messages**: each gets its session's next sequence number in the database, once; both
  sides receive ``chat:message`` in the order the sender sent them (one connection's
  events are handled one at a time by the edge) and can fetch any they missed from the
  session's buffer (:meth:`Broker.sync`), so an acknowledged message is never lost.
* **Order**: each queue is served by rank (enqueue time, minus a bounded head start per
  priority step); a request whose tutor was lost goes back with its rank, so at its place.
* Students and tutors who drop keep their place / session for ``grace_seconds``: presence
  is a heartbeat every process gives its own connections at each sweep; losing presence
  (a flushed Redis) restarts everyone's grace rather than ending anything.
* **Pushes are reconciled**: a push lost with a process or a pub/sub outage is made good by
  each process's sweep, which re-sends its own connections' queue snapshots and positions
  when they changed, and by clients re-syncing after a reconnect or a ``server:resync``.
* **Positions come from the student's own process.** With several processes (the edge sets
  :attr:`Broker.holds`), a queue's change is pushed as one ``queue:snapshot`` to every
  process; each process that holds a student waiting in that queue then reads the queue
  itself and tells its own students their new place (at most one read per queue per
  ``push_delay_s``), instead of the changing process publishing one position per student.
* **Booked sessions** (:mod:`broker.rooms`) are rooms the worker opens for the scheduler's
  occurrences: the same messages, sync, typing and rate limits, sent to every booked
  participant; only the booked tutor and students may enter (``not_allowed`` for anyone
  else); they end at their time or by their tutor, never by presence or idleness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from broker import duty, rooms_store
from broker.constants import (
    BUFFER_AFTER_END_S,
    BUFFER_SWEEP_EVERY_S,
    ETA_WINDOW_S,
    QUEUE_PUSH_COALESCE_S,
    REDIS_WAIT_S,
    TOPIC_MAX_CHARS,
    TUTOR_COUNT_MAX_AGE_S,
)
from broker.db.closing import stop_task
from broker.errors import (
    AlreadyTaken,
    Conflict,
    InvalidPayload,
    NotAllowed,
    NotFound,
    OverCapacity,
    RateLimited,
    Unmet,
)
from broker.eta import estimate_wait_s
from broker.identity import Identity, Tutor
from broker.ids import new_id
from broker.lifecycle_store import LifecycleStore, Resent, at, epoch
from broker.media import Media
from broker.notifier import Notifier
from broker.outages import OutageLog
from broker.presence import MemoryPresence, Presence, student_subject, tutor_subject
from broker.presence_judge import PresenceJudge
from broker.rooms import ROOM_WATCH_S, Room, Rooms, check_text
from broker.safety import Safety, Screened, Where
from broker.safety_desk import SafetyDesk
from broker.settings import Settings
from broker.throttle import Throttle, Throttles
from broker.views import (
    OpenSession,
    held_view,
    iso,
    message_view,
    resent_view,
    session_view,
    tutor_request_view,
    with_crisis,
)
from broker.whiteboard import Whiteboard
from routing.catalog import Catalog
from routing.decision import HelpRequest, Routed, route
from routing.errors import UnknownGradeError
from routing.grades import parse_grade
from routing.schools import SchoolDirectory

log = logging.getLogger(__name__)

SNAPSHOT_LIMIT = 50  # tutors see the head of each queue, plus its total
END_REASONS = frozenset({
    "student", "tutor", "timeout", "tutor_lost", "tutor_silent", "student_silent",
    "ended_by_staff", "tutor_suspended",
})
REQUEUED_REASONS = frozenset({"tutor_lost", "tutor_silent", "tutor_suspended"})
TUTOR_STATUSES = frozenset({"available", "away"})
PARTICIPANTS_CACHED = 20_000
SAFETY_WATCH_EVERY_S = 1.0  # the rules file, suspensions and nobody-on-shift, at most this often
# Presence people can see (docs/protocol.md, "peer:presence"): someone whose last connection
# closed is announced gone to the other side of their sessions once every process has had
# this many sweeps to heartbeat another connection of theirs; someone counts as "here" (in
# wait estimates and the staff's "tutors available") while touched within this many sweeps.
PEER_LOST_AFTER_SWEEPS = 1.5
HERE_WITHIN_SWEEPS = 3.0
SIGNED_OUT = "signed_out"


def _shown(rows: list[dict[str, Any]], total: int) -> tuple[tuple[str, ...], int]:
    """What a queue's snapshot shows its watchers: the head's ids and the total."""
    return tuple(row["id"] for row in rows[:SNAPSHOT_LIMIT]), max(total, len(rows))


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
        store: LifecycleStore,
        notifier: Notifier,
        presence: Presence | None = None,
        throttles: Throttles | None = None,
        clock: Callable[[], float] = time.time,
        push_delay_s: float = QUEUE_PUSH_COALESCE_S,
        lead_pushes: bool = True,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.directory = directory
        self.store = store
        self.notifier = notifier
        self._outages = OutageLog(log)
        # every read and touch of presence: bounded, outage-aware, heeding blind processes
        self.judge = PresenceJudge(
            presence or MemoryPresence(), store.engine, settings.grace_seconds,
            lambda: self.sweep_interval, self._outages, settings.hand_over_after_s,
        )
        self.throttles = throttles or Throttles(None, settings.redis_prefix, clock)
        self.clock = clock
        self.push_delay_s = push_delay_s
        self.lead_pushes = lead_pushes
        self.chat_limiter: Throttle = self.throttles.make(
            "chat", settings.chat_rate_messages, settings.chat_rate_window_s
        )
        self.request_limiter: Throttle = self.throttles.make(
            "request", settings.request_rate_limit, settings.request_rate_window_s
        )
        # queue name -> its push, still waiting out ``push_delay_s`` (cancellable until then)
        self._pending_pushes: dict[str, asyncio.Task[Any]] = {}
        self._pending_positions: dict[str, asyncio.Task[Any]] = {}
        # (kind, queue name) -> when its last push started (the loop's clock); one entry
        # per queue of the catalog and kind, so bounded
        self._pushed_at: dict[tuple[str, str], float] = {}
        self._waiting_here: set[str] = set()  # queues one of this process's students waits in
        self._last_position: dict[str, tuple[int, int | None]] = {}
        # queue -> what this process's watchers were last shown of it (head ids, total)
        self._last_snapshot: dict[str, tuple[tuple[str, ...], int]] = {}
        self._counts: tuple[float, dict[str, int], dict[str, int]] | None = None
        self._recount: asyncio.Task[Any] | None = None
        self._counts_epoch = 0  # bumped when this process changes a tutor's status
        self._participants: dict[str, tuple[str, str, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._room_watch: asyncio.Task[None] | None = None
        self._heartbeat_at = float("-inf")  # when this process last touched its connections
        self._buffers_dropped_at = 0.0
        self._safety_watched_at = float("-inf")
        self._left: dict[str, float] = {}  # subject -> when its last connection here closed
        self.rooms = Rooms(self)
        self.safety = Safety(store.engine, settings)
        self.desk = SafetyDesk(self)
        self.media = Media(self)  # pictures in the chat (broker.media)
        self.board = Whiteboard(self)  # the sessions' whiteboards (broker/whiteboard.py)
        # Hooks the edge sets: who this process holds connections for.
        self.local_subjects: Callable[[], list[str]] = list
        self.local_queues: Callable[[], set[str]] = set
        # With several processes: whether this process holds a connection of a presence
        # subject. Set, positions are told by the student's own process (module docstring).
        self.holds: Callable[[str], bool] | None = None

    @property
    def presence(self) -> Presence:
        """Who is connected (:mod:`broker.presence`), read and touched through
        :attr:`judge`; settable (tests share one between two brokers, as Redis does)."""
        return self.judge.presence

    @presence.setter
    def presence(self, store: Presence) -> None:
        self.judge.presence = store

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        await self.presence.start()
        # A presence store that starts (or restarts) empty gives everyone a grace period
        # from now: nobody who was connected before a restart is gone at once.
        await self.judge.touch([], self.clock(), probe=True)
        await self.rooms.start()
        if sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="broker-sweep")
            self._heartbeat = asyncio.create_task(
                self._heartbeat_forever(), name="broker-heartbeat"
            )
            self._room_watch = asyncio.create_task(self._watch_rooms(), name="room-watch")

    async def stop(self) -> None:
        """Stop the loops and background tasks (each cancelled until it has ended, however
        long its database takes: :func:`broker.db.closing.stop_task`), then the writer
        and the stores, each bounded: a database or Redis that answers nothing holds a
        stop a few seconds at most."""
        loops = [t for t in (self._sweeper, self._heartbeat, self._room_watch) if t is not None]
        await asyncio.gather(*(stop_task(loop_task) for loop_task in loops))
        self._pending_pushes.clear()
        self._pending_positions.clear()
        await asyncio.gather(*(stop_task(task) for task in list(self._tasks)))
        # beside the writer's last batch, so that it adds nothing to a stop's time: no
        # blind process hands its clients over to this one
        await asyncio.gather(self.judge.leave(), self.store.close())
        await self.presence.close()
        await self.throttles.close()

    # -- background ---------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # a queue push or a recount: the next change or sweep does it again
            self._outages.failure(f"background task {task.get_name()}", exc)

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
            except Exception as exc:
                self._outages.failure("the sweep", exc, "; will retry")

    async def _heartbeat_forever(self) -> None:
        """Touch this process's connections whenever no sweep has for a sweep interval.

        The sweep touches them first thing, then reads the database; a sweep held up there
        (PostgreSQL frozen or unreachable over a black-holed network, a slow statement)
        would otherwise stop this process's heartbeats, and the first other process whose
        sweep got through afterwards would judge this one's people gone past the grace
        period and end their sessions. With this, presence follows the connections
        whatever the database does; a touch costs one Redis round trip, and is skipped
        while the sweep keeps up."""
        while True:
            await asyncio.sleep(self.sweep_interval / 2)
            now = self.clock()
            if now - self._heartbeat_at < self.sweep_interval:
                continue
            try:
                await self.heartbeat(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outages.failure("the heartbeat", exc, "; will retry")

    async def _watch_rooms(self) -> None:
        """Every :data:`~broker.rooms.ROOM_WATCH_S`, tell this process's people of rooms
        that opened or closed or whose people changed (one indexed read of the open rooms
        and their people's key; the sweep does the same, less often)."""
        while True:
            await asyncio.sleep(ROOM_WATCH_S)
            try:
                await self.rooms.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outages.failure("the room watch", exc, "; will retry")

    async def sweep(self) -> None:
        """Heartbeat local connections, close what the grace and timeouts allow, and
        re-send this process's connections any queue state they may have missed.

        Safe to run in every process at once: every close is a guarded transaction, and
        only the process whose transaction changed something records and pushes it.

        It lets the event loop run between its phases (:func:`_breathe`): on SQLite the
        reads do not yield by themselves, and with thousands of connections and open
        sessions the whole sweep held the loop for up to ~130 ms, every relay and ack
        waiting behind it. What changes in between is what the guards are for.
        """
        now = self.clock()
        touched = await self.heartbeat(now)
        await self.judge.vouch(now, touched)
        judge = touched and self.judge.can_judge(now)
        await _breathe()
        await self._announce_departures(now, judge)
        max_wait = self.settings.queue_max_wait_s
        queued = await self.store.queued()
        gone = await self.judge.gone([student_subject(q["student"]) for q in queued], now, judge)
        for q in queued:
            if (epoch(q["left_until"]) or 0.0) > now:
                continue  # a question left for the next tutor keeps its place
            if student_subject(q["student"]) in gone:
                await self._close_queued(q["id"], "abandoned", now, "student_disconnected")
            elif max_wait and now - (epoch(q["queued_at"]) or now) > max_wait:
                await self._close_queued(q["id"], "expired", now, "max_wait")
        await _breathe()
        clocks = await self.store.open_session_clocks()
        await _breathe()
        if clocks:
            subjects = [tutor_subject(clock[1]) for clock in clocks]
            subjects += [student_subject(clock[2]) for clock in clocks]
            gone = await self.judge.gone(subjects, now, judge)
            idle = self.settings.session_idle_s
            silent = self.settings.tutor_silent_s
            for session_id, tutor, student, accepted_at, last_activity_at, answered in clocks:
                if tutor_subject(tutor) in gone:
                    why: tuple[str, str | None, bool] = ("tutor_lost", None, True)
                elif student_subject(student) in gone:
                    why = ("timeout", "student_disconnected", False)
                elif silent and answered is None and now - accepted_at > silent:
                    why = ("tutor_silent", None, True)
                elif idle and now - max(last_activity_at or 0.0, accepted_at) > idle:
                    why = ("timeout", "idle", False)
                else:
                    continue
                for row in await self.store.open_sessions(session_id=session_id):
                    reason, detail, requeue = why
                    await self._end(
                        OpenSession.from_row(row), reason, now, requeue=requeue, detail=detail,
                        at_head=reason == "tutor_silent",
                    )
        await _breathe()
        await self._reconcile(now, queued)
        await _breathe()
        if judge:
            await self._reconcile_duty(now)
        await self.rooms.reconcile()
        if now - self._safety_watched_at >= SAFETY_WATCH_EVERY_S or now < self._safety_watched_at:
            self._safety_watched_at = now
            await self._watch_safety(now)
        if now - self._buffers_dropped_at >= BUFFER_SWEEP_EVERY_S:
            self._buffers_dropped_at = now
            await self.store.drop_ended_buffers(now - BUFFER_AFTER_END_S)
            await self.media.drop_ended(now - BUFFER_AFTER_END_S)

    async def _watch_safety(self, now: float) -> None:
        """Re-read the moderation rules if their file changed; raise or clear the
        nobody-on-shift alerts; know when tutors are next expected where nobody is."""
        self.safety.reload()
        await self.desk.refresh_suspended()
        _, _, available = await self._count_rates(now)
        unserved = {name for name, (length, _) in (await self.store.queue_figures()).items()
                    if length and not available.get(name)}
        await self.desk.watch_queues(now, unserved)
        await self.desk.refresh_next_expected(now, unserved)

    # -- presence, which is allowed to be lost or unreachable (broker/presence_judge.py) --
    async def heartbeat(self, now: float) -> bool:
        """Touch every connection this process holds at ``now`` (each sweep does, and
        :meth:`_heartbeat_forever` whenever a sweep is held up); ``False`` when presence
        cannot be reached."""
        touched = await self.judge.touch(self.local_subjects(), now, probe=True)
        if touched:
            self._heartbeat_at = max(self._heartbeat_at, now)
        return touched

    @property
    def here_within_s(self) -> float:
        """How recently someone must have been touched to count as connected now."""
        return HERE_WITHIN_SWEEPS * self.sweep_interval + 1.0

    async def _here(self, subjects: list[str], now: float) -> set[str]:
        """Who is connected to some process now (touched within :attr:`here_within_s`);
        everyone when presence cannot tell (it is not needed to serve anyone)."""
        return await self.judge.here(subjects, now, self.here_within_s)

    async def _reconcile_duty(self, now: float) -> None:
        """Close the time on duty of tutors no longer available-and-connected (at when
        presence last saw them), open it for those who are (:func:`broker.duty.reconcile`);
        nothing changes when presence cannot be read."""

        async def last_seen(subjects: list[str]) -> dict[str, float] | None:
            return await self.judge.last_seen(subjects, now)

        await duty.reconcile(self.store.engine, last_seen, self.here_within_s, now)

    # -- presence people can see (peer:presence) ------------------------------------------
    def note_left(self, subject: str) -> None:
        """The edge: the last connection of ``subject`` (``role:id``) in this process closed.
        Remembered in this process only (allowed to be lost: the sweep still ends the
        session after the grace period); the sweep announces it once no process has
        touched ``subject`` since (:meth:`_announce_departures`)."""
        self._left[subject] = self.clock()

    async def _announce_departures(self, now: float, judge: bool) -> None:
        """Tell the other side of each open session of someone whose last connection
        closed (here) :data:`PEER_LOST_AFTER_SWEEPS` sweeps ago, and whom no process has
        touched since, that they lost their connection and how long their place is kept."""
        if not self._left or not judge:
            return
        due_after = PEER_LOST_AFTER_SWEEPS * self.sweep_interval
        due = {s: t for s, t in self._left.items() if now - t >= due_after or now < t}
        for subject in due:
            del self._left[subject]
        local = set(self.local_subjects())
        subjects = [s for s in due if s not in local]
        if not subjects:
            return
        seen = await self.judge.last_seen(subjects, now)
        if seen is None:
            return
        for subject in subjects:
            last = seen.get(subject, now)
            if last > due[subject]:
                continue  # connected again, here or in another process
            kept = max(0, int(self.settings.grace_seconds - (now - last)))
            await self._tell_peers(subject, present=False, back_within_s=kept)

    async def announce_back(self, identity: Identity) -> None:
        """The edge: ``identity`` (a student or tutor) connected; the other side of their
        open sessions is told they are here (harmless when nobody was told they left)."""
        subject = f"{identity.role}:{identity.subject}"
        self._left.pop(subject, None)
        if identity.role in ("student", "tutor"):
            await self._tell_peers(subject, present=True)

    async def _tell_peers(
        self, subject: str, *, present: bool, back_within_s: int | None = None
    ) -> None:
        role, _, who = subject.partition(":")
        if role == "tutor":
            rows = await self.store.open_sessions(tutor=who)
        elif role == "student":
            rows = await self.store.open_sessions(student=who)
        else:
            return
        for row in rows:
            event: dict[str, Any] = {"session_id": row["id"], "who": role, "present": present}
            if not present:
                event["back_within_s"] = back_within_s
            if role == "tutor":
                await self.notifier.to_student(row["student"], "peer:presence", event)
            else:
                await self.notifier.to_tutor(row["tutor_id"], "peer:presence", event)
        if rows:
            log.info("%s %s: told %d session(s)", subject, "back" if present else "left", len(rows))

    async def sign_out(self, tutor: Tutor) -> dict[str, Any]:
        """A tutor signs out: their status is ``away``, each of their open on-demand
        sessions ends at once as ``tutor_lost`` (detail ``signed_out``), its student told
        and back in line at their place, and they stop counting as present. One
        transaction per session, each guarded (a session another process ended is
        skipped); an error leaves the rest open, and a retry ends them."""
        now = self.clock()
        await self.store.set_tutor_status(tutor.id, tutor.vendor, tutor.languages, "away", now)
        self._forget_counts()
        ended = 0
        for row in await self.store.open_sessions(tutor=tutor.id):
            if await self._end(
                OpenSession.from_row(row), "tutor_lost", now, requeue=True, detail=SIGNED_OUT
            ):
                ended += 1
        await self.judge.forget([tutor_subject(tutor.id)])  # lost: the grace still ends it
        self._left.pop(tutor_subject(tutor.id), None)
        for name in tutor.queues():
            self.push_queue(name)
        return {"ended": ended}

    async def _reconcile(self, now: float, queued: list[dict[str, Any]]) -> None:
        """Re-send this process's own connections the state of any queue they watch or wait
        in that changed since the last sweep here, so a push lost with another process or
        in a pub/sub outage is made good within one sweep; and each of its own waiting
        students whose position or estimate, as last shown to them (by either process:
        :meth:`shown_elsewhere`), is not the database's. Duplicates are harmless: a
        snapshot replaces the last one, a position restates it."""
        local = set(self.local_subjects())
        waiting_here = {q["queue"] for q in queued if student_subject(q["student"]) in local}
        self._waiting_here = set(waiting_here)
        watched = self.local_queues() | waiting_here
        for name in list(self._last_snapshot):
            if name not in watched:
                del self._last_snapshot[name]
        for name in watched:
            if name in self._pending_pushes:
                continue  # a push of this queue is on its way
            rows, total = await self.store.queue(name)
            shown = _shown(rows, total)
            if self._last_snapshot.get(name) == shown:
                if name in waiting_here:
                    await self._push_positions(
                        name, rows, now, local=local.__contains__, only_changed=True
                    )
                continue
            self._last_snapshot[name] = shown
            await self.notifier.to_queue_watchers(
                name, "queue:snapshot", self._snapshot_of(name, rows, total, now), local=True
            )
            await self._push_positions(name, rows, now, local=local.__contains__)

    # -- students -----------------------------------------------------------------------
    async def request_help(
        self,
        student: Identity,
        subject: str,
        language: str,
        topic: str = "",
        grade: str | int | None = None,
    ) -> dict[str, Any]:
        """Route, record and queue a request; raise :class:`Unmet` (recorded) if none can
        serve, :class:`Conflict` if the student already has an open request."""
        learner = student.learner
        if learner is None:
            raise NotAllowed("only students ask for help")
        if len(topic) > TOPIC_MAX_CHARS:
            raise InvalidPayload(f"topic is longer than {TOPIC_MAX_CHARS} characters")
        await self._throttle(self.request_limiter, student.subject)
        request_id = new_id()
        school_id = learner.school_id
        effective_grade = learner.grade if learner.grade is not None else grade
        now = self.clock()
        when = at(now)  # one timestamp for the decision and every column of this step
        decision = route(
            HelpRequest(
                school_id=school_id, grade=effective_grade, language=language,
                subject=subject, at=when,
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
            open_request = await self.store.open_request_of(student.subject)
            if open_request is not None:
                raise Conflict("you already have an open request", request_id=open_request["id"])
            row.update(
                status="unmet",
                unmet_reason=str(decision.reason),
                unmet_detail=decision.detail[:200],
                closed_at=when,
            )
            await self.store.record_unmet(row)
            log.info("unmet request %s: %s", request_id, decision.reason)
            raise Unmet(decision.detail, reason=str(decision.reason), request_id=request_id)
        rank = now  # priority 0: nothing issues a priority (README)
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
            rank=rank,
            topic=topic or None,
            first_name=self._first_name(learner.given_name) or None,
        )
        position = await self.store.enqueue(row)
        if position is None:
            open_request = await self.store.open_request_of(student.subject)
            held = open_request["id"] if open_request else None
            raise Conflict("you already have an open request", request_id=held)
        rate, available = await self._queue_rates(decision.queue, now)
        eta = estimate_wait_s(position, rate, available)
        self._last_position[request_id] = (position, eta)
        self._waiting_here.add(decision.queue)
        self.push_queue(decision.queue)
        return {
            **self.desk.nobody_on_shift(decision.queue, available),
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
        await self._throttle(self.request_limiter, student.subject)
        if not await self._close_queued(
            request_id, "cancelled", self.clock(), "student", origin=origin,
            owner=student.subject,
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
        closed = await self.store.close_queued(request_id, status, now, reason, student=owner)
        if closed is None:
            return False
        student, queue = closed
        self._last_position.pop(request_id, None)
        await self.notifier.to_student(
            student,
            "request:closed",
            {"request_id": request_id, "status": status, "reason": reason},
            skip=origin,
        )
        self.push_queue(queue)
        log.info("request %s %s (%s)", request_id, status, reason)
        return True

    async def student_state(
        self, student: Identity, request_id: str | None = None
    ) -> dict[str, Any]:
        """What a (re)connecting student should see: their waiting request or open session,
        and ``booked``: their open booked room or next booked session (or None).

        ``request_id``: the request the student's page shows as waiting. When it waits no
        more because a tutor took it and the session has ended already (all of it while the
        page heard nothing: a pub/sub outage, a reconnect), ``ended`` describes that session
        (``{"session": view, "reason"}``) so the page can fetch its messages with
        ``session:sync`` (the buffer outlives the session by
        :data:`~broker.constants.BUFFER_AFTER_END_S`) and say how it ended; else None."""
        state = await self._student_state(student)
        state["ended"] = None
        if request_id and state["request"] is None and state["session"] is None:
            state["ended"] = await self._ended_session_of(student, request_id)
        roster_id = student.learner.roster_id if student.learner else None
        state["booked"] = await self.rooms.state(student=roster_id) if roster_id else None
        return state

    async def _student_state(self, student: Identity) -> dict[str, Any]:
        await self.judge.touch([student_subject(student.subject)], self.clock())
        row = await self.store.open_request_of(student.subject)
        if row is None:
            return {"request": None, "session": None}
        if row["status"] == "queued":
            position = await self.store.position(row["queue"], row["rank"], row["id"])
            rate, available = await self._queue_rates(row["queue"], self.clock())
            eta = estimate_wait_s(position, rate, available)
            self._waiting_here.add(row["queue"])  # tell them when another process moves it
            return {
                "request": {
                    **self.desk.nobody_on_shift(row["queue"], available),
                    "id": row["id"],
                    "vendor": row["vendor"],
                    "vendor_name": self._vendor_name(row["vendor"]),
                    "position": position,
                    "eta_s": eta,
                    "language": row["language"],
                    "subject": row["subject"],
                    "left_until": iso(epoch(row["left_until"]) or 0.0)
                    if row["left_until"] else None,
                },
                "session": None,
            }
        for found in await self.store.open_sessions(student=student.subject):
            session = OpenSession.from_row(found)
            view = session_view(session, self._vendor_name(session.vendor), "student")
            tutor = tutor_subject(session.tutor_id)
            if tutor not in await self._here([tutor], self.clock()):
                view["tutor_present"] = False  # a page that reloads is told again
            return {"request": None, "session": view}
        return {"request": None, "session": None}

    async def _ended_session_of(
        self, student: Identity, request_id: str
    ) -> dict[str, Any] | None:
        row = await self.store.last_session_of_request(request_id, student.subject)
        if row is None or row["ended_at"] is None:
            return None
        session = OpenSession.from_row(row)
        return {
            "session": session_view(session, self._vendor_name(session.vendor), "student"),
            "reason": row["end_reason"],
        }

    async def rate(
        self, student: Identity, session_id: str, helped: bool | None, stars: int
    ) -> None:
        if not await self.store.rate(session_id, student.subject, helped, stars):
            raise NotFound("no such ended session of yours")

    # -- tutors -------------------------------------------------------------------------
    async def tutor_state(self, tutor: Tutor) -> dict[str, Any]:
        now = self.clock()
        await self.judge.touch([tutor_subject(tutor.id)], now)
        sessions = [
            session_view(OpenSession.from_row(row), self._vendor_name(row["vendor"]), "tutor")
            for row in await self.store.open_sessions(tutor=tutor.id)
        ]
        students = [student_subject(view["student"]["pseudonym"]) for view in sessions]
        here = await self._here(students, now)
        for view, subject in zip(sessions, students, strict=True):
            if subject not in here:
                view["student_present"] = False  # a console that reloads is told again
        state = await self.store.tutor_state(tutor.id)
        snapshots = [await self._snapshot(q, now) for q in tutor.queues()]
        return {
            "status": state["status"] if state else "away",
            "sessions": sessions,
            "queues": snapshots,
            "capacity": self._capacity(tutor.vendor),
            "booked": await self.rooms.state(tutor=tutor.scheduler_id),
        }

    async def set_status(self, tutor: Tutor, status: str) -> dict[str, Any]:
        if status not in TUTOR_STATUSES:
            raise InvalidPayload("status must be 'available' or 'away'")
        await self.store.set_tutor_status(
            tutor.id, tutor.vendor, tutor.languages, status, self.clock()
        )
        self._forget_counts()  # estimates from now on count this change
        for name in tutor.queues():
            self.push_queue(name)
        return {"status": status}

    async def accept(self, tutor: Tutor, request_id: str) -> dict[str, Any]:
        """Claim a request for a tutor: exactly one tutor wins; capacity is enforced."""
        if tutor.id in self.desk.suspended:
            raise NotAllowed("this account is suspended")
        row = await self.store.request(request_id)
        if row is None or row["status"] != "queued":
            raise AlreadyTaken("this request is no longer waiting")
        if row["vendor"] != tutor.vendor or row["language"] not in tutor.languages:
            raise NotAllowed("this request is not in your queues")
        await self.desk.check_left_question(row)
        now = self.clock()
        session_row = {
            "id": new_id(),
            "request_id": request_id,
            "student": row["student"],
            "vendor": row["vendor"],
            "tutor_id": tutor.id,
            "tutor_name": tutor.display_name[:100],
            "language": row["language"],
            "subject": row["subject"],
            "school_kind": row["school_kind"],
            "school_id": row["school_id"],
            "grade": row["grade"],
            "queued_at": row["queued_at"],
            "accepted_at": at(now),
            "last_activity_at": at(now),
        }
        tutor_row = {
            "tutor_id": tutor.id, "vendor": tutor.vendor, "languages": ",".join(tutor.languages),
        }
        result = await self.store.accept(
            request_id, tutor.vendor, tutor_row, self._capacity(tutor.vendor), session_row
        )
        if result.over_capacity:
            raise OverCapacity("you already have as many sessions as you can take")
        if not result.ok:
            raise AlreadyTaken("this request is no longer waiting")
        session = OpenSession.from_row({**session_row, "queue": row["queue"], **{
            k: row.get(k) for k in ("topic", "first_name")
        }})
        self._remember(session)
        self._stale_counts()
        self._last_position.pop(request_id, None)
        vendor_name = self._vendor_name(session.vendor)
        await self.notifier.to_student(
            session.student, "session:started", session_view(session, vendor_name, "student")
        )
        self.push_queue(session.queue)
        view = session_view(session, vendor_name, "tutor")
        if student_subject(session.student) not in await self._here(
            [student_subject(session.student)], now
        ):
            view["student_present"] = False  # the tutor is told the student is not here
        return view

    # -- chat ---------------------------------------------------------------------------
    def _remember(self, session: OpenSession) -> None:
        self._known(session.id, (session.student, session.tutor_id, session.accepted_at))

    def _known(self, session_id: str, participants: tuple[str, str, float]) -> None:
        """Cache an open on-demand session's (student, tutor id, accepted at)."""
        if len(self._participants) >= PARTICIPANTS_CACHED and session_id not in self._participants:
            self._participants.pop(next(iter(self._participants)))
        self._participants[session_id] = participants

    async def _participant(
        self, identity: Identity, session_id: str
    ) -> tuple[str, str, float, str]:
        """(student, tutor id, accepted at, the caller's role) of a session of the caller's.

        The participants of a session never change, so they are cached; whether the
        session is still open is checked by the write that needs it."""
        known = self._participants.get(session_id)
        if known is None:
            known = self._learn(await self.store.session(session_id))
        if known is not None:
            student, tutor_id, accepted_at = known
            if identity.role == "student" and student == identity.subject:
                return student, tutor_id, accepted_at, "student"
            if identity.role == "tutor" and tutor_id == identity.subject:
                return student, tutor_id, accepted_at, "tutor"
        raise NotFound("no such open session of yours")

    def _learn(self, row: dict[str, Any] | None) -> tuple[str, str, float] | None:
        """An open on-demand session's participants from its row, cached; else None."""
        if row is None or row["ended_at"] is not None or row["booking"] is not None:
            return None
        known = (row["student"], row["tutor_id"], epoch(row["accepted_at"]) or 0.0)
        self._known(str(row["id"]), known)
        return known

    async def _room(self, session_id: str) -> Room | None:
        """The open booked room ``session_id`` (None for an on-demand or unknown one).

        An on-demand session is told apart by the participants' cache or, the first time
        this process sees it (after a restart: every open session's first message), by its
        row, one read on the hot path that also fills that cache; only a booked session goes
        on to the rooms (several statements, when not cached)."""
        if session_id in self._participants:
            return None
        if not self.rooms.cached(session_id):
            row = await self.store.session(session_id)
            if row is None or row["booking"] is None:
                self._learn(row)
                return None
        return await self.rooms.room(session_id)

    async def join_booked(
        self, identity: Identity, session_id: str, after_seq: int = 0
    ) -> dict[str, Any]:
        """Enter an open booked room (records attendance; see :meth:`Rooms.join`)."""
        room = await self._room(session_id)
        if room is None:
            raise NotFound("no such open booked session")
        return await self.rooms.join(identity, room, after_seq)

    async def send(
        self, identity: Identity, session_id: str, text: str, client_id: str | None = None,
        image: str | None = None,
    ) -> dict[str, Any]:
        """Number, store and relay a message; per session, sequence numbers increase in the
        order the messages were committed, and one connection's messages commit in the
        order it sent them.

        At most once per ``client_id``: a resend with the ``client_id`` of a message the
        session already has (the sender lost the acknowledgement) is answered with that
        message, same ``id`` and ``seq``, and relays nothing again (whoever missed it gets
        it by gap fill, ``session:sync``).

        With ``image`` (an uploaded picture's id, :mod:`broker.media`) the message
        announces that picture, ``text`` (its caption) may be empty, and its client id is
        the picture's, so it is announced at most once."""
        text = check_text(text, self.settings.chat_max_chars) if image is None else text.strip()
        room = await self._room(session_id)
        if room is not None:
            if image is not None:
                raise NotAllowed("pictures cannot be sent in booked sessions yet")
            screened = await self._screen(
                identity, session_id, self.rooms.member(identity, room), text, client_id
            )
            if screened.held:
                return held_view(session_id, screened)
            return with_crisis(
                await self.rooms.send(
                    identity, room, screened.text, client_id, moderation=screened.moderation
                ),
                screened,
            )
        student, tutor_id, accepted_at, role = await self._participant(identity, session_id)
        await self._throttle(self.chat_limiter, f"{role}:{identity.subject}", "too many messages")
        picture = None
        if image is not None:
            client_id, picture = await self.media.announcing(session_id, role, image)
        screened = await self._screen(identity, session_id, role, text, client_id)
        if screened.crisis is not None:
            await self.notifier.to_student(student, "safety:crisis", screened.crisis)
        if screened.held:
            return held_view(session_id, screened)
        now = self.clock()
        seq = await self.store.add_message(
            session_id, role, screened.text, now, accepted_at, client_id=client_id
        )
        if seq is None:
            self._participants.pop(session_id, None)
            raise NotFound("no such open session of yours")
        if isinstance(seq, Resent):
            resent = resent_view(session_id, seq, role)
            return {**resent, "image": picture} if picture else resent
        message = message_view(session_id, seq, role, screened.text, now)
        if screened.moderation is not None:
            message["moderation"] = screened.moderation
        if picture is not None:
            message["image"] = picture
        await self.notifier.to_student(student, "chat:message", message)
        await self.notifier.to_tutor(tutor_id, "chat:message", message)
        return with_crisis(message, screened)

    async def _screen(
        self, identity: Identity, session_id: str, role: str, text: str, client_id: str | None
    ) -> Screened:
        """Moderate one message of a participant (:meth:`Safety.screen`): the session's
        school and vendor are read only for a message that must be recorded."""
        decision = self.safety.decide(text, role)
        where = None
        if decision.action != "deliver" or decision.distress:
            where = await self.where(session_id)
        learner = identity.learner
        return await self.safety.screen(
            decision, text, where, role, now=self.clock(), client_id=client_id,
            locale=learner.locale if learner is not None else None,
        )

    async def where(self, session_id: str) -> Where:
        """The session's school, vendor and tutor, as flags and alerts record them."""
        row = await self.store.session(session_id)
        if row is None:
            raise NotFound("no such session of yours")
        return Where(session_id, row["school_id"], row["vendor"], row["tutor_id"])

    async def typing(self, identity: Identity, session_id: str) -> None:
        room = await self._room(session_id)
        if room is not None:
            return await self.rooms.typing(identity, room)
        student, tutor_id, _, role = await self._participant(identity, session_id)
        data = {"session_id": session_id, "from": role}
        if role == "student":
            await self.notifier.to_tutor(tutor_id, "chat:typing", data)
        else:
            await self.notifier.to_student(student, "chat:typing", data)

    async def sync(self, identity: Identity, session_id: str, after_seq: int) -> dict[str, Any]:
        """What a participant may have missed of a session: its messages after ``after_seq``
        and, once it has ended, how it ended (with the messages still in its buffer, which
        outlives the session by :data:`~broker.constants.BUFFER_AFTER_END_S`)."""
        role = identity.role
        # The session (joined with its request) if open; else the ended row. Read in that
        # order so that a session ending between the two reads is seen as ended.
        found = await self.store.open_sessions(session_id=session_id)
        row = found[0] if found else await self.store.session(session_id)
        if row is not None and row.get("booking") is not None:
            rooms = await rooms_store.rooms(self.store.engine, [session_id])
            return await self.rooms.sync(identity, rooms[0], after_seq)
        mine = row is not None and (
            (role == "student" and row["student"] == identity.subject)
            or (role == "tutor" and row["tutor_id"] == identity.subject)
        )
        if row is None or not mine:
            raise NotFound("no such session of yours")
        messages = [
            message_view(session_id, m["seq"], m["sender"], m["text"], epoch(m["at"]) or 0.0)
            for m in await self.store.messages_after(session_id, after_seq)
        ]
        messages = await self.media.attach(session_id, messages)
        if not found:
            ended: dict[str, Any] = {"session_id": session_id, "reason": row["end_reason"]}
            if row["end_reason"] in REQUEUED_REASONS and role == "student":
                ended["requeued"] = True
            return {"session": None, "messages": messages, "ended": ended}
        session = OpenSession.from_row(row)
        return {
            "session": session_view(session, self._vendor_name(session.vendor), role),
            "messages": messages,
            "ended": None,
        }

    async def end(
        self,
        identity: Identity,
        session_id: str,
        outcome: str | None = None,
        tutored_subject: str | None = None,
        resolved: bool | None = None,
        reason: str | None = None,
        notes: str | None = None,
    ) -> None:
        """End a session of the caller's; a tutor may end it as ``student_silent``
        (:meth:`SafetyDesk.end_student_silent`). ``notes``: the tutor's private notes,
        stored with the outcome (a student's are refused)."""
        if notes is not None and identity.role != "tutor":
            raise InvalidPayload("only tutors keep notes")
        if reason == "student_silent":
            return await self.desk.end_student_silent(identity, session_id)
        if reason is not None:
            raise InvalidPayload("reason may only be student_silent")
        room = await self._room(session_id)
        if room is not None:
            return await self.rooms.end(identity, room)
        _, _, _, role = await self._participant(identity, session_id)
        rows = await self.store.open_sessions(session_id=session_id)
        ended = bool(rows) and await self._end(
            OpenSession.from_row(rows[0]),
            role,
            self.clock(),
            outcome=outcome,
            tutored_subject=tutored_subject,
            resolved=resolved,
            notes=notes,
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
        notes: str | None = None,
    ) -> None:
        """Record how an ended session went (when the student ended it before the tutor),
        with the tutor's private notes."""
        if not await self.store.set_outcome(
            session_id, tutor.id, outcome, tutored_subject, resolved, notes
        ):
            raise NotFound("no such ended session of yours")

    async def _end(
        self,
        session: OpenSession,
        reason: str,
        now: float,
        *,
        requeue: bool = False,
        at_head: bool = False,
        detail: str | None = None,
        outcome: str | None = None,
        tutored_subject: str | None = None,
        resolved: bool | None = None,
        notes: str | None = None,
    ) -> bool:
        values = {
            "ended_at": at(now),
            "end_reason": reason,
            "outcome": outcome or detail,
            "tutored_subject": tutored_subject,
            "resolved": resolved,
            "tutor_notes": notes,
        }
        if not await self.store.end_session(
            session.id, session.request_id, session.tutor_id, values, requeue=requeue,
            at_head=at_head,
        ):
            return False  # another process (or caller) ended it first
        self._participants.pop(session.id, None)
        await self.board.drop(session.id)
        self._stale_counts()
        event = {"session_id": session.id, "reason": reason}
        if detail == SIGNED_OUT:
            event["detail"] = detail  # the student is told their tutor signed out
        await self.notifier.to_tutor(session.tutor_id, "session:ended", event)
        if requeue:
            await self.notifier.to_student(
                session.student, "session:ended", {**event, "requeued": True}
            )
            row = await self.store.request(session.request_id)
            if row is not None and row["status"] == "queued":
                position = await self.store.position(row["queue"], row["rank"], row["id"])
                self._forget_counts()  # the tutor who left must not count in this estimate
                rate, available = await self._queue_rates(row["queue"], now)
                eta = estimate_wait_s(position, rate, available)
                self._last_position[row["id"]] = (position, eta)
                await self.notifier.to_student(
                    session.student,
                    "queue:position",
                    {"request_id": row["id"], "position": position, "eta_s": eta,
                     **self.desk.nobody_on_shift(row["queue"], available)},
                )
            self.push_queue(session.queue)
        else:
            await self.notifier.to_student(session.student, "session:ended", event)
        log.info("session %s ended (%s)", session.id, reason)
        return True

    # -- queue pushes -------------------------------------------------------------------
    def push_queue(self, name: str) -> None:
        """Schedule a push of positions and the tutors' snapshot for one queue.

        Throttled, leading and trailing (:meth:`_later`): the first change to a quiet queue
        is pushed at once, and the changes that follow within ``push_delay_s``
        (``QUEUE_PUSH_COALESCE_S``) of that push make one more push when the window ends. Each
        push reads the queue once and emits only positions or estimates that changed, so a
        burst of requests and cancels costs at most one pass over the queue per window, not
        one per change, and no change waits longer than one window to be shown.
        """
        if name not in self._pending_pushes:
            self._later(self._pending_pushes, name, self._push_queue, "push")

    def push_positions_here(self, name: str) -> None:
        """Schedule telling this process's own students waiting in ``name`` their places
        (with :attr:`holds` set: another process changed the queue). Coalesced as
        :meth:`push_queue`, and nothing if a push of the whole queue is already due."""
        if name not in self._pending_pushes and name not in self._pending_positions:
            self._later(self._pending_positions, name, self._push_positions_here, "positions")

    def _later(
        self, pending: dict[str, asyncio.Task[Any]], name: str,
        push: Callable[[str], Awaitable[None]], label: str,
    ) -> None:
        """Run ``push(name)`` as soon as the last push of ``name`` (of this ``label``) is
        ``push_delay_s`` old: at once if it is already (or there was none), else when it
        is; registered in ``pending`` until it starts (where :meth:`flush_pushes` can
        cancel it and push at once). So one queue is pushed at most once per
        ``push_delay_s``, and a change waits at most that long. With ``lead_pushes`` off
        (tests that make every push themselves) the push always waits ``push_delay_s``.

        Measured (bench/broker.py, 200 students requesting and cancelling in a loop,
        embedded): a push 100 ms after each change made ~700 ``queue:position`` pushes a
        second; at most one per 500 ms, ~140, and ~10% more requests a second (four
        alternating runs each: 2,926 -> 3,240 acks/s)."""
        loop = asyncio.get_running_loop()
        key = (label, name)
        delay = self.push_delay_s
        if self.lead_pushes:
            last = self._pushed_at.get(key)
            delay = 0.0 if last is None else max(0.0, last + self.push_delay_s - loop.time())

        async def after_delay() -> None:
            if delay:
                await asyncio.sleep(delay)
            pending.pop(name, None)  # from here on, flush_pushes waits for it
            self._pushed_at[key] = loop.time()
            await push(name)

        pending[name] = self._spawn(after_delay(), f"{label}:{name}")

    async def _push_positions_here(self, name: str) -> None:
        if name in self._pending_pushes or self.holds is None:
            return  # the whole push, due after this, tells them
        now = self.clock()
        rows, _ = await self.store.queue(name)
        await self._push_positions(name, rows, now, local=self.holds, only_changed=True)

    async def flush_pushes(self) -> None:
        """Make every pending queue push now, and wait for the pushes under way.

        For tests (and anyone who must not wait on the clock): what the coalesced pushes
        would have sent ``push_delay_s`` later is sent before this returns. A push still
        waiting out its delay is cancelled and made here instead, so each change is pushed
        once either way.
        """
        pushes = (
            (self._pending_pushes, self._push_queue, "push"),
            (self._pending_positions, self._push_positions_here, "positions"),
        )
        loop = asyncio.get_running_loop()
        while self._pending_pushes or self._pending_positions or self._tasks:
            for pending, push, label in pushes:
                while pending:
                    name, task = pending.popitem()
                    task.cancel()  # still asleep (or not started): it has sent nothing
                    self._pushed_at[(label, name)] = loop.time()
                    await push(name)
            await asyncio.gather(*self._tasks, return_exceptions=True)  # failures are logged

    async def _push_queue(self, name: str) -> None:
        """Tell the queue's waiting students their places (with :attr:`holds` set, only
        this process's own: the others' processes read the queue when the snapshot reaches
        them) and every process's tutors watching it the snapshot."""
        now = self.clock()
        rows, total = await self.store.queue(name)
        self._last_snapshot[name] = _shown(rows, total)
        await self._push_positions(name, rows, now, local=self.holds, only_changed=True)
        await self.notifier.to_queue_watchers(
            name, "queue:snapshot", self._snapshot_of(name, rows, total, now)
        )

    async def _push_positions(
        self, name: str, rows: list[dict[str, Any]], now: float, *,
        local: Callable[[str], bool] | None = None, only_changed: bool = False,
    ) -> None:
        """Tell each waiting student their position and estimate, when it changed (with
        ``local``, whether this process holds a subject's connection: only those students,
        through this process alone, whatever was sent before, or with ``only_changed`` too,
        those whose last shown figures differ; ``only_changed`` alone changes nothing)."""
        rate, available = await self._queue_rates(name, now)
        for position, row in enumerate(rows, start=1):
            eta = estimate_wait_s(position, rate, available)
            changed = self._last_position.get(row["id"]) != (position, eta)
            if local is not None and not local(student_subject(row["student"])):
                continue
            if changed or (local is not None and not only_changed):
                self._last_position[row["id"]] = (position, eta)
                await self.notifier.to_student(
                    row["student"],
                    "queue:position",
                    {"request_id": row["id"], "position": position, "eta_s": eta,
                     **self.desk.nobody_on_shift(name, available)},
                    local=local is not None,
                )

    def shown_elsewhere(self, event: str, data: dict[str, Any]) -> None:
        """Another process's ``queue:snapshot`` or ``queue:position`` has just reached this
        process's connections (the edge calls this after delivering it). Pushes of two
        processes are not ordered with each other, so it may be older than the one this
        process sent last: remember it as what they were shown, and the next sweep re-sends
        the queue or the position if the database says otherwise. A snapshot of a queue
        one of this process's students waits in also schedules telling them their places
        (:meth:`push_positions_here`, with :attr:`holds` set). Other events: ignored."""
        if event == "queue:snapshot":
            name, requests = data.get("queue"), data.get("requests")
            if isinstance(name, str) and isinstance(requests, list):
                ids = tuple(str(r.get("id")) for r in requests if isinstance(r, dict))
                self._last_snapshot[name] = (ids, int(data.get("total") or 0))
                if self.holds is not None and name in self._waiting_here:
                    self.push_positions_here(name)
        elif event == "queue:position":
            rid, position, eta = data.get("request_id"), data.get("position"), data.get("eta_s")
            if isinstance(rid, str) and isinstance(position, int):
                self._last_position[rid] = (position, eta if isinstance(eta, int) else None)

    async def _snapshot(self, name: str, now: float) -> dict[str, Any]:
        rows, total = await self.store.queue(name, SNAPSHOT_LIMIT)
        return self._snapshot_of(name, rows, total, now)

    @staticmethod
    def _snapshot_of(
        name: str, rows: list[dict[str, Any]], total: int, now: float
    ) -> dict[str, Any]:
        return {
            "queue": name,
            "total": max(total, len(rows)),
            "requests": [tutor_request_view(row, now) for row in rows[:SNAPSHOT_LIMIT]],
        }

    async def _queue_rates(self, name: str, now: float) -> tuple[float, int]:
        """(recent accepts per second, tutors available) for a queue's wait estimates.

        From counts at most ``TUTOR_COUNT_MAX_AGE_S`` old, refreshed in the background when
        older (one read of each per second, never on a request's path once counted), and
        at once after this process changed a tutor's status. A tutor counts as available
        while their status is ``available`` and they are connected to some process now
        (:meth:`_here`: a closed browser stops counting within a few sweeps, not after
        the grace period)."""
        cached = self._counts
        if cached is None:
            cached = await self._count_rates(now)
        elif not 0 <= now - cached[0] <= TUTOR_COUNT_MAX_AGE_S and self._recount is None:
            self._recount = self._spawn(self._count_rates(now), "count-rates")
        return cached[1].get(name, 0) / ETA_WINDOW_S, cached[2].get(name, 0)

    async def _count_rates(
        self, now: float
    ) -> tuple[float, dict[str, int], dict[str, int]]:
        epoch = self._counts_epoch
        try:
            accepts = await self.store.accepts_since(now - ETA_WINDOW_S)
            available: dict[str, int] = {}
            states = [
                state for state in await self.store.tutor_states() if state["status"] == "available"
            ]
            here = await self._here([tutor_subject(state["tutor_id"]) for state in states], now)
            for state in states:
                if tutor_subject(state["tutor_id"]) not in here:
                    continue
                for language in filter(None, state["languages"].split(",")):
                    key = f"{state['vendor']}:{language}"
                    available[key] = available.get(key, 0) + 1
            counted = (now, accepts, available)
            if epoch == self._counts_epoch:  # nothing changed while it read
                self._counts = counted
            return counted
        finally:
            self._recount = None

    def _forget_counts(self) -> None:
        """This process changed a tutor's status: the next estimate counts afresh, and a
        count read before the change (one in the background) is not kept."""
        self._counts = None
        self._counts_epoch += 1

    def _stale_counts(self) -> None:
        """The counts changed (an accept, an end): refresh them, in the background."""
        if self._counts is not None:
            self._counts = (self._counts[0] - TUTOR_COUNT_MAX_AGE_S - 1, *self._counts[1:])

    async def _throttle(self, limiter: Throttle, key: str, message: str | None = None) -> None:
        """Count one event of ``key``; :class:`RateLimited` (nothing counted, nothing
        changed) past the limit. A throttle that cannot be reached, or does not answer
        within :data:`~broker.constants.REDIS_WAIT_S`, lets the event through (it is
        protection, not a record) and says so in the log. An event the throttle answers at
        once (``allow_now``: in memory, or from a lease) pays for no bound."""
        wait = limiter.allow_now(key)
        if wait is None:
            try:
                async with asyncio.timeout(REDIS_WAIT_S):  # a Redis that answers nothing
                    wait = await limiter.allow(key)
            except Exception as exc:
                # Redis down: every event would say so (a traceback each: ~400 a process in
                # an 8 s restart of Redis under churn); an outage is one line per 10 s
                self._outages.failure(
                    f"the {limiter.name} throttle", exc, "; not limiting", logging.WARNING
                )
                return
        if wait > 0:
            raise RateLimited(
                message or "too many requests; wait a moment", retry_after=int(wait) + 1
            )

    # -- staff --------------------------------------------------------------------------
    async def live_figures(self, vendor: str | None = None) -> dict[str, Any]:
        """Queued per queue, longest wait, tutors available and busy (optionally one vendor).

        Available and away count only tutors connected now (:meth:`_here`), busy ones
        those within the grace period, whatever their status says."""
        now = self.clock()
        queues: list[QueueFigures] = []
        for name, (length, oldest) in sorted((await self.store.queue_figures()).items()):
            if vendor is not None and not name.startswith(vendor + ":"):
                continue
            longest = max(0.0, now - (epoch(oldest) or now))
            queues.append(QueueFigures(queue=name, queued=length, longest_wait_s=int(longest)))
        states = [
            state
            for state in await self.store.tutor_states()
            if vendor is None or state["vendor"] == vendor
        ]
        subjects = [tutor_subject(state["tutor_id"]) for state in states]
        gone, here = await self.judge.gone_and_here(
            subjects, now, self.here_within_s, self.judge.can_judge(now)
        )
        # busy: a session is open (its tutor may be reconnecting, within the grace period);
        # available and away: connected now, so a closed browser stops counting at once
        present = [state for state in states if tutor_subject(state["tutor_id"]) not in gone]
        connected = [state for state in present if tutor_subject(state["tutor_id"]) in here]
        return {
            "queues": queues,
            "queued": sum(q["queued"] for q in queues),
            "longest_wait_s": max((q["longest_wait_s"] for q in queues), default=0),
            "tutors_available": sum(
                1
                for state in connected
                if state["status"] == "available" and not state["open_sessions"]
            ),
            "tutors_busy": sum(1 for state in present if state["open_sessions"]),
            "tutors_away": sum(
                1
                for state in connected
                if state["status"] == "away" and not state["open_sessions"]
            ),
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
    if value is None or value == "":
        return None
    try:
        return parse_grade(value)
    except UnknownGradeError:
        return None


async def _breathe() -> None:
    """Let every ready callback of the event loop run once (a sweep between its phases)."""
    await asyncio.sleep(0)
