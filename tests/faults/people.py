"""Students and tutors as real socket.io clients that do what docs/protocol.md tells a client
to do, so the invariants judge what a person would see.

* Reconnection is on (as in the widget and the console), with jittered backoff; the URL is
  asked for on every attempt and is the person's home server while it is up, else another
  one (what a load balancer with health checks does). ``server:restart`` makes the client
  disconnect and come back elsewhere after ``retry_after_ms``.
* Per session a :class:`SessionLog` keeps messages by id, delivers them in ``seq`` order and
  holds back what comes after a gap. A gap that is still open after ``GAP_WAIT_S``, a
  reconnect and ``server:resync`` are filled with ``session:sync``; a reconnect and
  ``server:resync`` also re-ask ``session:state`` / ``tutor:state``, and sync the sessions
  that closed within the time the server keeps an ended session's buffer; a student tells
  ``session:state`` the request it shows as waiting, and syncs the session its ``ended``
  names (taken and ended while the client heard nothing); a pushed ``session:state``
  that shows neither a request nor a session while it shows one waiting makes it ask so
  (a push carries no ``ended``), as the widget does. A session that
  ends (``session:ended``, or the client's own ``session:end``) is synced once more, for
  the last messages if their push was lost.
* Every call is recorded (:class:`Call`): its code (``ok``, an error code, or ``no_ack`` when
  nothing answered within the timeout, ``offline`` when there was no connection).

Event handlers are plain functions: python-socketio runs each incoming packet in a task of
its own, and a handler that never awaits sees the packets in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import socketio

from broker import tokens
from broker.constants import BUFFER_AFTER_END_S
from tests.broker.harness import SECRET
from tests.faults.cluster import Cluster

CALL_TIMEOUT_S = 4.0
# A connection's events are answered in turn, so a sync may wait behind the connection's
# own write whose outcome is in doubt (its retry waits up to IN_DOUBT_WAIT_S, 3 s,
# broker/commit/base.py); the pages wait 10 s for every answer.
SYNC_TIMEOUT_S = CALL_TIMEOUT_S
GAP_WAIT_S = 0.25  # a later message may just be overtaking an earlier one
ENDED_BUFFER_S = BUFFER_AFTER_END_S - 10  # what the server keeps of an ended session
# on server:restart, how long the answers of calls under way are awaited (as the pages do:
# RESTART_ANSWERS_MS in web/static/js/common.js)
DRAIN_WAIT_S = 1.0
# docs/protocol.md, "Acknowledgements and errors"
DOCUMENTED_CODES = frozenset(
    {
        "invalid_payload",
        "unmet",
        "conflict",
        "not_found",
        "already_taken",
        "over_capacity",
        "not_allowed",
        "rate_limited",
        "unauthenticated",
        "broker_error",
        "internal",
    }
)


@dataclass
class Call:
    who: str
    event: str
    payload: Any
    start: float
    end: float = 0.0
    code: str = "no_ack"  # ok | an error code | no_ack | offline | malformed
    result: dict[str, Any] = field(default_factory=dict)
    server: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    @property
    def detail(self) -> dict[str, Any]:
        error = self.result.get("error")
        return dict(error.get("detail") or {}) if isinstance(error, dict) else {}


class SessionLog:
    """One session as a client shows it: each message once, in ``seq`` order."""

    def __init__(self, session_id: str, request_id: str | None = None) -> None:
        self.id = session_id
        self.request_id = request_id
        self.open = True
        self.changed_at = time.time()  # when ``open`` was last set
        self.closed_at = 0.0  # when the client last saw it close
        self.ended: dict[str, Any] | None = None  # the session:ended the client learned
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_seq: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, dict[str, Any]] = {}  # received, waiting for a lower seq
        self.next_seq = 1
        self.delivered: list[dict[str, Any]] = []
        self.arrivals: list[int] = []  # seq of every push, in arrival order
        self.reused: list[tuple[dict[str, Any], dict[str, Any]]] = []  # one id/seq, two texts
        self.pushed_twice = 0
        self.recovered = 0  # first learned through session:sync
        self.late = 0  # ... only through the quiet-spell sync (see Person.quiet_sync)

    def add(self, message: dict[str, Any], via: str) -> None:
        """``via``: ``push`` (chat:message), ``own`` (a send's ack), ``sync`` (session:sync)
        or ``quiet`` (session:sync after a quiet spell)."""
        seq = int(message["seq"])
        if via == "push":
            self.arrivals.append(seq)
        known = self.by_id.get(message["id"]) or self.by_seq.get(seq)
        if known is not None:
            same = known["id"] == message["id"] and known["text"] == message["text"]
            if not same or int(known["seq"]) != seq:
                self.reused.append((known, message))
            elif via == "push":
                self.pushed_twice += 1
            return
        self.by_id[message["id"]] = self.by_seq[seq] = message
        if via in ("sync", "quiet"):
            self.recovered += 1
            self.late += via == "quiet"
        self.pending[seq] = message
        while self.next_seq in self.pending:
            self.delivered.append(self.pending.pop(self.next_seq))
            self.next_seq += 1

    @property
    def gap(self) -> bool:
        return bool(self.pending)

    def set_open(self, is_open: bool, asked_at: float | None = None) -> None:
        """Mark open or closed; from a state asked at ``asked_at``, only if nothing newer
        was learned since (a push that overtook the answer is the fresher news)."""
        if asked_at is not None and self.changed_at > asked_at:
            return
        if is_open and self.ended is not None:
            return  # an ended session never reopens
        if self.open and not is_open:
            self.closed_at = time.time()
        self.open = is_open
        self.changed_at = time.time()

    @property
    def recently_closed(self) -> bool:
        """Closed within the time the server keeps an ended session's buffer."""
        return not self.open and time.time() - self.closed_at < ENDED_BUFFER_S

    def end(self, ended: dict[str, Any] | None) -> None:
        self.set_open(False)
        if ended is not None:
            self.ended = ended


class Person:
    """One browser tab of a student or a tutor: a reconnecting socket.io connection."""

    namespace: ClassVar[str]
    state_event: ClassVar[str]

    def __init__(self, identity: tokens.Identity, cluster: Cluster, home: int) -> None:
        self.identity = identity
        self.name = identity.subject
        # what this client's client_ids start with: unique per client (per tab), as a
        # page's random ones are; two tabs of one person must never share one
        self.client_ids = f"{self.name}-{secrets.token_hex(4)}"
        self.cluster = cluster
        self.home = home
        self.target = home  # the server of the current (or next) connection
        self.server: int | None = None  # the server connected to, None while offline
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.2,  # then 0.4, 0.8, 1.0 ..., each +-0.15 s of jitter
            reconnection_delay_max=1.0,
            randomization_factor=0.15,
            handle_sigint=False,
        )
        self.sio.on("connect", self._on_connect, namespace=self.namespace)
        self.sio.on("disconnect", self._on_disconnect, namespace=self.namespace)
        self.sio.on("*", self._on_event, namespace=self.namespace)
        self.sessions: dict[str, SessionLog] = {}
        self.calls: list[Call] = []
        self.sent: list[tuple[int, dict[str, Any]]] = []  # (send order, message acked ok)
        self.connects = 0
        self.first_connect: float | None = None
        self.offline: list[list[float]] = []  # [from, until] (until 0.0: still offline)
        self._avoid: int | None = None
        self._syncing: set[str] = set()
        self._sync_again: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._leaving = False  # told server:restart, leaving this connection
        self._in_flight = 0  # calls sent and not answered yet
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()
        self._said = 0
        self.late_ends = 0  # ends first learned through the quiet-spell sync

    # -- connection ---------------------------------------------------------------------
    def _url(self) -> str:
        self.target = self.cluster.pick(self.home, avoid=self._avoid)
        return self.cluster.url(self.target)

    async def connect(self) -> Self:
        await self.sio.connect(
            self._url,
            namespaces=[self.namespace],
            transports=["websocket"],
            auth={"token": tokens.issue(SECRET, self.identity)},
            wait_timeout=10,
        )
        return self

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._leave()

    async def _leave(self) -> None:
        """Disconnect, or stop reconnecting."""
        await self.sio.shutdown()
        # python-socketio keeps an aborted reconnect task; without this, a later drop of a
        # new connection would not reconnect
        self.sio._reconnect_task = None

    def _on_connect(self) -> None:
        self.server = self.target
        self._avoid = None
        self._leaving = False
        self.connects += 1
        if self.first_connect is None:
            self.first_connect = time.time()
        if self.offline and not self.offline[-1][1]:
            self.offline[-1][1] = time.time()
        if self.connects > 1:
            self.spawn(self.resync())

    def _on_disconnect(self, *_: Any) -> None:
        self.server = None
        if not self._closing:
            self.offline.append([time.time(), 0.0])

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _come_back_elsewhere(self, delay_s: float) -> None:
        """``server:restart``: leave (once the calls under way are answered, for at most
        ``DRAIN_WAIT_S``), come back to another server after the delay."""
        self._avoid = self.server
        self._leaving = True  # nothing new is sent on this connection
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), DRAIN_WAIT_S)
        await self._leave()
        if not self.offline or self.offline[-1][1]:
            self.offline.append([time.time(), 0.0])
        await asyncio.sleep(delay_s)
        while not self._closing and not self.sio.connected:
            try:
                await self.connect()
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.2)

    # -- calls --------------------------------------------------------------------------
    async def call(
        self, event: str, payload: Any = None, timeout: float = CALL_TIMEOUT_S, record: bool = True
    ) -> Call:
        call = Call(self.name, event, payload, time.time(), server=self.server)
        if self.server is None or self._leaving:
            call.code = "offline"
        else:
            self._in_flight += 1
            self._idle.clear()
            try:
                answer = await self.sio.call(
                    event, payload if payload is not None else {}, self.namespace, timeout
                )
            except socketio.exceptions.TimeoutError:
                call.code = "no_ack"
            except (socketio.exceptions.SocketIOError, ValueError):
                call.code = "offline"
            else:
                if isinstance(answer, dict) and answer.get("ok") is True:
                    call.code, call.result = "ok", answer
                elif isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                    call.code, call.result = str(answer["error"].get("code")), answer
                else:
                    call.code, call.result = "malformed", {"answer": answer}
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()
        call.end = time.time()
        if record:
            self.calls.append(call)
        return call

    async def ask_state(self) -> Call:
        """The checker's question: the server's view, not applied to the client's model."""
        return await self.call(self.state_event, {}, record=False)

    def state_payload(self) -> dict[str, Any]:
        """What the client tells its state question (a student: the request it shows)."""
        return {}

    async def refresh(self) -> None:
        call = await self.call(self.state_event, self.state_payload())
        if call.ok:
            self.apply_state(call.result, asked_at=call.start)

    async def resync(self) -> None:
        """After a reconnect or ``server:resync``: re-ask the state, then fill every session
        that was or is open from the server's buffer."""
        before = [s.id for s in self.sessions.values() if s.open or s.recently_closed]
        await self.refresh()
        now_open = [s.id for s in self.sessions.values() if s.open]
        for session_id in dict.fromkeys(before + now_open):
            await self.sync(session_id)

    async def quiet_sync(self) -> None:
        """What the page does after 30 s without hearing from an open session (the check
        compresses the wait): sync every session this client shows open."""
        for log in self.open_sessions():
            await self.sync(log.id, via="quiet")

    def _behind(self, session_id: str, seq: object) -> None:
        """A state said the session's last message is ``seq``: fetch what is missing."""
        if isinstance(seq, int) and seq > self.log(session_id).next_seq - 1:
            self.spawn(self.sync(session_id))

    async def sync(self, session_id: str, via: str = "sync") -> None:
        if session_id in self._syncing:
            self._sync_again.add(session_id)
            return
        self._syncing.add(session_id)
        try:
            again = True
            while again:
                self._sync_again.discard(session_id)
                log = self.log(session_id)
                call = await self.call(
                    "session:sync",
                    {"session_id": session_id, "after_seq": log.next_seq - 1},
                    timeout=SYNC_TIMEOUT_S,
                )
                if call.ok:
                    for message in call.result.get("messages") or []:
                        log.add(message, via)
                    if call.result.get("ended"):
                        self.late_ends += via == "quiet" and log.open
                        self.on_ended(call.result["ended"])
                    elif call.result.get("session"):
                        log.set_open(True, asked_at=call.start)
                again = session_id in self._sync_again
        finally:
            self._syncing.discard(session_id)

    async def _fill_gap(self, session_id: str) -> None:
        await asyncio.sleep(GAP_WAIT_S)
        if self.log(session_id).gap:
            await self.sync(session_id)

    # -- chat ---------------------------------------------------------------------------
    async def say(self, session_id: str, text: str | None = None) -> Call:
        self._said += 1
        order = self._said  # emits leave in the order of this counter
        data = {"session_id": session_id, "text": text or f"{self.name}#{order}"}
        if order % 2:  # as the pages do; the others as a client that gives none
            data["client_id"] = f"{self.client_ids}-{order}"
        call = await self.call("chat:send", data)
        if call.ok:
            message = call.result["message"]
            self.sent.append((order, message))
            self.log(session_id).add(message, "own")
        return call

    async def end_session(self, session_id: str) -> Call:
        call = await self.call("session:end", {"session_id": session_id})
        if call.ok:
            self.log(session_id).end(None)
            self.spawn(self.sync(session_id))  # the last messages, if a push was lost
        return call

    # -- the model ----------------------------------------------------------------------
    def log(self, session_id: str, request_id: str | None = None) -> SessionLog:
        log = self.sessions.get(session_id)
        if log is None:
            log = self.sessions[session_id] = SessionLog(session_id, request_id)
        elif request_id and not log.request_id:
            log.request_id = request_id
        return log

    def open_sessions(self) -> list[SessionLog]:
        return [s for s in self.sessions.values() if s.open]

    def _on_event(self, event: str, data: Any = None) -> None:
        if not isinstance(data, dict):
            data = {}
        if event == "chat:message":
            log = self.log(data["session_id"])
            log.add(data, "push")
            if log.gap:
                self.spawn(self._fill_gap(log.id))
        elif event == "session:ended":
            self.on_ended(data)
            if isinstance(data.get("session_id"), str):  # the last messages, if a push was lost
                self.spawn(self.sync(data["session_id"]))
        elif event == "server:resync":
            self.spawn(self.resync())
        elif event == "server:restart":
            self.spawn(self._come_back_elsewhere(float(data.get("retry_after_ms") or 0) / 1000))
        elif event == self.state_event:
            self.apply_state(data)
        else:
            self.on_push(event, data)

    def on_ended(self, data: dict[str, Any]) -> None:
        self.log(data["session_id"]).end(data)

    def on_push(self, event: str, data: dict[str, Any]) -> None:
        """Events only one side receives."""

    def apply_state(self, state: dict[str, Any], asked_at: float | None = None) -> None:
        """Show what the server says (``asked_at``: an answer to a question asked then,
        which does not undo what pushes told since; None: a push, newest by definition)."""
        raise NotImplementedError


