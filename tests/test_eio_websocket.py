"""web.eio_websocket: engine.io's websocket loops with one idle timer per connection.

The watch is driven by a fake loop (its clock and its one timer moved by hand); the loops
by a real aiohttp server and raw websocket clients speaking engine.io v4 / socket.io v5."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from web.eio_websocket import IdleWatch, LeanEngineServer
from web.sio_guard import GuardedServer


class Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """A loop's clock and timers, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.handles: list[Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(when, callback)
        self.handles.append(handle)
        return handle

    def armed(self) -> list[Handle]:
        return [h for h in self.handles if not h.cancelled]

    def run_due(self, until: float) -> None:
        """Advance the clock to ``until``, firing each timer due by then (once)."""
        while True:
            due = [h for h in self.handles if not h.cancelled and h.when <= until]
            if not due:
                break
            handle = min(due, key=lambda h: h.when)
            self.handles.remove(handle)
            self.now = max(self.now, handle.when)
            handle.callback()
        self.now = until


class FakeTask:
    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> bool:
        self.cancels += 1
        return True


def watch_on(loop: FakeLoop, timeout: float = 45.0) -> tuple[IdleWatch, FakeTask, FakeTask]:
    reader, writer = FakeTask(), FakeTask()
    watch = IdleWatch(loop, timeout, reader)  # type: ignore[arg-type]
    watch.writer = writer  # type: ignore[assignment]
    return watch, reader, writer


def test_a_reader_waiting_past_the_timeout_is_cancelled_once() -> None:
    loop = FakeLoop()
    watch, reader, writer = watch_on(loop)
    watch.writer_waits(False)  # the writer is busy the whole time
    loop.run_due(144.9)
    assert reader.cancels == 0
    loop.run_due(145.0)
    assert (reader.cancels, writer.cancels, watch.fired) == (1, 0, "reader")
    loop.run_due(1000.0)
    assert reader.cancels == 1  # nothing re-armed after firing


def test_frames_keep_the_reader_alive_with_one_timer() -> None:
    loop = FakeLoop()
    watch, reader, writer = watch_on(loop)
    for t in range(101, 400, 3):  # a frame every 3 s: each wait starts afresh
        loop.run_due(float(t))
        watch.reader_waits(False)
        watch.reader_waits(True)
        watch.writer_waits(False)
        watch.writer_waits(True)
    assert reader.cancels == writer.cancels == 0
    assert len(loop.armed()) == 1
    assert len(loop.handles) <= 10  # re-armed when it fires, not on every frame


def test_a_busy_reader_is_never_cancelled() -> None:
    loop = FakeLoop()
    watch, reader, _ = watch_on(loop)
    watch.reader_waits(False)  # handling a frame (or a connect) for a long time
    watch.writer_waits(False)
    loop.run_due(500.0)
    assert reader.cancels == 0 and watch.fired is None
    watch.reader_waits(True)
    loop.run_due(544.0)
    assert reader.cancels == 0
    loop.run_due(546.0)
    assert reader.cancels == 1


def test_a_writer_waiting_past_the_timeout_is_cancelled() -> None:
    loop = FakeLoop()
    watch, reader, writer = watch_on(loop)
    for t in range(110, 200, 10):  # frames keep arriving, nothing to send
        loop.run_due(float(t))
        watch.reader_waits(False)
        watch.reader_waits(True)
    assert writer.cancels == 1 and reader.cancels == 0 and watch.fired == "writer"


def test_stop_disarms_the_timer() -> None:
    loop = FakeLoop()
    watch, reader, writer = watch_on(loop)
    watch.stop()
    loop.run_due(1000.0)
    assert reader.cancels == writer.cancels == 0


# -- the loops, served for real -------------------------------------------------------------


@pytest.fixture
async def served(
    unused_tcp_port: int,
) -> AsyncIterator[tuple[str, socketio.AsyncServer, list[str]]]:
    sio = GuardedServer(
        async_mode="aiohttp", transports=["websocket"], ping_interval=0.2, ping_timeout=0.3,
        logger=False, engineio_logger=False,
    )
    disconnects: list[str] = []

    @sio.on("echo")  # type: ignore[misc]
    async def echo(sid: str, data: Any) -> Any:
        return data

    @sio.on("quiet")  # type: ignore[misc]
    async def quiet(sid: str, data: Any) -> None:
        return None

    @sio.on("disconnect")  # type: ignore[misc]
    async def disconnect(sid: str, reason: Any = None) -> None:
        disconnects.append(str(reason))

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_tcp_port
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", sio, disconnects
    finally:
        await runner.cleanup()


async def _open(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url)
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0{")
    await ws.send_str("40")
    connected = await ws.receive_str(timeout=5)
    assert connected.startswith("40")
    return ws


async def test_the_server_is_lean() -> None:
    sio = GuardedServer(async_mode="aiohttp", transports=["websocket"])
    assert isinstance(sio.eio, LeanEngineServer)


async def test_a_burst_is_answered_in_order_and_pings_are_kept(
    served: tuple[str, socketio.AsyncServer, list[str]],
) -> None:
    url, _, disconnects = served
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, url)
        for i in range(200):
            await ws.send_str(f'42{i}["echo",{i}]')
        acks: list[int] = []
        pings = 0
        while len(acks) < 200:
            frame = await ws.receive_str(timeout=10)
            if frame == "2":
                pings += 1
                await ws.send_str("3")
                continue
            assert frame.startswith("43")
            acks.append(json.loads(frame[2:].split("[", 1)[1].rsplit("]", 1)[0]))
        assert acks == list(range(200))
        # Answering pings keeps the connection: wait for three more, answering each.
        while pings < 3:
            if await ws.receive_str(timeout=10) == "2":
                pings += 1
                await ws.send_str("3")
        await ws.close()
    for _ in range(100):
        if disconnects:
            break
        await asyncio.sleep(0.05)
    assert disconnects == ["transport close"]  # a websocket closed without a CLOSE packet


@pytest.mark.parametrize("chatty", [False, True], ids=["silent", "sends-but-never-pongs"])
async def test_a_client_that_stops_answering_pings_is_closed(
    served: tuple[str, socketio.AsyncServer, list[str]], chatty: bool,
) -> None:
    """Silent: the reader's wait times out. Chatty without pongs (events needing no
    answer): the reader is never idle, so the writer's wait (or the server's ping check)
    ends it. Either way the server closes it, as upstream's does."""
    url, sio, disconnects = served
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, url)
        closed = False
        for _ in range(200):  # up to ~20 s; closes within ~1 s
            if chatty:
                await ws.send_str('42["quiet",1]')
            try:
                msg = await ws.receive(timeout=0.1)
            except TimeoutError:
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                closed = True
                break
        assert closed
    for _ in range(100):
        if disconnects:
            break
        await asyncio.sleep(0.05)
    assert len(disconnects) == 1
    assert not sio.eio.sockets
