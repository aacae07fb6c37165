"""How a serving process listens, admits new connections, and stops without any student
noticing.

:func:`serve` runs the app on its own aiohttp runner (not ``web.run_app``) so that the
order of a shutdown is ours.

Listening and admitting. The listen backlog is ``HH_LISTEN_BACKLOG`` (default
``LISTEN_BACKLOG``, capped at the kernel's ``net.core.somaxconn``; aiohttp's default is
128). New socket.io connections start through a :class:`Gate`: at most
``ADMIT_CONCURRENCY`` at a time, first come first served, so that under a storm each
finishes in well under the 30 s a page waits, instead of thousands sharing the core and
the database pool until all time out and retry. A connection whose client left while it
waited (in the kernel's queue or at the gate) is dropped before any work (:class:`Admitted`).
Measured (bench/peak.py, 18,000 widgets arriving at 4,000/s at one process): before, 17,945
connected after 103 s with 14,421 failed attempts and 208,051 listen-queue overflows; see
bench/RESULTS.md for the figures now.

Stopping, on SIGTERM or SIGINT (:class:`Shutdown`), every step bounded in time:

1. ``listen``: the listening socket is closed (new connections go to the other processes;
   a load balancer's health check fails) and the gate refuses what was already accepted
   (503, ``Retry-After``);
2. ``notify``: every socket.io client of *this* process is sent ``server:restart
   {retry_after_ms}`` on its namespace, straight to its engine.io socket (nothing through
   the Redis manager: 18,000 local sends, not 18,000 published messages); the delays are
   spread (:func:`restart_delays`) so that the clients reach the other processes at about
   ``RECONNECT_RATE`` a second, not all at once;
3. ``drain``: the clients leave by themselves (the pages disconnect on the notice);
4. ``handlers``: socket.io event handlers still running finish (their acks go out);
5. ``close``: whatever is still connected (old pages, lost clients) is closed;
6. ``cleanup``: the app's cleanup contexts stop the broker (its database writer writes
   what it holds) and dispose of the database engine; then the process exits at once.

A watchdog thread ends the process ``SHUTDOWN_DEADLINE_S`` after the signal whatever is
still running; a second signal ends it at once. Before (``web.run_app``), a SIGTERM with
18,000 connected clients took more than 120 s: python-socketio's manager scans every room
on each disconnect (see :func:`index_rooms`) and aiohttp waited 60 s for the websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import socketio
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from broker.constants import LISTEN_BACKLOG
from broker.errors import ConfigError
from web.sio_rooms import index_rooms

log = logging.getLogger(__name__)

RESTART_EVENT = "server:restart"
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

# A shutdown's budget, in seconds; the sum stays well inside SHUTDOWN_DEADLINE_S.
NOTIFY_S = 2.0  # sending server:restart to every client
DRAIN_S = 1.5  # clients leaving by themselves
DRAIN_QUIET_S = 0.4  # ... unless none has left for this long


def drain_limits(env: Mapping[str, str] = os.environ) -> tuple[float, float]:
    """(drain, quiet) seconds: ``HH_SHUTDOWN_DRAIN_S`` / ``HH_SHUTDOWN_DRAIN_QUIET_S`` for
    clients slower to leave than these defaults expect (the whole stop stays within its
    deadline either way)."""
    def read(name: str, default: float) -> float:
        try:
            return max(0.0, float(env.get(name, default)))
        except ValueError:
            return default

    return read("HH_SHUTDOWN_DRAIN_S", DRAIN_S), read("HH_SHUTDOWN_DRAIN_QUIET_S", DRAIN_QUIET_S)
CLOSE_S = 1.0  # the server closing the rest (the handlers' ends it waits for)
HANDLERS_S = 1.5  # event handlers still running
SERVER_SHUTDOWN_S = 1.0  # aiohttp (without hard_exit): connections still open after that
SHUTDOWN_DEADLINE_S = 9.5  # the watchdog: the process is gone by then whatever happens
CLEANUP_S = 2.5  # kept for the app's cleanup contexts, whatever the steps before took

# New connections being started at once (see Gate), and how long one may hold its place.
# 32 rather than 64 or 128: the rolling restart's second move finished sooner, the storm
# no later (bench/RESULTS.md, "Peak and restarts").
ADMIT_CONCURRENCY = 32
ADMIT_HOLD_S = 5.0
# A handshake request older than this (kernel queue and gate) is answered 503 rather than
# started: a page gives up an attempt after 30 s (common.js CONNECT_TIMEOUT_MS), and under
# a storm the rest of a start can take seconds (bench/RESULTS.md).
ADMIT_MAX_AGE_S = 20.0

# server:restart delays: uniform over [RETRY_MIN_MS, RETRY_MIN_MS + spread], the spread
# long enough that this process's clients reach the others at about RECONNECT_RATE a
# second, and never shorter than RETRY_SPREAD_MIN_MS nor longer than RETRY_SPREAD_MAX_MS.
RETRY_MIN_MS = 200
RETRY_SPREAD_MIN_MS = 2800
RETRY_SPREAD_MAX_MS = 20000
RETRY_STEP_MS = 50  # delays are multiples of this: one encoded packet serves many clients
RECONNECT_RATE = 600.0  # about what one process starts a second (bench/RESULTS.md)


def somaxconn(path: Path = SOMAXCONN) -> int | None:
    """The kernel's cap on any listen backlog, if this system says."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def listen_backlog(env: Mapping[str, str] | None = None, cap: int | None = None) -> int:
    """``HH_LISTEN_BACKLOG`` (default ``LISTEN_BACKLOG``), at most the kernel's cap."""
    env = os.environ if env is None else env
    raw = env.get("HH_LISTEN_BACKLOG", "")
    try:
        wanted = int(raw) if raw.strip() else LISTEN_BACKLOG
    except ValueError as exc:
        raise ConfigError(f"HH_LISTEN_BACKLOG must be an integer, got {raw!r}") from exc
    if wanted < 1:
        raise ConfigError(f"HH_LISTEN_BACKLOG must be at least 1, got {wanted}")
    cap = somaxconn() if cap is None else cap
    return min(wanted, cap) if cap else wanted