class Student(Person):
    namespace = "/student"
    state_event = "session:state"

    def __init__(
        self, identity: tokens.Identity, cluster: Cluster, home: int, language: str, queue: str
    ) -> None:
        super().__init__(identity, cluster, home)
        self.language = language
        self.queue = queue
        self.request: str | None = None  # the waiting request the widget shows
        self.request_at = 0.0  # when ``request`` was last set
        self.closed: set[str] = set()  # requests known to have left the queue
        self.active: str | None = None  # the open session the widget shows

    def session(self) -> SessionLog | None:
        log = self.sessions.get(self.active) if self.active else None
        return log if log is not None and log.open else None

    def set_request(self, request_id: str | None, asked_at: float | None = None) -> None:
        if asked_at is None or self.request_at <= asked_at:
            self.request, self.request_at = request_id, time.time()

    def state_payload(self) -> dict[str, Any]:
        return {"request_id": self.request} if self.request else {}

    def apply_state(self, state: dict[str, Any], asked_at: float | None = None) -> None:
        request, session = state.get("request"), state.get("session")
        if asked_at is None and request is None and session is None and self.request:
            # A push (the one each connect sends) carries no ``ended``: while the widget
            # shows a request waiting it asks, telling that request, before concluding
            # that it waits no more (web/static/js/widget.js, applyState).
            self.spawn(self.refresh())
            return
        ended = (state.get("ended") or {}).get("session")
        if ended:  # the request it waited for was taken and its session ended unseen
            self.closed.add(ended["request_id"])
            log = self.log(ended["session_id"], ended["request_id"])
            if not log.ended:
                self.spawn(self.sync(ended["session_id"]))
        self.set_request(request["id"] if request else None, asked_at)
        shown = session["session_id"] if session else None
        if session:
            self.log(session["session_id"], session.get("request_id")).set_open(True, asked_at)
            self._behind(session["session_id"], session.get("seq"))
        for log in self.sessions.values():
            if log.id != shown:
                log.set_open(False, asked_at)
        self.active = next((log.id for log in self.sessions.values() if log.open), None)

    def on_ended(self, data: dict[str, Any]) -> None:
        super().on_ended(data)
        if data.get("session_id") == self.active:
            self.active = None
            rid = self.log(data["session_id"]).request_id
            if data.get("requeued") and rid:
                self.closed.discard(rid)  # back at the head of its queue
                self.set_request(rid)

    def on_push(self, event: str, data: dict[str, Any]) -> None:
        if event == "session:started":
            self.log(data["session_id"], data.get("request_id")).set_open(True)
            self.active = data["session_id"]
            self.closed.add(data.get("request_id", ""))
            self.set_request(None)
        elif event == "request:closed":
            self.closed.add(data.get("request_id", ""))
            if data.get("request_id") == self.request:
                self.set_request(None)
        elif event == "queue:position" and self.active is None:
            if data.get("request_id") not in self.closed:  # a push that the close overtook
                self.set_request(data.get("request_id"))

    async def ask_help(self) -> Call:
        call = await self.call("help:request", {"subject": "math", "language": self.language})
        if call.ok:
            self.set_request(call.result["request"]["id"])
        elif call.code == "conflict":
            await self.refresh()
        return call

    async def cancel(self, request_id: str) -> Call:
        call = await self.call("help:cancel", {"request_id": request_id})
        if call.ok:
            self.closed.add(request_id)
            if self.request == request_id:
                self.set_request(None)
        elif call.code in ("not_found", "already_taken"):
            await self.refresh()
        return call


