"""socket.io wiring: three namespaces, auth on connect, one typed ack per event.

Every handler answers ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code",
"message"}}``; a bad payload or an unexpected exception is logged and answered, never
propagated, so one bad event cannot break the connection or the process. An event sent
with extra arguments is answered (the extras are ignored); an event name the namespace
does not have is answered ``unknown_event``. Packets refused before any handler runs
(reserved event names, JSON that does not decode, malformed or binary events) are
:class:`~web.sio_guard.GuardedServer`'s to answer. A connect is answered too: accepted,
or refused with ``connect_error`` ``{code, message}`` (``unauthenticated``/``not_allowed``
for who the page is; ``internal`` when its state cannot be read, e.g. while the database
is down, and then nothing of the connection is kept and the page tries again).

**One connection's events are handled one at a time, in the order they arrived**, so a
burst of messages from one sender is numbered, stored and relayed in the order it was
sent; different connections are handled concurrently. The whiteboard's ``board:*`` events
keep their own order, beside the others (a stroke does not wait for a chat commit).

People are addressed through personal rooms: ``s:<pseudonym>`` in ``/student``,
``t:<tutor id>`` in ``/tutor``; tutors also join ``q:<vendor>:<language>`` for each queue
they may take from. For booked sessions (:mod:`broker.rooms`) a student whose launch
matched the roster also joins ``bs:<roster id>`` and a tutor ``bt:<scheduler id>``. With
``REDIS_URL`` the socket.io Redis manager carries emits to
whichever process holds the connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web
from aiohttp.typedefs import Middleware

from broker import metrics, tokens
from broker.constants import (
    MAX_EVENT_BYTES,
    REPORT_NOTE_MAX_CHARS,
    STAFF_PUSH_INTERVAL_S,
    TOPIC_MAX_CHARS,
    TUTOR_NOTES_MAX_CHARS,
)
from broker.db.closing import stop_task
from broker.errors import BrokerError, NotAllowed, Unauthenticated
from broker.identity import ACCOUNT_SOURCE, Identity, Tutor
from broker.log_pace import LogPace
from broker.outages import OutageLog
from broker.presence import student_subject, tutor_subject
from broker.service import Broker
from broker.settings import Settings
from web import board_events, jsonlib
from web import payloads as p
from web.sio_guard import GuardedServer
from web.sio_guard import error_ack as _error
from web.sio_manager import FanoutManager
from web.sio_rooms import index_rooms

log = logging.getLogger(__name__)
outages = OutageLog(log)

NAMESPACE_ROLES = {
    "/student": frozenset({"student"}),
    "/tutor": frozenset({"tutor"}),
    "/staff": frozenset({"staff", "teacher"}),
}

# A handler gets who is calling, the event's payload and the calling connection's sid.
Handler = Callable[[Identity, dict[str, Any], str], Awaitable[dict[str, Any] | None]]


RESYNC_BATCH = 500
RESYNC_PAUSE_S = 0.1


@dataclass(slots=True)
class Connection:
    namespace: str
    identity: Identity
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # one event at a time
    # the whiteboard's events, in their own order: a stroke never waits behind a chat commit
    board_turn: asyncio.Lock = field(default_factory=asyncio.Lock)


class SioNotifier:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def to_student(
        self, student: str, event: str, data: dict[str, Any], skip: str | None = None,
        *, local: bool = False,
    ) -> None:
        await self.sio.emit(
            event, data, to=f"s:{student}", namespace="/student", skip_sid=skip,
            ignore_queue=local,
        )

    async def to_tutor(self, tutor_id: str, event: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, to=f"t:{tutor_id}", namespace="/tutor")

    async def to_queue_watchers(
        self, queue: str, event: str, data: dict[str, Any], *, local: bool = False
    ) -> None:
        await self.sio.emit(event, data, to=f"q:{queue}", namespace="/tutor", ignore_queue=local)

    async def to_room(
        self, tutor: str, students: list[str], event: str, tutor_data: dict[str, Any],
        student_data: dict[str, Any], *, local: bool = False,
    ) -> None:
        await self.sio.emit(
            event, tutor_data, to=f"bt:{tutor}", namespace="/tutor", ignore_queue=local
        )
        if students:
            await self.sio.emit(
                event, student_data, to=[f"bs:{s}" for s in students], namespace="/student",
                ignore_queue=local,
            )


def create_server(settings: Settings) -> socketio.AsyncServer:
    """The socket.io server; with Redis, its emits reach other processes through
    :class:`~web.sio_manager.FanoutManager` (the gateway sets its ``on_gap``)."""
    manager = None
    if settings.redis_url:
        manager = FanoutManager(settings.redis_url, settings.redis_prefix)
    server = GuardedServer(
        async_mode="aiohttp",
        client_manager=manager,
        json=jsonlib,
        transports=["websocket"],
        max_http_buffer_size=MAX_EVENT_BYTES,
        cors_allowed_origins=[],
        logger=False,
        engineio_logger=False,
    )
    index_rooms(server.manager)  # a disconnect costs its own rooms, not a scan of all
    return server


def _cannot_connect(
    namespace: str, exc: Exception
) -> socketio.exceptions.ConnectionRefusedError:
    """The refusal for a connect that failed on the server's side, not the client's: a
    dependency outage (one log line per kind every 10 s, :mod:`broker.outages`) or
    anything unexpected (logged in full). Its data is the documented ``internal``; the
    pages connect again after a jittered backoff (``docs/protocol.md``)."""
    outages.failure(f"{namespace} connect", exc)
    error = _error("internal", "the server could not load your page's state; try again")
    return socketio.exceptions.ConnectionRefusedError(
        error["error"]["message"], error["error"]
    )


def _subject_of(namespace: str, identity: Identity) -> str | None:
    """The presence subject of a student's or tutor's connection (None for staff)."""
    if namespace == "/student":
        return student_subject(identity.subject)
    if namespace == "/tutor":
        return tutor_subject(identity.subject)
    return None


class SocketGateway:
    """Binds a :class:`Broker` to a socket.io server."""

    def __init__(self, sio: socketio.AsyncServer, settings: Settings) -> None:
        self.sio = sio
        self.settings = settings
        self.broker: Broker | None = None
        self.connections: dict[str, Connection] = {}
        # students' and tutors' presence subjects -> their connections to this process, so
        # a disconnect knows in O(1) whether it was the person's last one here (scanning
        # every connection per disconnect made a process's 18,000 disconnects at SIGTERM
        # quadratic: seconds of blocked loop, past the shutdown watchdog)
        self._here: collections.Counter[str] = collections.Counter()
        self._staff_task: asyncio.Task[None] | None = None
        self._last_staff: dict[str, Any] = {}
        for namespace in NAMESPACE_ROLES:
            sio.on("connect", self._connect_handler(namespace), namespace=namespace)
            sio.on("disconnect", self._disconnect_handler(namespace), namespace=namespace)
            sio.on("*", self._unknown_handler(namespace), namespace=namespace)
        self._register("/student", "help:request", self.help_request)
        self._register("/student", "help:cancel", self.help_cancel)
        self._register("/student", "help:leave", self.help_leave)
        self._register("/student", "session:rate", self.session_rate)
        self._register("/student", "session:state", self.student_state)
        self._register("/tutor", "tutor:status", self.tutor_status)
        self._register("/tutor", "help:accept", self.help_accept)
        self._register("/tutor", "tutor:state", self.tutor_state)
        self._register("/tutor", "session:outcome", self.session_outcome)
        self._register("/tutor", "tutor:sign_out", self.tutor_sign_out)
        for namespace in ("/student", "/tutor"):
            self._register(namespace, "session:sync", self.session_sync)
            self._register(namespace, "chat:send", self.chat_send)
            self._register(namespace, "chat:typing", self.chat_typing)
            self._register(namespace, "session:end", self.session_end)
            self._register(namespace, "booked:join", self.booked_join)
            self._register(namespace, "chat:report", self.chat_report)
        self._register("/staff", "staff:live", self.staff_live)
        board_events.register(self._register, lambda: self._broker)  # the whiteboard

    # -- plumbing -----------------------------------------------------------------------
    def attach(self, broker: Broker) -> None:
        self.broker = broker
        manager = self.sio.manager
        if isinstance(manager, FanoutManager):
            manager.on_gap = self.resync_local
            manager.on_received = self._received
            # Several processes: each tells its own waiting students their places.
            broker.holds = self._here.__contains__
        broker.local_subjects = self.local_subjects
        broker.local_queues = self.local_queues
        self._staff_task = asyncio.create_task(self._staff_loop(), name="staff-push")

    async def close_fanout(self) -> None:
        """Publish what the fan-out still holds, then stop it (at shutdown)."""
        manager = self.sio.manager
        if isinstance(manager, FanoutManager):
            await manager.close()

    async def detach(self) -> None:
        if self._staff_task is not None:  # its reads may wait on a database that is frozen
            await stop_task(self._staff_task)
        self.broker = None

    def _received(self, event: str, data: Any) -> None:
        """Another process's push reached this process's clients (fan-out manager)."""
        if isinstance(data, dict) and self.broker is not None:
            self.broker.shown_elsewhere(event, data)

    def local_subjects(self) -> list[str]:
        """The students and tutors connected to this process (presence subjects)."""
        return list(self._here)

    def local_queues(self) -> set[str]:
        """The queues this process's tutors watch."""
        queues: set[str] = set()
        for conn in self.connections.values():
            if conn.namespace == "/tutor" and conn.identity.tutor is not None:
                queues.update(conn.identity.tutor.queues())
        return queues

    async def resync_local(self) -> None:
        """Tell every connection of this process that pushes may have been lost (a pub/sub
        outage): each client re-asks for its state and the messages it missed.

        After a Redis restart every process does this at once, so the notices are paced:
        :data:`RESYNC_BATCH` connections every :data:`RESYNC_PAUSE_S`, so that the clients'
        re-reads reach the database at a bounded rate (18,000 clients: about 4 s)."""
        targets = [
            (sid, conn.namespace) for sid, conn in self.connections.items()
            if conn.namespace in ("/student", "/tutor")
        ]
        log.warning("pushes may have been lost: asking %d clients to resync", len(targets))
        for i, (sid, namespace) in enumerate(targets):
            if i and i % RESYNC_BATCH == 0:
                await asyncio.sleep(RESYNC_PAUSE_S)
            with contextlib.suppress(Exception):
                await self.sio.emit(
                    "server:resync", {}, to=sid, namespace=namespace, ignore_queue=True
                )

    @property
    def _broker(self) -> Broker:
        if self.broker is None:
            raise BrokerError("the broker is starting; try again")
        return self.broker

    def _register(self, namespace: str, event: str, handler: Handler) -> None:
        async def on_event(sid: str, *args: Any) -> dict[str, Any]:
            conn = self.connections.get(sid)
            if conn is None or conn.namespace != namespace:
                metrics.count_ack(namespace, event, "unauthenticated")
                return _error("unauthenticated", "not connected")
            data = args[0] if args else None
            try:
                async with conn.board_turn if event.startswith("board:") else conn.turn:
                    result = await handler(
                        conn.identity, p.obj(data if data is not None else {}), sid
                    )
            except BrokerError as exc:
                log.info("%s %s refused for %s: %s", namespace, event, sid, exc.code)
                metrics.count_ack(namespace, event, exc.code)
                return {"ok": False, "error": exc.as_dict()}
            except Exception as exc:
                outages.failure(f"{namespace} {event}", exc, f" for {sid}")
                metrics.count_ack(namespace, event, "internal")
                return _error("internal", "something went wrong; nothing was changed; try again")
            metrics.count_ack(namespace, event)
            return {"ok": True, **(result or {})}

        self.sio.on(event, on_event, namespace=namespace)

    def _unknown_handler(self, namespace: str) -> Callable[..., Awaitable[dict[str, Any]]]:
        """Answers an event this namespace does not have (a typo, or a client newer than the
        process during a rolling deploy) ``unknown_event``, instead of no ack at all."""

        async def unknown(event: str, sid: str, *_: Any) -> dict[str, Any]:
            log.info("%s: unknown event %.64r from %s", namespace, event, sid)
            metrics.count_ack(namespace, "*", "unknown_event")
            return _error("unknown_event", f"{event[:64]!r} is not an event of {namespace}")

        return unknown

    def _connect_handler(
        self, namespace: str
    ) -> Callable[[str, dict[str, Any], Any], Awaitable[None]]:
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            token = auth.get("token") if isinstance(auth, dict) else None
            try:
                identity = tokens.verify(self.settings.secret_key, token)
                if identity.role not in NAMESPACE_ROLES[namespace]:
                    raise NotAllowed(f"a {identity.role} cannot connect to {namespace}")
                if namespace == "/staff":
                    identity.require_scope()
                elif namespace == "/tutor":
                    _tutor(identity)
                if identity.source == ACCOUNT_SOURCE and not await self._active(identity):
                    raise Unauthenticated("please sign in")
                self.connections[sid] = Connection(namespace, identity)
                if (subject := _subject_of(namespace, identity)) is not None:
                    self._here[subject] += 1
                await self._joined(sid, namespace, identity)
            except BrokerError as exc:
                self._forget(sid)  # if it was counted already
                log.info("refused %s connection: %s", namespace, exc.message)
                # connect_error's data is the documented {code, message}
                raise socketio.exceptions.ConnectionRefusedError(
                    exc.message, exc.as_dict()
                ) from None
            except Exception as exc:
                # The page's state could not be read (the database is down, say): undo what
                # counted this connection, and answer so that the page tries again, instead
                # of leaving its CONNECT unanswered (socket.io-client waits for it forever).
                self._forget(sid)
                raise _cannot_connect(namespace, exc) from None

        return connect

    async def _active(self, identity: Identity) -> bool:
        """Whether a tutor's or staff member's account is not disabled (e.g. suspended
        after a safety review): a token minted before does not outlive that."""
        broker = self.broker
        return broker is None or not await broker.desk.disabled(identity.subject)

    def _disconnect_handler(self, namespace: str) -> Callable[..., Awaitable[None]]:
        async def disconnect(sid: str, *_: Any) -> None:
            self._forget(sid)

        return disconnect

    def _forget(self, sid: str) -> None:
        """The connection ``sid`` is gone (or was refused after it was counted)."""
        conn = self.connections.pop(sid, None)
        subject = None if conn is None else _subject_of(conn.namespace, conn.identity)
        if subject is None:
            return
        self._here[subject] -= 1
        if self._here[subject] > 0:
            return
        del self._here[subject]  # their last connection here closed
        if self.broker is not None:
            self.broker.note_left(subject)

    async def _joined(self, sid: str, namespace: str, identity: Identity) -> None:
        broker = self.broker
        if namespace == "/student":
            await self.sio.enter_room(sid, f"s:{identity.subject}", namespace=namespace)
            if identity.learner is not None and identity.learner.roster_id:
                await self.sio.enter_room(
                    sid, f"bs:{identity.learner.roster_id}", namespace=namespace
                )
            if broker is not None:
                state = await broker.student_state(identity)
                await self.sio.emit("session:state", state, to=sid, namespace=namespace)
                if state.get("session"):
                    await broker.announce_back(identity)
        elif namespace == "/tutor":
            tutor = _tutor(identity)
            await self.sio.enter_room(sid, f"t:{tutor.id}", namespace=namespace)
            await self.sio.enter_room(sid, f"bt:{tutor.scheduler_id}", namespace=namespace)
            for queue in tutor.queues():
                await self.sio.enter_room(sid, f"q:{queue}", namespace=namespace)
            if broker is not None:
                state = await broker.tutor_state(tutor)
                await self.sio.emit("tutor:state", state, to=sid, namespace=namespace)
                for snapshot in state["queues"]:
                    await self.sio.emit("queue:snapshot", snapshot, to=sid, namespace=namespace)
                if state["sessions"]:
                    await broker.announce_back(identity)
        else:
            await self.sio.enter_room(sid, "staff", namespace=namespace)
            if broker is not None:
                figures = await broker.live_figures(_staff_vendor(identity))
                await self.sio.emit("staff:live", figures, to=sid, namespace=namespace)

    async def _staff_loop(self) -> None:
        """Push live figures to this process's staff at most once a second, when changed."""
        while True:
            await asyncio.sleep(STAFF_PUSH_INTERVAL_S)
            broker = self.broker
            staff = [(sid, c) for sid, c in self.connections.items() if c.namespace == "/staff"]
            if broker is None or not staff:
                continue
            try:
                cache: dict[str | None, dict[str, Any]] = {}
                for sid, conn in staff:
                    vendor = _staff_vendor(conn.identity)
                    if vendor not in cache:
                        cache[vendor] = await broker.live_figures(vendor)
                    figures = cache[vendor]
                    comparable = {k: v for k, v in figures.items() if k != "at"}
                    if self._last_staff.get(sid) != comparable:
                        self._last_staff[sid] = comparable
                        await self.sio.emit("staff:live", figures, to=sid, namespace="/staff")
                for sid in set(self._last_staff) - {sid for sid, _ in staff}:
                    self._last_staff.pop(sid, None)
            except Exception as exc:
                outages.failure("the staff push", exc, "; will retry")  # once a second

    # -- student events -----------------------------------------------------------------
    async def help_request(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        request = await self._broker.request_help(
            who,
            subject=p.text(data, "subject", max_len=64),
            language=p.text(data, "language", max_len=64),
            topic=p.text(data, "topic", required=False, max_len=200),
            grade=p.grade(data),
        )
        return {"request": request}

    async def help_cancel(self, who: Identity, data: dict[str, Any], sid: str) -> None:
        await self._broker.cancel(who, p.ident(data, "request_id"), origin=sid)

    async def session_rate(self, who: Identity, data: dict[str, Any], sid: str) -> None:
        await self._broker.rate(
            who,
            p.ident(data, "session_id"),
            p.boolean(data, "helped"),
            p.integer(data, "stars", 1, 5),
        )

    async def student_state(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        waiting = p.ident(data, "request_id") if data.get("request_id") is not None else None
        return await self._broker.student_state(who, waiting)

    # -- tutor events -------------------------------------------------------------------
    async def tutor_status(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return await self._broker.set_status(
            _tutor(who), p.text(data, "status", max_len=16)
        )

    async def help_accept(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        session = await self._broker.accept(_tutor(who), p.ident(data, "request_id"))
        return {"session": session}

    async def tutor_state(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return await self._broker.tutor_state(_tutor(who))

    async def tutor_sign_out(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return await self._broker.sign_out(_tutor(who))

    async def session_sync(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return await self._broker.sync(
            who, p.ident(data, "session_id"), p.integer(data, "after_seq", 0, 2**31 - 1)
        )

    # -- shared events ------------------------------------------------------------------
    async def chat_send(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        # a picture's message (docs/protocol.md, "Images"): its caption may be empty
        image = p.ident(data, "image") if data.get("image") is not None else None
        message = await self._broker.send(
            who,
            p.ident(data, "session_id"),
            p.text(data, "text", required=image is None, max_len=self.settings.chat_max_chars),
            client_id=p.client_id(data),
            image=image,
        )
        if message.get("held"):  # not relayed: {held, session_id, categories, crisis?}
            return message
        crisis = message.pop("crisis", None)
        return {"message": message, **({"crisis": crisis} if crisis else {})}

    async def chat_typing(self, who: Identity, data: dict[str, Any], sid: str) -> None:
        await self._broker.typing(who, p.ident(data, "session_id"))

    async def session_end(self, who: Identity, data: dict[str, Any], sid: str) -> None:
        await self._broker.end(
            who,
            p.ident(data, "session_id"),
            outcome=p.text(data, "outcome", required=False, max_len=32) or None,
            tutored_subject=p.text(data, "tutored_subject", required=False, max_len=64) or None,
            resolved=p.boolean(data, "resolved"),
            reason=p.text(data, "reason", required=False, max_len=32) or None,
            notes=_notes(data),
        )

    async def help_leave(self, who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await self._broker.desk.leave_question(
            who,
            p.ident(data, "request_id"),
            p.text(data, "topic", required=False, max_len=TOPIC_MAX_CHARS) or None,
        )

    async def chat_report(self, who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await self._broker.desk.report(
            who,
            p.ident(data, "session_id"),
            p.integer(data, "seq", 1, 2**31 - 1) if data.get("seq") is not None else None,
            p.text(data, "note", required=False, max_len=REPORT_NOTE_MAX_CHARS) or "",
        )

    async def booked_join(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return await self._broker.join_booked(
            who, p.ident(data, "session_id"),
            p.integer(data, "after_seq", 0, 2**31 - 1) if "after_seq" in data else 0,
        )

    async def session_outcome(self, who: Identity, data: dict[str, Any], sid: str) -> None:
        await self._broker.record_outcome(
            _tutor(who),
            p.ident(data, "session_id"),
            outcome=p.text(data, "outcome", required=False, max_len=32) or None,
            tutored_subject=p.text(data, "tutored_subject", required=False, max_len=64) or None,
            resolved=p.boolean(data, "resolved"),
            notes=_notes(data),
        )

    # -- staff events -------------------------------------------------------------------
    async def staff_live(
        self, who: Identity, data: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        return {"figures": await self._broker.live_figures(_staff_vendor(who))}


def _tutor(identity: Identity) -> Tutor:
    if identity.tutor is None:
        raise NotAllowed("tutors only")
    return identity.tutor


def _notes(data: dict[str, Any]) -> str | None:
    """A tutor's private notes on a session (optional; blank is none)."""
    return p.text(data, "notes", required=False, max_len=TUTOR_NOTES_MAX_CHARS).strip() or None


def _staff_vendor(identity: Identity) -> str | None:
    """The vendor a vendor manager is limited to ("" matches no queue); None: every vendor."""
    scope = identity.require_scope()
    return scope.vendor if scope.kind == "vendor" else None


def engineio_frame_guard(log_every_s: float = 10.0) -> Middleware:
    """Middleware: a malformed engine.io frame ends only its own connection and is logged as
    one line, at most once per ``log_every_s`` (with how many were not logged), instead of
    a traceback per frame. python-socketio's engine.io raises ``ValueError`` for frames it
    cannot decode, out of the websocket handler."""
    pace = LogPace(log_every_s)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/socket.io/"):
            return await handler(request)
        try:
            return await handler(request)
        except (ValueError, UnicodeDecodeError) as exc:
            if pace.due():
                log.warning(
                    "malformed engine.io frame from %s: %s (%d more since the last report)",
                    request.remote, exc, pace.skipped,
                )
            return web.Response(status=400, text="malformed frame")

    return guard