def raise_open_files() -> int:
    """Raise this process's soft limit of open files to the hard limit (one per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def local_clients(sio: socketio.AsyncServer) -> list[tuple[str, str, str]]:
    """``(namespace, sid, engine.io sid)`` of every client connected to this process."""
    manager = sio.manager
    return [
        (namespace, sid, eio_sid)
        for namespace in list(manager.get_namespaces())
        for sid, eio_sid in manager.get_participants(namespace, None)
    ]


async def tell_to_reconnect(
    sio: socketio.AsyncServer, counts: dict[str, int] | None = None
) -> int:
    """Send every client of *this* process ``server:restart {retry_after_ms}``, straight to
    its engine.io socket (nothing through the Redis manager, which may be what is down),
    the delays spread by :func:`restart_delays`; return how many were told (also kept in
    ``counts["notified"]`` as it goes, for a caller that may cut it short)."""
    from socketio import packet

    clients = local_clients(sio)
    encoded: dict[tuple[str, int], Any] = {}
    sent = 0
    for (namespace, _sid, eio_sid), delay in zip(
        clients, restart_delays(len(clients)), strict=True
    ):
        data = encoded.get((namespace, delay))
        if data is None:
            pkt = sio.packet_class(
                packet.EVENT,
                namespace=namespace,
                data=[RESTART_EVENT, {"retry_after_ms": delay}],
            )
            data = encoded[(namespace, delay)] = pkt.encode()
        # Queued, not yet written: this loop does not yield (~20 us a client), so every
        # client is told before the departures of the first ones compete with it; the
        # writers send while the clients drain.
        with contextlib.suppress(Exception):  # a client that left meanwhile
            await sio.eio.send(eio_sid, data)
            sent += 1
            if counts is not None:
                counts["notified"] = sent
    return sent


def restart_delays(n: int, rng: random.Random | None = None) -> Iterable[int]:
    """``n`` jittered ``retry_after_ms`` values (see RETRY_* above)."""
    rng = rng or random.Random()
    spread = min(RETRY_SPREAD_MAX_MS, max(RETRY_SPREAD_MIN_MS, 1000.0 * n / RECONNECT_RATE))
    steps = int(spread // RETRY_STEP_MS) + 1
    for _ in range(n):
        yield RETRY_MIN_MS + RETRY_STEP_MS * int(rng.random() * steps)


@dataclass
class Shutdown:
    """A process's graceful stop: what :func:`serve` runs after the first signal."""

    app: web.Application
    runner: web.AppRunner
    sio: socketio.AsyncServer
    gate: Gate
    hard_exit: bool = False
    steps: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    current: str = ""  # the step under way, for the watchdog's message
    drain_quiet_s: float = DRAIN_QUIET_S

    async def run(self) -> None:
        # Nothing started now outlives the process: a full collection over every
        # connection's objects (seconds, with 18,000 of them) would only delay the exit;
        # the pacer's collections stop with it (web.gc_tuning.Pacer).
        gc.disable()
        started = time.monotonic()
        # The steps before the cleanup share what the watchdog leaves after CLEANUP_S: on
        # a starved core they get less than their own limits, and the cleanup (the
        # database writer's last batch) still runs.
        budget_end = started + SHUTDOWN_DEADLINE_S - CLEANUP_S

        def within(limit: float) -> float:
            return min(limit, budget_end - time.monotonic())

        index_rooms(self.sio.manager)
        connected = self.open_sockets()
        await self._step("listen", self.stop_listening())
        await self._step("notify", self.notify(), within(NOTIFY_S))
        drain_s, self.drain_quiet_s = drain_limits()
        await self._step("drain", self.drain(within(drain_s)))
        await self._step("handlers", self.handlers(within(HANDLERS_S)))
        self.counts["left"] = connected - self.open_sockets()
        await self._step("close", self.close_rest(within(CLOSE_S)))
        await self._step("cleanup", self.cleanup())
        self.steps["total"] = time.monotonic() - started
        log.info(
            "stopped in %.2f s: told %d clients to reconnect elsewhere, %d left by themselves, "
            "%d closed by the server, %d handlers awaited; since the start, %d connections "
            "shed at accept, %d at the gate, %d refused as too old (%s)",
            self.steps["total"],
            self.counts.get("notified", 0),
            self.counts.get("left", 0),
            self.counts.get("closed", 0),
            self.counts.get("handlers", 0),
            Admitted.shed,
            self.gate.abandoned,
            self.gate.too_old,
            ", ".join(f"{k} {v:.2f}s" for k, v in self.steps.items() if k != "total"),
        )

    async def _step(
        self, name: str, work: Coroutine[Any, Any, None], limit: float | None = None
    ) -> None:
        self.current = name
        t = time.monotonic()
        try:
            if limit is None:
                await work
            elif limit <= 0:
                work.close()  # no time left for it
                log.warning("shutdown: no time left for %s; skipped", name)
            else:
                await asyncio.wait_for(work, limit)
        except TimeoutError:
            log.warning("shutdown: %s did not finish within %.1f s; going on", name, limit)
        except Exception:
            log.exception("shutdown: %s failed; going on", name)
        self.steps[name] = time.monotonic() - t

    async def stop_listening(self) -> None:
        """No new connections; and the access log is off from here: it writes a line per
        websocket that ends, and every client ends theirs now. Measured: 21 us a line
        written, 7.5 us with the logger disabled (aiohttp still formats it: a connection
        decides whether to log when it opens), so ~0.25 s of the core saved for 18,000
        departures; the summary counts them."""
        self.gate.accepting = False
        logging.getLogger("aiohttp.access").disabled = True
        for site in list(self.runner.sites):
            await site.stop()

    async def notify(self) -> None:
        await tell_to_reconnect(self.sio, self.counts)

    def open_sockets(self) -> int:
        """engine.io sockets still open (each leaves the table when its websocket ends)."""
        return len(self.sio.eio.sockets)

    async def drain(self, limit: float) -> None:
        """Until every client has left, none has left for the quiet time (those that
        remain are not following server:restart), or ``limit``."""
        last = self.open_sockets()
        deadline = time.monotonic() + limit
        quiet_since = time.monotonic()
        # engine.io's table has no event to wait on: look ten times a second
        while last and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            now = self.open_sockets()
            if now < last:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.drain_quiet_s:
                break
            last = now

    async def close_rest(self, limit: float) -> None:
        """Close every connection still open, all at once: old pages that ignore
        server:restart, lost ones. engine.io's ping monitor stops; each TCP connection is
        closed once what it has to send is written; its handler then ends by itself and
        socket.io runs the disconnect handlers (the access log is off since
        :meth:`stop_listening`)."""
        await self.sio.shutdown()
        server = self.runner.server
        if server is None:
            return
        self.counts["closed"] = self.open_sockets()
        for connection in server.connections:
            connection.force_close()
        # Give their handlers a moment to run socket.io's disconnect handlers.
        deadline = time.monotonic() + limit
        # aiohttp's table has no event to wait on: look twenty times a second
        while server.connections and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def cleanup(self) -> None:
        """The app's shutdown signal and cleanup contexts (the broker stops, its database
        writer writes what it holds). With ``hard_exit`` the process ends right after, so
        aiohttp's own wait for every connection's handler is skipped: the connections
        still closing are closed by the kernel at exit."""
        if self.hard_exit:
            await self.app.shutdown()
            await self.app.cleanup()
        else:
            await self.runner.cleanup()

    async def handlers(self, limit: float) -> None:
        """python-socketio runs each event's handler as a task and keeps it in its module's
        ``task_reference_holder`` until it is done: wait for those still running."""
        from socketio import async_server

        running = [t for t in async_server.task_reference_holder if not t.done()]
        self.counts["handlers"] = len(running)
        if running:
            await asyncio.wait(running, timeout=limit)


