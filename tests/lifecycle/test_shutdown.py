"""``homework-help serve`` stops the way a deploy needs (web/lifecycle.py).

A real ``serve`` subprocess with a few hundred connected socket.io clients receives SIGTERM:
it closes its listening socket first, then tells every client ``server:restart`` with a
jittered ``retry_after_ms``, answers what is already in flight, closes the clients that did
not leave, and exits with status 0 well inside 10 s. The deadlines here are the
requirement itself (10 s), several times what the steps take, never a race.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from asyncio.subprocess import PIPE
from typing import Any

import aiohttp
import pytest

from tests.lifecycle.conftest import SIGNALS, connect_students
from web import lifecycle

EXIT_LIMIT_S = 10.0
CLIENTS = 300


async def test_sigterm_with_clients_tells_them_first_and_exits_within_10s(serve: Any) -> None:
    server = await serve()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        students = await connect_students(server.url, CLIENTS, http, server.port)
        # In flight when the signal comes: a request whose ack the server still owes.
        pending = asyncio.ensure_future(
            students[0].sio.call(
                "help:request", {"subject": "math", "language": "en"}, namespace="/student"
            )
        )
        await asyncio.sleep(0)
        exit_s = await server.signal_and_wait(signal.SIGTERM, within=30)
        ack = await asyncio.wait_for(pending, 10)
        await asyncio.sleep(0.5)  # the last disconnect callbacks
        for s in students:
            await s.sio.disconnect()

    assert server.proc.returncode == 0, server.log()
    assert exit_s < EXIT_LIMIT_S, f"exit took {exit_s:.1f}s:\n{server.log()}"
    assert ack["ok"], ack  # the handler under way finished and answered
    for s in students:
        # server:restart first, then the server's disconnect
        assert s.events[:2] == ["server:restart", "disconnect"], s.events
        assert s.restart is not None
        delay = s.restart["retry_after_ms"]
        assert lifecycle.RETRY_MIN_MS <= delay
        assert delay <= lifecycle.RETRY_MIN_MS + lifecycle.RETRY_SPREAD_MAX_MS
        # when it arrived, the process was no longer accepting connections
        assert s.probe == "refused", s.probe
    delays = {s.restart["retry_after_ms"] for s in students if s.restart}
    # spread over the clients: most of the 50 ms steps of the window are used
    assert len(delays) > lifecycle.RETRY_SPREAD_MIN_MS // lifecycle.RETRY_STEP_MS // 2
    assert max(delays) - min(delays) >= lifecycle.RETRY_SPREAD_MIN_MS // 2
    summary = re.search(r"told (\d+) clients to reconnect elsewhere", server.log())
    assert summary is not None and int(summary.group(1)) == CLIENTS, server.log()


async def test_clients_that_leave_on_restart_let_the_process_exit_sooner(serve: Any) -> None:
    # A busy machine can delay the first client's leaving past the 0.4 s quiet time; the
    # clients here all leave, so a longer quiet time ends as soon as they have, and the
    # test does not depend on how loaded the machine is.
    server = await serve(HH_SHUTDOWN_DRAIN_S="8", HH_SHUTDOWN_DRAIN_QUIET_S="5")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        students = await connect_students(server.url, CLIENTS, http, server.port, leave=True)
        exit_s = await server.signal_and_wait(signal.SIGTERM, within=30)
    assert server.proc.returncode == 0, server.log()
    assert exit_s < EXIT_LIMIT_S
    assert all(s.restart is not None for s in students)
    left = re.search(r"(\d+) left by themselves, (\d+) closed by the server", server.log())
    assert left is not None, server.log()
    assert int(left.group(1)) + int(left.group(2)) == CLIENTS
    assert int(left.group(1)) > 0


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
async def test_an_idle_server_stops_promptly(serve: Any, name: str) -> None:
    """``make run`` then Ctrl-C (SIGINT): the newcomer gets their prompt back at once."""
    server = await serve()
    exit_s = await server.signal_and_wait(SIGNALS[name], within=30)
    assert server.proc.returncode == 0, server.log()
    assert exit_s < 5.0, server.log()
    assert f"{name}: stopping" in server.log()


async def test_listen_backlog_is_applied(serve: Any) -> None:
    cap = lifecycle.somaxconn()
    wanted = 1000 if cap is None or cap >= 1000 else cap
    server = await serve(HH_LISTEN_BACKLOG=str(wanted))
    # For a listening socket, ss shows the backlog the kernel uses as Send-Q.
    proc = await asyncio.create_subprocess_exec(
        "ss", "-Hltn", f"sport = :{server.port}", stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 10)
    if proc.returncode != 0:
        pytest.skip(f"ss failed: {stderr.decode()}")
    fields = stdout.decode().split()
    assert fields and fields[0] == "LISTEN", stdout
    assert int(fields[2]) == wanted
    assert f"(backlog {wanted})" in server.log()


async def test_default_backlog_is_the_constant_capped_by_the_kernel() -> None:
    assert lifecycle.listen_backlog({}, cap=4096) == min(4096, lifecycle.LISTEN_BACKLOG)
    assert lifecycle.listen_backlog({}, cap=128) == 128
    assert lifecycle.listen_backlog({"HH_LISTEN_BACKLOG": "512"}, cap=4096) == 512
    assert lifecycle.listen_backlog({"HH_LISTEN_BACKLOG": "9000"}, cap=4096) == 4096
    assert lifecycle.listen_backlog({"HH_LISTEN_BACKLOG": ""}, cap=None) == lifecycle.LISTEN_BACKLOG


@pytest.mark.parametrize("raw", ["lots", "0", "-5"])
async def test_a_bad_backlog_setting_is_refused(raw: str) -> None:
    from broker.errors import ConfigError

    with pytest.raises(ConfigError):
        lifecycle.listen_backlog({"HH_LISTEN_BACKLOG": raw}, cap=4096)


async def test_restart_delays_are_spread_and_bounded() -> None:
    import random

    rng = random.Random(7)
    few = list(lifecycle.restart_delays(100, rng))
    many = list(lifecycle.restart_delays(18_000, rng))
    for delays in (few, many):
        assert min(delays) >= lifecycle.RETRY_MIN_MS
        assert max(delays) <= lifecycle.RETRY_MIN_MS + lifecycle.RETRY_SPREAD_MAX_MS
    # a few clients: within about three seconds; 18,000: spread wide enough that the others
    # see them arrive at about RECONNECT_RATE a second, up to the longest spread
    assert max(few) <= lifecycle.RETRY_MIN_MS + lifecycle.RETRY_SPREAD_MIN_MS
    wanted = min(lifecycle.RETRY_SPREAD_MAX_MS, 18_000 / lifecycle.RECONNECT_RATE * 1000)
    assert max(many) - min(many) >= 0.9 * wanted


async def test_a_second_signal_ends_the_process_at_once(serve: Any) -> None:
    """Ctrl-C twice: a stuck shutdown never holds the terminal."""
    server = await serve()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        students = await connect_students(server.url, 20, http, server.port)
        t = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)  # inside the drain (clients that stay keep it busy)
        exit_s = await server.signal_and_wait(signal.SIGINT, within=30)
        for s in students:
            await s.sio.disconnect()
    assert server.proc.returncode == 1
    assert exit_s < 2.0
    assert time.monotonic() - t < 5.0
    assert "SIGINT again: exiting now" in server.log()


async def test_a_connection_whose_client_left_is_shed_at_accept() -> None:
    """A connection still queued in the kernel when its client gave up (CLOSE_WAIT) is
    aborted before aiohttp starts on it; a live one is handled."""
    import socket

    from aiohttp import web

    async def nothing(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    server = web.Server(nothing)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        for client_leaves, shed in ((True, 1), (False, 0)):
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
            if client_leaves:
                client.close()
                await asyncio.sleep(0.1)  # the FIN arrives: the server side is CLOSE_WAIT
            transport = FakeTransport(accepted)
            handler = server()
            handler.__class__ = lifecycle.Admitted
            before = lifecycle.Admitted.shed
            handler.connection_made(transport)  # type: ignore[arg-type]
            assert lifecycle.Admitted.shed - before == shed
            assert transport.aborted == bool(shed)
            assert (len(server.connections) == 0) == bool(shed)
            if not client_leaves:
                handler.connection_lost(None)
                client.close()
            accepted.close()
    finally:
        listener.close()


class FakeTransport:
    """Enough of an asyncio transport for RequestHandler.connection_made."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def write(self, data: bytes) -> None:
        pass


