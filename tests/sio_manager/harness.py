"""Real pieces for the fan-out tests: private redis-servers, a TCP proxy that can cut one
process off Redis (:class:`tests.tcp_link.Link`, here ``Proxy``), socket.io servers on
real ports with their own manager, real clients.

Nothing here sleeps to decide an outcome: :func:`eventually` polls a condition until a
generous deadline and fails with what it was waiting for.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio
from aiohttp import web

from tests.services import REQUIRE
from tests.tcp_link import Link as Proxy  # noqa: F401 - the fan-out tests' name for it
from web import jsonlib
from web.sio_manager import FanoutManager

DEADLINE_S = 30.0
ROOM = "r"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S
) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds saying ``what``."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting after {timeout:g} s for: {what}")
        await asyncio.sleep(0.01)


class RedisServer:
    """A redis-server of the test's own, which it may kill and start again (same port)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            reason = "redis-server is not installed"
            if REQUIRE:
                pytest.fail(f"HH_REQUIRE_SERVICES=1 but {reason}")
            pytest.skip(reason)
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = aioredis.from_url(self.url)
        try:
            await eventually(lambda: self.proc is not None and self.proc.returncode is None,
                             "redis-server to run")
            end = time.monotonic() + DEADLINE_S
            while True:
                try:
                    await client.ping()
                    return
                except (aioredis.ConnectionError, OSError):
                    if time.monotonic() > end or self.proc.returncode is not None:
                        raise
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: every connection breaks and every key and subscription is gone."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def command(self, *args: Any) -> Any:
        client = aioredis.from_url(self.url)
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()


@dataclass
class Node:
    """One socket.io server process (an aiohttp app on a real port) with its own manager."""

    sio: socketio.AsyncServer
    manager: FanoutManager
    runner: web.AppRunner
    url: str
    gap_calls: int = 0

    async def emit(self, i: int, room: str = ROOM) -> None:
        await self.sio.emit("tick", {"i": i}, to=room)

    async def emit_all(self, numbers: range) -> None:
        for i in numbers:
            await self.emit(i)

    async def close(self) -> None:
        await self.manager.close()
        await self.sio.shutdown()
        await self.runner.cleanup()


async def start_node(redis_url: str, prefix: str, **manager_options: Any) -> Node:
    manager = FanoutManager(redis_url, prefix, **manager_options)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        json=jsonlib,
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
    )

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        room = auth.get("room") if isinstance(auth, dict) else None
        if room:
            await sio.enter_room(sid, room)

    sio.on("connect", connect)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    node = Node(sio, manager, runner, f"http://127.0.0.1:{port}")

    async def on_gap() -> None:
        node.gap_calls += 1

    manager.on_gap = on_gap
    return node


@dataclass
class Member:
    """A real socket.io client in a room, keeping every ``tick`` it receives, in order."""

    client: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )
    got: list[int] = field(default_factory=list)

    async def join(self, node: Node, room: str = ROOM) -> None:
        async def tick(data: dict[str, Any]) -> None:
            self.got.append(int(data["i"]))

        self.client.on("tick", tick)
        await self.client.connect(
            node.url, transports=["websocket"], auth={"room": room}, wait_timeout=DEADLINE_S
        )

    async def has(self, count: int, what: str) -> None:
        """Wait until this member has received at least ``count`` ticks."""
        await eventually(lambda: len(self.got) >= count, what)

    async def close(self) -> None:
        await self.client.disconnect()


async def subscribed(*nodes: Node) -> None:
    """Wait until every node's listener holds a confirmed subscription."""
    await eventually(
        lambda: all(n.manager.healthy and n.manager.subscribed for n in nodes),
        "every listener to be subscribed",
    )