TCP_ESTABLISHED = 1


class Admitted(RequestHandler):  # type: ignore[misc]
    """aiohttp's connection handler, refusing at once a connection whose client already left.

    Under a storm the kernel's accept queue holds connections for seconds; a client that
    gave up meanwhile has closed its end, but its connection stays queued (CLOSE_WAIT) and
    would still cost a whole handshake (HTTP, websocket, engine.io) before a write fails.
    Such a connection is aborted here, for the price of one ``getsockopt``.
    """

    __slots__ = ()
    shed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if tcp_state(transport) not in (None, TCP_ESTABLISHED):
            Admitted.shed += 1
            cast(asyncio.Transport, transport).abort()  # connection_lost follows; no more
            return
        super().connection_made(transport)


def _tcp_info(transport: asyncio.BaseTransport, size: int) -> bytes | None:
    sock = transport.get_extra_info("socket")
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, size)
    except (AttributeError, OSError):
        return None
    return bytes(info) if len(info) >= size else None


def tcp_state(transport: asyncio.BaseTransport) -> int | None:
    """The kernel's TCP state of ``transport``'s socket (1: established), if it says."""
    info = _tcp_info(transport, 8)
    return None if info is None else info[0]


def request_age_s(transport: asyncio.BaseTransport) -> float | None:
    """Seconds since the client last sent anything (Linux ``tcpi_last_data_recv``): for a
    connection still waiting for its handshake's answer, how long it has been waiting."""
    info = _tcp_info(transport, 56)
    if info is None:
        return None
    return float(int.from_bytes(info[52:56], sys.byteorder)) / 1000.0


