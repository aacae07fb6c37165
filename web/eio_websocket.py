"""engine.io's websocket transport with one idle timer per connection, not two per frame.

python-engineio (4.x) serves a websocket with two loops: a reader that, for every frame,
starts a task around ``ws.wait()`` and awaits it under ``asyncio.wait_for``, and a writer
that awaits every outgoing packet as ``wait_for(queue.get(), timeout)``, which wraps the
``get`` in a task of its own. Each frame in or out therefore costs a task, a future and a
timer handle created and cancelled; under the request benchmark that was ~11% of an
embedded server's samples (py-spy), for timeouts that fire only when a client has gone
silent for ``ping_interval + ping_timeout`` (45 s here).

:func:`serve_websocket` runs the same two loops with the same observable behaviour, and
:class:`IdleWatch` keeps the two timeouts with one timer handle per connection, re-armed
lazily from the times the loops last started to wait.

What is the same as upstream (python-engineio 4.15, ``AsyncSocket._websocket_handler``):

* A reader that has waited ``ping_interval + ping_timeout`` for a frame stops, as does a
  writer that has waited as long for a packet to send; the other loop then ends too
  (``None`` in the queue, or the socket closed), and the connection closes with
  ``transport close``. Time spent handling a frame or sending a packet is not counted, as
  upstream's timeouts wrap only the waits.
* Frames are handled one at a time, in order; packets are sent in the order queued, and a
  ``None`` in the queue ends the writer after the packets before it.
* Every ``queue.get`` is matched by ``queue.task_done`` (``close(wait=True)`` joins it).
* An oversized frame, a non-text frame, a cancelled reader and a failed send end the
  connection as upstream's do; a frame that cannot be decoded raises ``ValueError`` out of
  the handler as upstream's does (:func:`web.sio.engineio_frame_guard` logs it).

Connections upgraded from long-polling (not offered by this server, whose only transport
is websocket) are served by upstream's handler unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
from aiohttp.web import WebSocketResponse
from engineio import exceptions, packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

log = logging.getLogger(__name__)


class IdleWatch:
    """Cancels a loop that has been waiting longer than ``timeout_s``: the reader for a
    frame, the writer for a packet. One timer handle, moved on only when it fires.

    A loop marks the start and end of its wait (:meth:`reader_waits`, :meth:`writer_waits`
    with ``False`` when it has something); only a loop that is waiting can be cancelled,
    so handling a frame or writing to a slow client never is. :attr:`fired` names the
    loop the watch cancelled ("reader", "writer"), so that loop can tell the watch's
    cancellation from anyone else's."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float, reader: asyncio.Task[Any]
    ) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self.reader = reader
        self.writer: asyncio.Task[Any] | None = None
        self.fired: str | None = None
        now = loop.time()
        self._reader_since: float | None = now
        self._writer_since: float | None = now
        self._handle: asyncio.TimerHandle | None = loop.call_at(now + timeout_s, self._check)

    def reader_waits(self, waiting: bool) -> None:
        self._reader_since = self.loop.time() if waiting else None

    def writer_waits(self, waiting: bool) -> None:
        self._writer_since = self.loop.time() if waiting else None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        now = self.loop.time()
        if self._reader_since is not None and now - self._reader_since >= self.timeout_s:
            self.fired = "reader"
            self.reader.cancel()
            return
        writer = self.writer
        if (
            writer is not None
            and self._writer_since is not None
            and now - self._writer_since >= self.timeout_s
        ):
            self.fired = "writer"
            writer.cancel()
            return
        waits = [t for t in (self._reader_since, self._writer_since) if t is not None]
        self._handle = self.loop.call_at(min(waits, default=now) + self.timeout_s, self._check)


async def _next_packets(socket: AsyncSocket, watch: IdleWatch) -> list[packet.Packet] | None:
    """The packets queued for ``socket`` (waiting for the first), as upstream's ``poll``:
    ``[]`` once a ``None`` ends the queue, None when the watch cancelled the wait."""
    queue: asyncio.Queue[packet.Packet | None] = socket.queue
    try:
        first = queue.get_nowait()
    except asyncio.QueueEmpty:
        watch.writer_waits(True)
        try:
            first = await queue.get()
        except asyncio.CancelledError:
            return None  # upstream's poll turns a cancelled wait into QueueEmpty too
        finally:
            watch.writer_waits(False)
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while True:
        try:
            pkt = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        packets.append(pkt)
    return packets


async def serve_websocket(socket: AsyncSocket, ws: LeanWebSocket) -> None:
    """Serve a connection that opened on the websocket transport: upstream's
    ``_websocket_handler`` for that case, with :class:`IdleWatch` for its timeouts."""
    server = socket.server
    socket.connected = True
    socket.upgraded = True
    reader = asyncio.current_task()
    assert reader is not None
    watch = IdleWatch(
        asyncio.get_running_loop(), server.ping_interval + server.ping_timeout, reader
    )

    async def writer() -> None:
        while True:
            packets = await _next_packets(socket, watch)
            if not packets:  # closed, or waited too long
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except (Exception, asyncio.CancelledError):  # upstream: a bare except
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    watch.writer = writer_task
    try:
        while True:
            watch.reader_waits(True)
            try:
                data = await ws.wait()
            except asyncio.CancelledError:
                if watch.fired == "reader":
                    reader.uncancel()  # our timeout, not the task's owner's cancellation
                break
            except Exception:
                break
            finally:
                watch.reader_waits(False)
            if data is None:
                break
            if data and len(data) > server.max_http_buffer_size:
                break  # upstream: ValueError('packet is too large') in its wait, then stops
            pkt = packet.Packet(encoded_packet=data)
            try:
                await socket.receive(pkt)
            except exceptions.UnknownPacketError:  # pragma: no cover - as upstream
                pass
            except exceptions.SocketIsClosedError:  # pragma: no cover - as upstream
                log.debug("engine.io: receive on a closed socket")
                break
            except Exception:  # as upstream: log it and keep the connection
                log.exception("engine.io: unexpected error handling a frame")
    finally:
        watch.stop()
    await socket.queue.put(None)  # unlock the writer so it can exit
    await writer_task
    await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


class LeanWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket driver, serving new websocket connections with
    :func:`serve_websocket`, and sending without asking whether aiohttp's ``send_str`` is
    a coroutine function on every frame (it is)."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        socket = getattr(self.handler, "__self__", None)
        if not isinstance(socket, AsyncSocket) or socket.connected:
            upstream: WebSocketResponse = await super().__call__(environ)
            return upstream  # an upgrade from polling: upstream's handler
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size)
        await self._sock.prepare(request)
        self.environ = environ
        await serve_websocket(socket, self)
        return self._sock

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


class LeanEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, with :class:`LeanWebSocket` as its aiohttp websocket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.async_mode == "aiohttp":
            drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 - untyped upstream
            self._async = {**drivers, "websocket": LeanWebSocket}
