"""A TCP link in front of a service (Redis here), which a test can cut or hold: the service
unreachable, or answering nothing, for whoever goes through the link while everyone else
reaches it as usual (a network partition of one process or one client).

:class:`Link` listens on a free port of 127.0.0.1 and forwards each connection to the
service, in the test's event loop (one hop of latency for whoever uses it):

* :meth:`Link.cut` resets every connection through it and refuses new ones (the listener
  closes: connection refused) until :meth:`Link.restore`.
* :meth:`Link.hold` forwards nothing in either direction, connections staying open and new
  ones accepted, until :meth:`Link.release`, which delivers what it held, in order (a
  black-holed route: TCP's retransmissions deliver it all once the route is back).
  ``Link(port, stall=True)`` holds from the start and never releases (a hung service).
* :attr:`Link.delay_s` adds that much latency each way to every byte (a distant or
  congested route), order kept; 0 by default.
* :meth:`Link.cut_for`, :meth:`Link.hold_for` and :meth:`Link.slow_for` do one of those
  for a number of seconds; :meth:`Link.fail_for` picks one by name (a test's parameter).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

CHUNK = 65536
SLOW_ROUTE_S = 0.02  # slow_for's default: 40 ms more a round trip (a distant route)
FAULTS = ("cut", "hold", "slow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Link:
    """``url`` for whoever goes through it; ``cut``/``hold`` for the fault."""

    def __init__(self, target_port: int, stall: bool = False, scheme: str = "redis") -> None:
        self.target_port = target_port
        self.port = _free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}/0"
        self.delay_s = 0.0
        self.flowing = asyncio.Event()
        if not stall:
            self.flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Link:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Read from ``src``; a second task writes each chunk to ``dst`` once it is due
        (read time + :attr:`delay_s`) and the link flows, so latency adds no throttling."""
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        writer = asyncio.ensure_future(self._deliver(chunks, dst))
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        with contextlib.suppress(Exception):
            while data := await src.read(CHUNK):
                chunks.put_nowait((time.monotonic() + self.delay_s, data))
        chunks.put_nowait(None)

    async def _deliver(
        self, chunks: asyncio.Queue[tuple[float, bytes] | None], dst: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(Exception):
            while (item := await chunks.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        dst.transport.abort()
        self._writers.discard(dst)

    async def cut(self) -> None:
        """Reset every connection through the link and refuse new ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        """Accept connections again after :meth:`cut`."""
        if self._server is None:
            await self.start()

    def hold(self) -> None:
        """Forward nothing (connections stay open, new ones are accepted)."""
        self.flowing.clear()

    def release(self) -> None:
        """Deliver what was held, in order, and forward again."""
        self.flowing.set()

    async def cut_for(self, seconds: float) -> None:
        await self.cut()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.restore()

    async def hold_for(self, seconds: float) -> None:
        self.hold()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.release()

    async def slow_for(self, seconds: float, delay_s: float = SLOW_ROUTE_S) -> None:
        self.delay_s = delay_s
        try:
            await asyncio.sleep(seconds)
        finally:
            self.delay_s = 0.0

    async def fail_for(self, how: str, seconds: float) -> None:
        """One of :data:`FAULTS` for ``seconds``: ``cut``, ``hold`` or ``slow``."""
        faults = {"cut": self.cut_for, "hold": self.hold_for, "slow": self.slow_for}
        await faults[how](seconds)

    async def close(self) -> None:
        self.release()
        await self.cut()