class ListenSite(web.TCPSite):
    """aiohttp's TCP site whose connections are :class:`Admitted` handlers."""

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None

        def admitted() -> RequestHandler:
            handler = server()
            handler.__class__ = Admitted  # same slots: a checking connection_made only
            return handler

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            admitted,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class Slot:
    """One new connection's place among those being started; released once."""

    __slots__ = ("gate", "timer")

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            ADMIT_HOLD_S, self.release
        )

    def release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.gate.slots.release()


class Gate:
    """Which new socket.io connections start now: first come, first served, at most
    ``limit`` at a time.

    Each new connection costs ~1.4 ms of the one core (HTTP, websocket, engine.io, the
    namespace's connect handler with its database read). Started all at once, thousands of
    them share the core and the database pool, each takes longer than the client waits
    (30 s), and the clients' retries double the work. Through the gate, a connection waits
    (in memory, having cost only its HTTP parse) until one of ``limit`` slots is free; its
    slot is given back once its namespace is connected, its websocket ends, or after
    ``ADMIT_HOLD_S``. A connection whose client left while waiting is dropped unstarted.
    While stopping, nothing new starts: the client gets 503 and goes elsewhere.
    """

    def __init__(self, limit: int = ADMIT_CONCURRENCY) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.accepting = True  # False from a shutdown's first step on
        self.handing_over = False  # while this process hands its clients over (hand_over.py)
        self.waiting = 0
        self.abandoned = 0
        self.too_old = 0

    @property
    def open(self) -> bool:
        """New connections are started (not stopping, not handing over)."""
        return self.accepting and not self.handing_over

    async def enter(self, request: web.Request) -> Slot | None:
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        transport = request.transport
        if (
            not self.open
            or transport is None
            or transport.is_closing()
            or tcp_state(transport) not in (None, TCP_ESTABLISHED)
        ):
            self.slots.release()
            self.abandoned += 1
            return None
        age = request_age_s(transport)
        if age is not None and age > ADMIT_MAX_AGE_S:
            # Waited so long (in the kernel's queue and here) that its client will give up
            # before the handshake ends: 503 now, and the client comes back after backoff.
            self.slots.release()
            self.too_old += 1
            return None
        slot = Slot(self)
        request[SLOT] = slot
        return slot

    def watch(self, manager: Any) -> None:
        """Give a connection's slot back when socket.io has connected its namespace:
        wraps ``manager.connect`` on this instance (socket.io calls it once the app's
        connect handler has accepted the client)."""
        connect = manager.connect

        async def connected(sid: str, namespace: str) -> Any:
            result = await connect(sid, namespace)
            environ = manager.server.environ.get(manager.eio_sid_from_sid(sid, namespace))
            request = environ.get("aiohttp.request") if environ else None
            slot = request.get(SLOT) if request is not None else None
            if slot is not None:
                slot.release()
            return result

        manager.connect = connected