async def test_the_gate_refuses_a_handshake_that_waited_too_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request that has waited (in the kernel's queue) longer than ADMIT_MAX_AGE_S is
    answered 503 instead of started: its client would give up before it ends."""
    import socket

    from aiohttp.test_utils import make_mocked_request

    monkeypatch.setattr(lifecycle, "ADMIT_MAX_AGE_S", 0.2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        gate = lifecycle.Gate(limit=2)
        for wait, admitted in ((0.5, False), (0.0, True)):
            client = socket.create_connection(listener.getsockname())
            client.sendall(b"GET /socket.io/ HTTP/1.1\r\n\r\n")
            await asyncio.sleep(wait)
            accepted, _ = listener.accept()
            transport = FakeTransport(accepted)
            request = make_mocked_request("GET", "/socket.io/", transport=transport)
            slot = await gate.enter(request)
            assert (slot is not None) == admitted
            if slot is not None:
                slot.release()
            client.close()
            accepted.close()
        assert gate.too_old == 1
        assert gate.slots._value == 2  # every slot given back
    finally:
        listener.close()


async def test_while_stopping_healthz_fails_and_handshakes_go_elsewhere() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[lifecycle.admission])
    app.router.add_get("/healthz", ok)
    app.router.add_get("/socket.io/", ok)
    app.router.add_get("/other", ok)
    gate = lifecycle.Gate()
    app[lifecycle.GATE] = gate
    async with TestClient(TestServer(app)) as client:
        for path in ("/healthz", "/socket.io/", "/other"):
            assert (await client.get(path)).status == 200
        gate.accepting = False
        assert (await client.get("/healthz")).status == 503
        response = await client.get("/socket.io/")
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert (await client.get("/other")).status == 200
