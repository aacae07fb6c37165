"""Raw engine.io v4 / socket.io v5 clients for ``bench.peak``, thousands per process.

``python -m bench._ws_load CONFIG.json RESULT.json`` holds one share of ``bench.peak``'s
connections against servers that are already running. A python-socketio ``AsyncClient``
costs a few tasks, an aiohttp session and ~100 KiB per connection; these clients are one
small object and one asyncio transport each: a minimal RFC 6455 client (handshake, text
frames; client frames masked with the all-zero key, which the RFC allows) speaking the
engine.io v4 and socket.io v5 text framing directly (``0{open}``, ``2``/``3`` ping/pong,
``40/ns,{auth}``, ``42/ns,id["event",data]``, ``43/ns,id[ack]``), so one process can hold
9,000 sockets (the machine allows 20,000 open files per process) and open them at
thousands a second.

Each client behaves like the pages' ``connect()`` (web/static/js/common.js): on
``server:restart {retry_after_ms}`` it disconnects once its calls under way are answered
(:data:`RESTART_ANSWERS_S` at most), waits ``retry_after_ms`` and connects to the *other*
server (the way a load balancer would send it elsewhere); when its connection
drops without warning (the server was killed) it reconnects to the other server after a
jittered exponential backoff (:data:`BACKOFF`, the same figures as the browser's). After
every reconnect it connects its namespace again with its token, and a chat participant
asks ``session:sync {session_id, after_seq}`` for what it missed, when the server knows
that event.

Each client keeps one source address for its life, from ``sources`` (loopback addresses
such as ``127.0.1.7``; every one of 127.0.0.0/8 is this machine's), as a pupil's browser
keeps its network's address: real clients come from many addresses. From 127.0.0.1 alone,
every socket of the run would draw on the one range of ephemeral ports (28,232 here), which
a rolling restart's second move overfills (18,500 connections being made while the ones
just closed wait out TIME_WAIT): the kernel then searched the range on every ``connect()``,
at ~110% of a core of system time in the load for 5 s of that move, taken from the server
under test (bench/RESULTS.md). It also slowed the load's own connects as the range filled,
so a storm meant to arrive at 4,000/s had its last ~3,900 clients arrive at ~1,000/s.
Without ``sources`` a client connects from the address the kernel picks (127.0.0.1).

Talking with the orchestrator over stdin/stdout (every wait bounded, a watchdog ends the
process after ``max_s`` whatever happens):

1. connects its idle students (``idle``) and its chat pairs (``chat``: a student requests
   help, its tutor accepts) at ``rate`` a second, then prints ``ready {json}``;
2. ``go T0``: from the monotonic instant T0 (CLOCK_MONOTONIC is system-wide), both sides of
   every chat send a message every 10-20 s (uniformly random);
3. ``status``: prints ``status {json}`` (connected, by port, down, ...) at any time;
   ``down PORT`` / ``up PORT``: that server is stopped / answers again (clients leaving or
   failing go to a server that is up, as behind a load balancer);
4. ``collect``: stops sending, waits for the last relays and syncs, writes RESULT.json and
   prints ``done``; ``stop`` closes every connection and exits.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench._load import raise_nofile
from broker import tokens

mono = time.monotonic

HANDSHAKE = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: 127.0.0.1:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)
ATTEMPT_TIMEOUT_S = 30.0  # the pages' `timeout` for one attempt (common.js CONNECT_TIMEOUT_MS)
ACK_TIMEOUT_S = 30.0
RESTART_ANSWERS_S = 1.0  # as the pages' RESTART_ANSWERS_MS (web/static/js/common.js)


@dataclass(frozen=True)
class Backoff:
    """socket.io-client's reconnection backoff (``reconnectionDelay``, ``...DelayMax``,
    ``randomizationFactor``); the browser's figures are in common.js's ``RECONNECT``."""

    delay_ms: float = 2000.0
    max_ms: float = 10000.0
    jitter: float = 0.9

    def delay_s(self, attempt: int) -> float:
        """engine.io-client's Backoff.duration(): base * 2**attempt, +- jitter, capped."""
        ms = self.delay_ms * 2**attempt
        rand = random.random()
        deviation = rand * self.jitter * ms
        ms = ms - deviation if int(rand * 10) & 1 == 0 else ms + deviation
        return min(ms, self.max_ms) / 1000.0


