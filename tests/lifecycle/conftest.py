"""A real ``homework-help serve`` process on a fresh SQLite database, for the lifecycle tests.

The process is the command a deploy runs, started as a subprocess, so signals, the
listening socket and the exit are the real ones. Every wait is bounded; a process still
running when its test ends is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from broker import tokens
from tests.broker.conftest import prepare_database
from tests.broker.harness import SECRET, free_port, student
from tests.browser.conftest import broker_settings, browser, live_broker  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]


def homework_help() -> list[str]:
    exe = Path(sys.executable).with_name("homework-help")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "web.cli"]


@dataclass
class Serve:
    """One ``serve`` subprocess and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"serve exited early:\n{self.log()}"
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if (await response.json()).get("ok"):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve not ready after {within}s:\n{self.log()}")

    async def signal_and_wait(self, signum: int, within: float = 30.0) -> float:
        """Send ``signum``; the seconds until the process exited (fails after ``within``)."""
        t = time.monotonic()
        self.proc.send_signal(signum)
        while self.proc.poll() is None:
            assert time.monotonic() - t < within, f"still running after {within}s:\n{self.log()}"
            await asyncio.sleep(0.02)
        return time.monotonic() - t


def spawn(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory: ``await serve(**env)`` starts a ready ``serve`` process."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}"
    await prepare_database(url)
    started: list[Serve] = []

    async def start(**extra: str) -> Serve:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
        env.pop("REDIS_URL", None)
        env.update(
            DATABASE_URL=url,
            HH_SECRET_KEY=SECRET,
            HH_LOG_LEVEL="INFO",
            HH_HOST="127.0.0.1",
            PYTHONPATH=str(ROOT),
            **extra,
        )
        log_path = tmp_path / f"serve-{len(started)}.log"
        proc = spawn([*homework_help(), "serve", "--port", str(port)], env, tmp_path, log_path)
        server = Serve(proc, port, log_path)
        started.append(server)
        await server.ready()
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@dataclass
class Student:
    """A socket.io client that records when things happened to it."""

    sio: socketio.AsyncClient
    restart: dict[str, Any] | None = None
    restart_at: float | None = None
    disconnected_at: float | None = None
    probe: str | None = None  # what a new TCP connection got when server:restart arrived
    events: list[str] = field(default_factory=list)


async def connect_students(
    url: str, n: int, http: aiohttp.ClientSession, port: int, *, leave: bool = False
) -> list[Student]:
    """``n`` students on ``/student``. On ``server:restart`` each one tries a new TCP
    connection to the port (``probe``: "refused" once the listening socket is closed) and,
    with ``leave``, disconnects as the pages do."""

    async def one(i: int) -> Student:
        sio = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
        s = Student(sio)

        async def on_restart(data: dict[str, Any]) -> None:
            s.restart_at = time.monotonic()
            s.restart = data
            s.events.append("server:restart")
            s.probe = await probe(port)
            if leave:
                await sio.disconnect()

        async def on_disconnect(*_: Any) -> None:
            s.disconnected_at = time.monotonic()
            s.events.append("disconnect")

        sio.on("server:restart", on_restart, namespace="/student")
        sio.on("disconnect", on_disconnect, namespace="/student")
        token = tokens.issue(SECRET, student(f"life-{i}", "elem", 3))
        await sio.connect(
            url,
            namespaces=["/student"],
            transports=["websocket"],
            auth={"token": token},
            wait_timeout=30,
        )
        return s

    out: list[Student] = []
    for start in range(0, n, 50):
        out += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
    return out


async def probe(port: int) -> str:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except ConnectionRefusedError:
        return "refused"
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__
    writer.close()
    return "accepted"


SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