class Tutor(Person):
    namespace = "/tutor"
    state_event = "tutor:state"

    def __init__(
        self, identity: tokens.Identity, cluster: Cluster, home: int, queues: list[str]
    ) -> None:
        super().__init__(identity, cluster, home)
        self.queue_names = queues
        self.queues: dict[str, dict[str, Any]] = {}  # the console's view, by queue name
        self.queues_at: dict[str, float] = {}
        self.status: str | None = None

    def apply_state(self, state: dict[str, Any], asked_at: float | None = None) -> None:
        self.status = state.get("status")
        shown = {s["session_id"]: s for s in state.get("sessions") or []}
        for session_id, view in shown.items():
            self.log(session_id, view.get("request_id")).set_open(True, asked_at)
            self._behind(session_id, view.get("seq"))
        for log in self.sessions.values():
            if log.id not in shown:
                log.set_open(False, asked_at)
        for snapshot in state.get("queues") or []:
            name = snapshot["queue"]
            if asked_at is None or self.queues_at.get(name, 0.0) <= asked_at:
                self.queues[name], self.queues_at[name] = snapshot, time.time()

    def on_push(self, event: str, data: dict[str, Any]) -> None:
        if event == "queue:snapshot":
            self.queues[data["queue"]], self.queues_at[data["queue"]] = data, time.time()

    def waiting(self) -> list[str]:
        """Request ids the console shows, head of each queue first."""
        return [r["id"] for q in self.queues.values() for r in q.get("requests", [])]

    async def set_status(self, status: str = "available") -> Call:
        call = await self.call("tutor:status", {"status": status})
        if call.ok:
            self.status = status
        return call

    async def accept(self, request_id: str) -> Call:
        call = await self.call("help:accept", {"request_id": request_id})
        if call.ok:
            view = call.result["session"]
            self.log(view["session_id"], view.get("request_id")).set_open(True)
        return call