@web.middleware
async def admission(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """New socket.io connections pass the :class:`Gate`; while stopping or handing its
    clients over, ``/healthz`` answers 503 (a load balancer's check on a kept-alive
    connection stops sending clients here) and new socket.io connections are refused
    (503, ``Retry-After``); anything else goes straight on."""
    gate = request.app.get(GATE)
    if gate is None:
        return await handler(request)
    if request.path == "/healthz" and not gate.open:
        why = "stopping" if not gate.accepting else "handing_over"
        return web.json_response({"ok": False, why: True}, status=503)
    if not request.path.startswith("/socket.io"):
        return await handler(request)
    if not gate.open:
        return restarting()
    slot = await gate.enter(request)
    if slot is None:
        return restarting()
    try:
        return await handler(request)
    finally:
        slot.release()


def install_gate(app: web.Application, sio: socketio.AsyncServer) -> Gate:
    """Put new connections of ``app`` (not yet started) through a :class:`Gate` of its
    own: the :func:`admission` middleware, and slots given back as ``sio`` connects."""
    gate = app[GATE] = Gate()
    gate.watch(sio.manager)
    app.middlewares.append(admission)
    return gate


def restarting() -> web.Response:
    return web.Response(status=503, headers={"Retry-After": "1"}, text="try another server")


GATE: web.AppKey[Gate] = web.AppKey("gate", Gate)
SLOT: web.RequestKey[Slot] = web.RequestKey("slot", Slot)


def _watchdog(deadline_s: float, shutdown: Shutdown) -> threading.Timer:
    def expire() -> None:
        log.error(
            "shutdown still running after %.1f s (at %s; done: %s): exiting now",
            deadline_s,
            shutdown.current,
            ", ".join(f"{k} {v:.2f}s" for k, v in shutdown.steps.items()),
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True
    timer.start()
    return timer


async def serve(
    app: web.Application,
    sio: socketio.AsyncServer,
    host: str,
    port: int,
    *,
    backlog: int | None = None,
    on_listening: Callable[[str], None] | None = None,
    hard_exit: bool = True,
) -> None:
    """Run ``app`` until SIGTERM or SIGINT, then stop gracefully (see the module's doc).

    With ``hard_exit`` (the ``serve`` command) the process ends right after the shutdown
    (status 0) instead of returning."""
    raise_open_files()
    backlog = listen_backlog() if backlog is None else backlog
    gate = install_gate(app, sio)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SERVER_SHUTDOWN_S)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("%s again: exiting now", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(1)
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    shutdown = Shutdown(app, runner, sio, gate, hard_exit)
    try:
        await runner.setup()
        site = ListenSite(runner, host, port, backlog=backlog)
        await site.start()
        log.info("listening on %s (backlog %d)", site.name, backlog)
        if on_listening is not None:
            on_listening(site.name)
        await stop.wait()
        _watchdog(SHUTDOWN_DEADLINE_S, shutdown)  # armed until the process is gone
        await shutdown.run()
        if hard_exit:
            # The app's cleanup contexts have run (the database writer has written what it
            # held, the engine is disposed). What is left is per-connection objects and
            # timers by the thousand, whose teardown by asyncio.run and the interpreter's
            # final collection take seconds with 18,000 clients: skip them.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    finally:
        for signum in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        if runner.server is not None:  # a failed start-up: clean up what started
            await runner.cleanup()
        sys.stdout.flush()