BACKOFF = Backoff()


def frame(text: str) -> bytes:
    """One masked (all-zero key) websocket text frame."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + data


CLOSE_FRAME = bytes((0x88, 0x82)) + b"\0\0\0\0" + (1000).to_bytes(2, "big")
PONG = frame("3")


class Wire(asyncio.Protocol):
    """One TCP connection of a :class:`Client`: handshake, then frames to engine.io text."""

    __slots__ = ("buf", "client", "open", "transport")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False

    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport
        transport.write(HANDSHAKE.format(port=self.client.port).encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            del buf[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self.client.attempt_failed(self, f"http {status[9:12].decode(errors='replace')}")
                return
            self.open = True
        while len(buf) >= 2:
            b1 = buf[1]
            n = b1 & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                pos = 10
            if b1 & 0x80:  # a server never masks; skip a key if one came anyway
                pos += 4
            if len(buf) < pos + n:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[pos : pos + n])
            del buf[: pos + n]
            if opcode == 1:
                self.client.on_eio(self, payload.decode())
            elif opcode == 8:
                self.client.closed_by_server(self)
                return
            elif opcode == 9 and self.transport is not None:
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)

    def send(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(text))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self.open:
                self.transport.write(CLOSE_FRAME)
            self.transport.close()


@dataclass
class Outage:
    """One client's time away: from losing its connection to its namespace connected again."""

    cause: str  # "restart" (server:restart), "drop" (connection lost), "initial"
    start: float
    end: float | None = None
    failed: int = 0  # attempts that failed on the way back


