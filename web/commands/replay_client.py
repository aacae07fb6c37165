"""A lean socket.io client for the replay's simulated people: one websocket, one namespace.

The replay opens a connection per request (about 107,000 in a year) and its tutors
receive every queue push of their queue; python-socketio's ``AsyncClient`` costs several
tasks per connection and decodes and dispatches every packet it receives, which was a
fifth of a replay's time. This client speaks the engine.io v4 / socket.io v5 text framing
the broker's server speaks (``0{open}``, ``2``/``3`` ping/pong, ``40/ns,{auth}``,
``42/ns,id[event,data]``, ``43/ns,id[ack]``, ``41/ns,`` to leave) over one aiohttp
websocket, answers pings, resolves acknowledgements, and drops the server's pushes
unread (a simulated person acts on the replay's own events, never on what it is told).

Guarantees: :meth:`LeanClient.call` returns the event's acknowledgement (its first
argument, as ``AsyncClient.call`` does) or raises :class:`TimeoutError` after
``within_s`` seconds, or :class:`ConnectionError` when the connection is refused or lost;
acknowledgements are matched by id, so calls may overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

PATH = "/socket.io/?EIO=4&transport=websocket"


class LeanClient:
    """One connection to ``url`` in ``namespace`` (``/student`` or ``/tutor``)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, namespace: str) -> None:
        self.http, self.url, self.namespace = http, url, namespace
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.reader: asyncio.Task[None] | None = None
        self.joined: asyncio.Future[Any] | None = None

    async def connect(self, auth: dict[str, Any], within_s: float = 10.0) -> None:
        """Open the websocket and join the namespace with ``auth``; raise
        :class:`ConnectionError` with the server's reason when it refuses."""
        self.ws = await self.http.ws_connect(self.url + PATH, autoping=True)
        opened = await asyncio.wait_for(self.ws.receive(), within_s)
        if opened.type != aiohttp.WSMsgType.TEXT or not str(opened.data).startswith("0"):
            await self.ws.close()
            raise ConnectionError("no engine.io open packet")
        self.joined = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())
        await self.ws.send_str(f"40{self.namespace},{json.dumps(auth)}")
        await asyncio.wait_for(self.joined, within_s)

    async def _read(self) -> None:
        assert self.ws is not None
        prefix_ack = f"43{self.namespace},"
        lost: BaseException = ConnectionError("connection closed")
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                text: str = msg.data
                if text == "2":
                    await self.ws.send_str("3")
                elif text.startswith(prefix_ack):
                    body = text[len(prefix_ack):]
                    split = body.index("[")
                    future = self.acks.pop(int(body[:split]), None)
                    if future is not None and not future.done():
                        args = json.loads(body[split:])
                        future.set_result(args[0] if len(args) == 1 else args)
                elif text.startswith(("40", "44")) and self.joined and not self.joined.done():
                    if text.startswith("44"):
                        self.joined.set_exception(ConnectionError(text.split(",", 1)[-1]))
                    else:
                        self.joined.set_result(None)
                # "42…" pushes and everything else: not read (see the module docstring)
        except Exception as exc:  # the connection broke: every waiting call learns it
            lost = ConnectionError(str(exc))
        finally:
            for future in [*self.acks.values(), self.joined]:
                if future is not None and not future.done():
                    future.set_exception(lost)
            self.acks.clear()

    async def call(self, event: str, data: Any, within_s: float = 30.0) -> Any:
        """Emit ``event`` with ``data`` and wait for its acknowledgement."""
        if self.ws is None or self.ws.closed:
            raise ConnectionError("not connected")
        self.next_id += 1
        ack_id = self.next_id
        future = self.acks[ack_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(f"42{self.namespace},{ack_id}{json.dumps([event, data])}")
        try:
            return await asyncio.wait_for(future, within_s)
        finally:
            self.acks.pop(ack_id, None)

    async def disconnect(self) -> None:
        """Leave the namespace and close the websocket (idempotent)."""
        ws, self.ws = self.ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_str(f"41{self.namespace},")
            await ws.close()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


__all__ = ["LeanClient"]