class Fleet:
    """Every client of this process, their counters, and the ports they may use."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.host: str = cfg.get("host", "127.0.0.1")
        self.sources: list[str] = list(cfg.get("sources", []))
        self.sourced = 0  # clients given a source address so far
        self.ports: list[int] = list(cfg["ports"])
        self.secret: str = cfg["secret"]
        self.backoff = Backoff(**cfg.get("backoff", {}))
        self.follow_restart: bool = cfg.get("follow_restart", True)
        self.clients: list[Client] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.failed_attempts = 0
        self.attempts = 0
        self.connect_errors: collections.Counter[str] = collections.Counter()
        self.restarts = 0  # server:restart received
        self.restart_waits = 0  # ... with calls under way, whose answers were awaited
        self.tasks: set[asyncio.Task[None]] = set()  # those waits
        self.retry_after_ms: list[int] = []
        self.sync_supported: bool | None = None
        self.down: set[int] = set()

    def next_source(self) -> tuple[str, int] | None:
        """A new client's ``local_addr``: the next of ``sources`` in turn (any port), or
        None (the kernel's choice) without them."""
        if not self.sources:
            return None
        self.sourced += 1
        return (self.sources[self.sourced % len(self.sources)], 0)

    def next_port(self, last: int) -> int:
        """Where a client goes after leaving or failing on ``last``: another server that is
        up, else any that is up, else ``last`` (what a load balancer whose health checks
        see a stopped server at once would do; the orchestrator says ``down``/``up``)."""
        up = [p for p in self.ports if p not in self.down]
        others = [p for p in up if p != last]
        if others:
            return random.choice(others)
        return up[0] if up else last


class Client:
    """One socket.io client (one namespace) that reconnects the way the pages do."""

    def __init__(
        self,
        fleet: Fleet,
        namespace: str,
        token: str,
        port: int,
        on_event: Callable[[Client, str, Any], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.namespace = namespace
        self.token = token
        self.port = port
        self.on_event = on_event
        self.wire: Wire | None = None
        self.connected = False  # the namespace is connected
        self.closing = False  # we are leaving for good
        self.outages: list[Outage] = [Outage("initial", mono())]
        self.attempt = 0  # consecutive failures since the last success
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.timer: asyncio.TimerHandle | None = None
        self.on_connected: Callable[[Client], None] | None = None
        self.connected_once = asyncio.get_running_loop().create_future()
        self.local_addr = fleet.next_source()  # for all its connections (module docstring)

    # -- connecting ---------------------------------------------------------------------
    def start(self, port: int | None = None) -> None:
        if self.closing:
            return
        if port is not None:
            self.port = port
        self.fleet.attempts += 1
        self.timer = None
        asyncio.get_running_loop().create_task(self._open(self.port))

    async def _open(self, port: int) -> None:
        wire = Wire(self)
        self.wire = wire
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: wire, self.fleet.host, port, local_addr=self.local_addr
                ),
                ATTEMPT_TIMEOUT_S,
            )
        except (TimeoutError, OSError) as exc:
            self.attempt_failed(wire, type(exc).__name__)
            return
        # The whole attempt (handshake, engine.io open, namespace connect) has a deadline.
        loop.call_later(ATTEMPT_TIMEOUT_S, self._attempt_deadline, wire)

    def _attempt_deadline(self, wire: Wire) -> None:
        if wire is self.wire and not self.connected and not self.closing:
            self.attempt_failed(wire, "timeout")

    def attempt_failed(self, wire: Wire, why: str) -> None:
        if wire is not self.wire or self.closing:
            return
        self.wire = None
        wire.close()
        self.fleet.failed_attempts += 1
        self.fleet.connect_errors[why] += 1
        self.outages[-1].failed += 1
        delay = self.fleet.backoff.delay_s(self.attempt)
        self.attempt += 1
        self._later(delay)

    def _later(self, delay: float) -> None:
        """Try again after ``delay``, on the server :meth:`Fleet.next_port` picks then."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self._again)

    def _again(self) -> None:
        self.start(self.fleet.next_port(self.port))

    # -- frames ---------------------------------------------------------------------------
    def on_eio(self, wire: Wire, text: str) -> None:
        if wire is not self.wire:
            return
        kind = text[:1]
        if kind == "2":
            if wire.transport is not None:
                wire.transport.write(PONG)
        elif kind == "4":
            self._on_sio(wire, text[1:])
        elif kind == "0":
            auth = orjson.dumps({"token": self.token}).decode()
            wire.send(f"40{self.namespace},{auth}")
        elif kind == "1":
            self.closed_by_server(wire)

    def _on_sio(self, wire: Wire, text: str) -> None:
        kind = text[:1]
        rest = text[1:]
        if rest.startswith("/"):
            comma = rest.find(",")
            rest = rest[comma + 1 :] if comma >= 0 else ""
        if kind == "2":
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            event, *args = orjson.loads(rest[i:])
            self.fleet.events[event] += 1
            data = args[0] if args else None
            if event == "server:restart":
                self._restart(data)
            elif self.on_event is not None:
                self.on_event(self, event, data)
        elif kind == "3":
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            fut = self.acks.pop(int(rest[:i]), None)
            if fut is not None and not fut.done():
                args = orjson.loads(rest[i:])
                fut.set_result(args[0] if args else None)
        elif kind == "0":
            self.connected = True
            self.attempt = 0
            out = self.outages[-1]
            if out.end is None:
                out.end = mono()
            if not self.connected_once.done():
                self.connected_once.set_result(None)
            if self.on_connected is not None:
                self.on_connected(self)
        elif kind == "4":
            self.fleet.connect_errors[f"connect_error {rest[:80]}"] += 1
            self.attempt_failed(wire, "connect_error")
        elif kind == "1":  # the server disconnected the namespace: reconnect like a drop
            self.closed_by_server(wire)

    # -- leaving and coming back ----------------------------------------------------------
    def _restart(self, data: Any) -> None:
        """``server:restart``: leave once the calls under way are answered (at most
        :data:`RESTART_ANSWERS_S`), come back to the other server after the delay."""
        self.fleet.restarts += 1
        retry_ms = int((data or {}).get("retry_after_ms", 0))
        self.fleet.retry_after_ms.append(retry_ms)
        if not self.fleet.follow_restart:
            return
        wire = self.wire
        under_way = [fut for fut in self.acks.values() if not fut.done()]
        if not under_way:
            self._leave(wire, retry_ms)
            return
        self.fleet.restart_waits += 1

        async def answered_then_leave() -> None:
            await asyncio.wait(under_way, timeout=RESTART_ANSWERS_S)
            if self.wire is wire and not self.closing:  # not dropped meanwhile
                self._leave(wire, retry_ms)

        task = asyncio.ensure_future(answered_then_leave())
        self.fleet.tasks.add(task)
        task.add_done_callback(self.fleet.tasks.discard)

    def _leave(self, wire: Wire | None, retry_ms: int) -> None:
        self._down("restart")
        if wire is not None:
            wire.send(f"41{self.namespace},")
            wire.close()
        self._later(retry_ms / 1000.0)

    def closed_by_server(self, wire: Wire) -> None:
        if wire is self.wire:
            wire.close()

    def lost(self, wire: Wire) -> None:
        if wire is not self.wire or self.closing:
            return
        if not self.connected:  # lost during an attempt: a failed attempt
            self.attempt_failed(wire, "lost while connecting")
            return
        self._down("drop")
        delay = self.fleet.backoff.delay_s(self.attempt)
        self.attempt += 1
        self._later(delay)

    def _down(self, cause: str) -> None:
        self.wire = None
        self.connected = False
        self.outages.append(Outage(cause, mono()))
        for fut in self.acks.values():
            if not fut.done():
                fut.set_exception(ConnectionError("disconnected"))
        self.acks.clear()

    def close(self) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        if self.wire is not None:
            self.wire.close()

    # -- calls ----------------------------------------------------------------------------
    async def call(self, event: str, data: Any, within: float = ACK_TIMEOUT_S) -> Any:
        if not self.connected or self.wire is None:
            raise ConnectionError("not connected")
        self.next_id += 1
        ack_id = self.next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = fut
        body = orjson.dumps([event, data]).decode()
        self.wire.send(f"42{self.namespace},{ack_id}{body}")
        try:
            return await asyncio.wait_for(fut, within)
        finally:
            self.acks.pop(ack_id, None)


# -- chat ------------------------------------------------------------------------------------


@dataclass
class Pair:
    """One chat: a student and the tutor who accepted their request."""

    key: str
    student: Client
    tutor: Client
    session_id: str = ""
    # per side: message texts acknowledged, and what the other side received (by text)
    sent: dict[str, list[str]] | None = None
    got: dict[str, dict[str, int]] | None = None
    # per side: the highest sequence number below which it has seen every message (as the
    # pages keep it: a gap is filled by session:sync from there, not from the newest seen)
    last_seq: dict[str, int] | None = None
    ahead: dict[str, set[int]] | None = None
    # per side: the texts it got first from session:sync (a live copy arriving after is
    # the expected overlap of a reconnect, which the pages drop by id, not a duplicate)
    synced: dict[str, set[str]] | None = None

    def __post_init__(self) -> None:
        self.synced = {"student": set(), "tutor": set()}
        self.sent = {"student": [], "tutor": []}
        self.got = {"student": {}, "tutor": {}}
        self.last_seq = {"student": 0, "tutor": 0}
        self.ahead = {"student": set(), "tutor": set()}

    def saw(self, side: str, seq: int) -> None:
        """Count message ``seq`` as seen by ``side``; move the contiguous mark past it."""
        assert self.last_seq is not None and self.ahead is not None
        ahead = self.ahead[side]
        if seq > self.last_seq[side]:
            ahead.add(seq)
        while self.last_seq[side] + 1 in ahead:
            self.last_seq[side] += 1
            ahead.discard(self.last_seq[side])


class Load:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.fleet = Fleet(cfg)
        self.prefix: str = cfg.get("prefix", "peak")
        self.pairs: list[Pair] = []
        self.latencies: list[tuple[float, float]] = []  # (received at, send -> receive)
        self.sends: list[tuple[float, float]] = []  # (acked at, send -> ack)
        self.send_errors: collections.Counter[str] = collections.Counter()
        self.dupes = 0
        self.synced = 0  # messages recovered through session:sync
        self.overlaps = 0  # live copies of messages already recovered through session:sync
        self.sending = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.connect_started = 0.0
        self.connect_done = 0.0
        self.by_client: dict[int, list[Pair]] = {}

    def token(self, identity: tokens.Identity) -> str:
        return tokens.issue(self.fleet.secret, identity)

    def home(self, i: int) -> int:
        """The port a client starts on: spread over the servers, or all on the first."""
        ports = self.fleet.ports
        return ports[i % len(ports)] if self.cfg.get("spread", True) else ports[0]

    async def paced(self, clients: list[Client], rate: float) -> None:
        """Start ``clients`` at ``rate`` a second (in 10 ms slices)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        per_slice = max(1, round(rate / 100))
        for k in range(0, len(clients), per_slice):
            for client in clients[k : k + per_slice]:
                client.outages[0].start = mono()
                client.start()
            wait = t0 + (k + per_slice) / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def wait_connected(self, clients: list[Client], deadline_s: float) -> None:
        futs = [c.connected_once for c in clients if not c.connected_once.done()]
        if futs:
            await asyncio.wait(futs, timeout=deadline_s)

    # -- setup ----------------------------------------------------------------------------
    async def setup(self) -> dict[str, Any]:
        idle_cfg = self.cfg.get("idle", {})
        chat_cfg = self.cfg.get("chat", {})
        rate = float(self.cfg.get("rate", 1000))
        deadline = float(self.cfg.get("connect_deadline_s", 120))
        n_idle, offset = int(idle_cfg.get("count", 0)), int(idle_cfg.get("offset", 0))
        idle = []
        for i in range(offset, offset + n_idle):
            school, grade = ("elem", 3) if i % 2 == 0 else ("hs", 10)
            claims = {"school_id": school, "grade": grade, "groups": []}
            ident = tokens.Identity("student", f"{self.prefix}-w{i}", claims)
            idle.append(Client(self.fleet, "/student", self.token(ident), self.home(i)))
        self.fleet.clients += idle
        await asyncio.sleep(max(0.0, float(self.cfg.get("start_at", 0.0)) - mono()))
        self.connect_started = mono()
        await self.paced(idle, rate)
        await self.wait_connected(idle, deadline)
        self.connect_done = max((c.outages[0].end or 0.0) for c in idle) if idle else mono()
        pairs = int(chat_cfg.get("pairs", 0))
        if pairs:
            await self.setup_chats(pairs, int(chat_cfg.get("offset", 0)), chat_cfg, rate)
        return {
            "idle": n_idle,
            "idle_connected": sum(1 for c in idle if c.connected),
            "connect_s": self.connect_done - self.connect_started if idle else 0.0,
            "started_at": self.connect_started,
            "connected_at": sorted(c.outages[0].end for c in idle if c.outages[0].end),
            "pairs": sum(1 for p in self.pairs if p.session_id),
            "failed_attempts": self.fleet.failed_attempts,
            "connect_errors": dict(self.fleet.connect_errors),
        }

    async def setup_chats(
        self, n: int, offset: int, cfg: dict[str, Any], rate: float
    ) -> None:
        capacity = int(cfg.get("capacity", 2))
        n_tutors = -(-n // capacity)
        tutors: list[Client] = []
        for t in range(n_tutors):
            k = offset // capacity + t
            # students alternate elementary (paper) and high school (tutorcom): so do tutors
            vendor = "paper" if t % 2 == 0 else "tutorcom"
            ident = tokens.Identity(
                "tutor",
                f"{self.prefix}-t{k}",
                {"vendor": vendor, "languages": ["en"], "display_name": f"Tutor {k}"},
            )
            tutor = Client(self.fleet, "/tutor", self.token(ident), self.home(k + 1), self.on_chat)
            tutors.append(tutor)
        students: list[Client] = []
        for j in range(n):
            t = j // capacity
            school, grade = ("elem", 3) if t % 2 == 0 else ("hs", 10)
            ident = tokens.Identity(
                "student",
                f"{self.prefix}-c{offset + j}",
                {"school_id": school, "grade": grade, "groups": []},
            )
            student = Client(
                self.fleet, "/student", self.token(ident), self.home(offset + j), self.on_chat
            )
            students.append(student)
            self.pairs.append(Pair(f"{self.prefix}-c{offset + j}", student, tutors[t]))
        self.fleet.clients += tutors + students
        await self.paced(tutors + students, rate)
        await self.wait_connected(tutors + students, float(cfg.get("connect_deadline_s", 120)))
        for pair in self.pairs:
            self.by_client.setdefault(id(pair.student), []).append(pair)
            self.by_client.setdefault(id(pair.tutor), []).append(pair)

        async def open_session(pair: Pair) -> None:
            try:
                got = await pair.student.call("help:request", {"subject": "math", "language": "en"})
                if not got.get("ok"):
                    self.fleet.errors[f"help:request {got.get('error', {}).get('code')}"] += 1
                    return
                request_id = got["request"]["id"]
                got = await pair.tutor.call("help:accept", {"request_id": request_id})
                if not got.get("ok"):
                    self.fleet.errors[f"help:accept {got.get('error', {}).get('code')}"] += 1
                    return
                pair.session_id = got["session"]["session_id"]
            except Exception as exc:
                self.fleet.errors[f"setup {type(exc).__name__}"] += 1

        batch = int(cfg.get("batch", 50))
        for k in range(0, len(self.pairs), batch):
            await asyncio.gather(*(open_session(p) for p in self.pairs[k : k + batch]))
        for client in tutors + students:
            client.on_connected = self.resync

    def on_chat(self, client: Client, event: str, data: Any) -> None:
        if event != "chat:message" or not isinstance(data, dict):
            return
        now = mono()
        side = "tutor" if client.namespace == "/tutor" else "student"
        for pair in self.by_client.get(id(client), ()):
            if pair.session_id != data.get("session_id"):
                continue
            assert pair.got is not None and pair.last_seq is not None
            seq = int(data.get("seq") or 0)
            pair.saw(side, seq)
            if data.get("from") == side:
                return  # our own message, echoed
            text = str(data.get("text", ""))
            seen = pair.got[side]
            if text in seen:
                assert pair.synced is not None
                if text in pair.synced[side]:
                    self.overlaps += 1  # synced, then live: the page keeps one (by id)
                else:
                    self.dupes += 1  # the server sent it live twice
                return
            seen[text] = seq
            try:
                sent_at = float(text.split(" ", 2)[1])
            except (IndexError, ValueError):
                return
            self.latencies.append((now, now - sent_at))
            return

    def resync(self, client: Client) -> None:
        """After a reconnect: ask for what this side missed in each of its sessions."""
        if len(client.outages) < 2 or client.fleet.sync_supported is False:
            return
        for pair in self.by_client.get(id(client), ()):
            if pair.session_id:
                task = asyncio.get_running_loop().create_task(self._sync(client, pair))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _sync(self, client: Client, pair: Pair) -> None:
        side = "tutor" if client.namespace == "/tutor" else "student"
        assert pair.last_seq is not None and pair.got is not None
        try:
            got = await client.call(
                "session:sync",
                {"session_id": pair.session_id, "after_seq": pair.last_seq[side]},
                within=5.0,
            )
        except TimeoutError:
            # An unknown event is never acknowledged: this server has no session:sync.
            self.fleet.sync_supported = False
            return
        except ConnectionError:
            return
        if not isinstance(got, dict) or not got.get("ok"):
            self.fleet.errors[f"session:sync {got!r:.80}"] += 1
            return
        self.fleet.sync_supported = True
        for message in got.get("messages") or []:
            text = str(message.get("text", ""))
            pair.saw(side, int(message.get("seq") or 0))
            if message.get("from") != side and text not in pair.got[side]:
                assert pair.synced is not None
                pair.got[side][text] = int(message.get("seq") or 0)
                pair.synced[side].add(text)
                self.synced += 1

    # -- the timed part -------------------------------------------------------------------
    async def chat_loop(self, pair: Pair, side: str, lo: float, hi: float) -> None:
        client = pair.student if side == "student" else pair.tutor
        assert pair.sent is not None
        n = 0
        await asyncio.sleep(random.uniform(0, hi))  # spread the first messages
        while self.sending:
            n += 1
            sent_at = mono()
            text = f"{pair.key}:{side}:{n} {sent_at:.6f}"
            try:
                got = await client.call(
                    "chat:send", {"session_id": pair.session_id, "text": text}, within=15.0
                )
                if got.get("ok"):
                    pair.sent[side].append(text)
                    self.sends.append((mono(), mono() - sent_at))
                else:
                    self.send_errors[str(got.get("error", {}).get("code"))] += 1
            except ConnectionError:
                self.send_errors["disconnected"] += 1
            except TimeoutError:
                self.send_errors["timeout"] += 1
            await asyncio.sleep(random.uniform(lo, hi))

    def go(self) -> None:
        self.sending = True
        lo, hi = self.cfg.get("chat", {}).get("interval", [10.0, 20.0])
        for pair in self.pairs:
            if pair.session_id:
                for side in ("student", "tutor"):
                    task = asyncio.get_running_loop().create_task(
                        self.chat_loop(pair, side, float(lo), float(hi))
                    )
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

    def status(self) -> dict[str, Any]:
        by_port: collections.Counter[int] = collections.Counter()
        for c in self.fleet.clients:
            if c.connected:
                by_port[c.port] += 1
        clients = self.fleet.clients
        return {
            "clients": len(clients),
            "connected": sum(1 for c in clients if c.connected),
            "by_port": {str(k): v for k, v in by_port.items()},
            "restarts": self.fleet.restarts,
            "failed_attempts": self.fleet.failed_attempts,
            "at": mono(),
        }

    async def collect(self) -> dict[str, Any]:
        self.sending = False
        await asyncio.sleep(float(self.cfg.get("settle_s", 3.0)))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)
        # A last session:sync by every participant still connected: what it has not got by
        # then, after being acknowledged to the sender, is lost.
        if self.fleet.sync_supported:
            finals = [
                self._sync(client, pair)
                for pair in self.pairs
                if pair.session_id
                for client in (pair.student, pair.tutor)
                if client.connected
            ]
            for k in range(0, len(finals), 200):
                await asyncio.gather(*finals[k : k + 200], return_exceptions=True)
        lost = 0
        away = 0  # not received because the receiver was not connected at the end
        delivered = 0
        acked = 0
        for pair in self.pairs:
            assert pair.sent is not None and pair.got is not None
            for side, other in (("student", "tutor"), ("tutor", "student")):
                receiver = pair.tutor if other == "tutor" else pair.student
                for text in pair.sent[side]:
                    acked += 1
                    if text in pair.got[other]:
                        delivered += 1
                    elif receiver.connected:
                        lost += 1
                    else:
                        away += 1
        outages = [
            {
                "cause": o.cause,
                "start": o.start,
                "end": o.end,
                "failed": o.failed,
            }
            for c in self.fleet.clients
            for o in c.outages
        ]
        return {
            "status": self.status(),
            "outages": outages,
            "latencies": self.latencies,
            "sends": self.sends,
            "send_errors": dict(self.send_errors),
            "acked": acked,
            "delivered": delivered,
            "lost": lost,
            "away": away,
            "dupes": self.dupes,
            "synced": self.synced,
            "overlaps": self.overlaps,
            "sync_supported": self.fleet.sync_supported,
            "retry_after_ms": self.fleet.retry_after_ms,
            "restart_waits": self.fleet.restart_waits,
            "attempts": self.fleet.attempts,
            "failed_attempts": self.fleet.failed_attempts,
            "connect_errors": dict(self.fleet.connect_errors),
            "errors": dict(self.fleet.errors),
            "events": dict(self.fleet.events),
        }

    def close(self) -> None:
        for c in self.fleet.clients:
            c.close()


async def _readline() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


def _say(word: str, data: Any = None) -> None:
    suffix = "" if data is None else " " + json.dumps(data)
    print(word + suffix, flush=True)


async def main_async(cfg: dict[str, Any], result_path: str) -> None:
    load = Load(cfg)
    try:
        ready = await asyncio.wait_for(load.setup(), float(cfg.get("setup_s", 600)))
        _say("ready", ready)
        while True:
            line = await _readline()
            if not line or line == "stop":
                return
            if line.startswith("go"):
                t0 = float(line.split()[1]) if " " in line else mono()
                await asyncio.sleep(max(0.0, t0 - mono()))
                load.go()
                _say("going")
            elif line == "status":
                _say("status", load.status())
            elif line.startswith(("down ", "up ")):
                word, port = line.split()
                (load.fleet.down.add if word == "down" else load.fleet.down.discard)(int(port))
                _say(word)
            elif line == "collect":
                result = await load.collect()
                await asyncio.to_thread(
                    Path(result_path).write_text, json.dumps(result), "utf-8"
                )
                _say("done")
    finally:
        load.close()
        await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg_path, result_path = argv
    cfg = json.loads(Path(cfg_path).read_text("utf-8"))
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(float(cfg.get("max_s", 900)), os._exit, 3)
        parent = os.getppid()

        def orphaned() -> None:  # the orchestrator is gone: so are we
            if os.getppid() != parent:
                os._exit(4)
            loop.call_later(1.0, orphaned)

        orphaned()
        await main_async(cfg, result_path)

    asyncio.run(guarded())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
