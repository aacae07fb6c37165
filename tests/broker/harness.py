"""Real servers and real socket.io clients for the broker's end-to-end tests."""

from __future__ import annotations

import asyncio
import collections
import io
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp.test_utils import TestServer
from socketio.packet import Packet

from broker import tokens
from broker.settings import Settings
from tests.broker.unit import FakeClock
from tests.services import forget_prefix
from web.app import init_app
from web.keys import BROKER, GATEWAY
from web.lifecycle import install_gate

# A stop over this fails the test with every pending task's stack. It could not fire while
# the fan-out's close() swallowed cancellation (the rare 60 s teardowns: a listener whose
# own cancellation redis-py had swallowed, web/sio_manager.py); a stop takes ~1 s.
STOP_LIMIT_S = 30.0
# How long a stop waits for request handlers still running (aiohttp's default is 60 s,
# the same as STOP_LIMIT_S, so that limit could never fire): a test's clients are closed
# by then, and a handler left (a refused socket.io connect's websocket, seen on a slow
# machine) is cancelled after this instead of holding the suite for a minute.
HANDLERS_WAIT_S = 5.0
SECRET = "test-secret"


async def forget_redis(settings: Settings) -> None:
    """Make Redis lose this test's data, as a flushed or restarted Redis would."""
    assert settings.redis_url is not None
    await forget_prefix(settings.redis_url, settings.redis_prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Client:
    """A socket.io client that records every server push for the test to await."""

    sio: socketio.AsyncClient
    namespace: str
    events: dict[str, asyncio.Queue[Any]] = field(
        default_factory=lambda: collections.defaultdict(asyncio.Queue)
    )

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)

    async def next(self, event: str, timeout: float = 10) -> Any:
        return await asyncio.wait_for(self.events[event].get(), timeout)

    async def until(self, event: str, predicate: Any, timeout: float = 10) -> Any:
        """The first ``event`` received that ``predicate`` accepts (earlier ones are dropped)."""
        return (await self.upto(event, predicate, timeout))[-1]

    async def upto(self, event: str, predicate: Any, timeout: float = 10) -> list[Any]:
        """Every ``event`` received up to and with the first one ``predicate`` accepts: with
        a marker pushed after something that must not arrive, a test knows it did not."""

        async def wait() -> list[Any]:
            received = []
            while True:
                item = await self.events[event].get()
                received.append(item)
                if predicate(item):
                    return received

        return await asyncio.wait_for(wait(), timeout)

    def drain(self, event: str) -> list[Any]:
        out = []
        q = self.events[event]
        while not q.empty():
            out.append(q.get_nowait())
        return out

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


class Server:
    """One broker process (an aiohttp app on a real TCP port).

    With a ``clock`` (a :class:`~tests.broker.unit.FakeClock`) the broker reads time only
    from it, so grace and timeouts pass when the test advances it and calls :meth:`sweep`;
    the process's own background sweep still runs, at the same fake time, which changes
    nothing until the clock moves.
    """

    def __init__(
        self, settings: Settings, clock: FakeClock | None = None, *, gated: bool = False
    ) -> None:
        """``gated``: new connections pass the admission gate, as under ``serve``
        (web/lifecycle.py: ``/healthz`` and socket.io refused while it is closed)."""
        self.settings = settings.with_(port=free_port())
        self.clock = clock
        self.gated = gated
        self.test_server: TestServer | None = None

    async def start(self) -> Server:
        # The demo platform's keys are fetched over HTTP from settings.port, so the server
        # listens exactly there.
        app = init_app(self.settings)
        if self.gated:
            install_gate(app, app[GATEWAY].sio)
        self.test_server = TestServer(app, host="127.0.0.1", port=self.settings.port)
        await self.test_server.start_server(shutdown_timeout=HANDLERS_WAIT_S)
        if self.clock is not None:
            self.broker.clock = self.clock
        return self

    async def position(self, request_id: str) -> int | None:
        """The request's 1-based place in its queue (the database's), or None if not queued."""
        row = await self.broker.store.request(request_id)
        if row is None or row["status"] != "queued":
            return None
        return await self.broker.store.position(row["queue"], row["rank"], request_id)

    async def sweep(self) -> None:
        """One sweep of this process now, and the queue pushes it caused."""
        await self.broker.sweep()
        await self.broker.flush_pushes()

    async def disconnected(self, subject: str, timeout: float = 10) -> None:
        """Wait until this process has seen the last connection of ``subject`` (such as
        ``student:s-1``) close: from then on its sweeps no longer keep them present."""

        async def gone() -> None:
            # the edge has no disconnect event to wait on: look at what it will heartbeat
            while subject in self.broker.local_subjects():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(gone(), timeout)

    async def stop(self) -> None:
        """Stop the process; a stop that takes over :data:`STOP_LIMIT_S` fails the test with
        every pending task's stack, rather than hanging the suite (it names the step a
        stop waits on)."""
        if self.test_server is not None:
            server, self.test_server = self.test_server, None
            try:
                async with asyncio.timeout(STOP_LIMIT_S):
                    await server.close()
            except TimeoutError:
                stacks = []
                for task in asyncio.all_tasks():
                    lines = io.StringIO()
                    task.print_stack(file=lines)
                    stacks.append(lines.getvalue())
                raise AssertionError(
                    f"stopping the server took over {STOP_LIMIT_S} s; pending tasks:\n"
                    + "\n".join(stacks)
                ) from None

    @property
    def url(self) -> str:
        assert self.test_server is not None
        return f"http://127.0.0.1:{self.test_server.port}"

    @property
    def broker(self) -> Any:
        assert self.test_server is not None
        return self.test_server.app[BROKER]

    async def connect(
        self, namespace: str, identity: tokens.Identity | None, token: str | None = None
    ) -> Client:
        sio = socketio.AsyncClient(reconnection=False)
        client = Client(sio, namespace)

        async def record(event: str, *args: Any) -> None:
            client.events[event].put_nowait(args[0] if args else None)

        sio.on("*", record, namespace=namespace)
        if token is None and identity is not None:
            token = tokens.issue(SECRET, identity)
        try:
            await sio.connect(
                self.url,
                namespaces=[namespace],
                transports=["websocket"],
                auth={"token": token},
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError:
            # A refused namespace leaves the engine.io websocket open; closed here, or the
            # server's stop waits for it (aiohttp's 60 s shutdown timeout).
            await sio.eio.disconnect(abort=True)
            raise
        return client


def student(
    pseudonym: str, school_id: str | None, grade: int | None, **claims: Any
) -> tokens.Identity:
    return tokens.Identity(
        "student", pseudonym, {"school_id": school_id, "grade": grade, "groups": [], **claims}
    )


def tutor(
    tutor_id: str, vendor: str, languages: list[str], name: str = "Ms. Tutor"
) -> tokens.Identity:
    return tokens.Identity(
        "tutor", tutor_id, {"vendor": vendor, "languages": languages, "display_name": name}
    )


def staff(scope: str = "district", scope_id: str | None = None) -> tokens.Identity:
    return tokens.Identity("staff", "staff-1", {"scope": scope, "scope_id": scope_id})


class BrowserJsonPacket(Packet):  # type: ignore[misc]
    """Encodes as a browser's ``JSON.stringify`` may (stdlib json: ``NaN``, lone surrogates),
    where python-socketio's class-level ``Packet.json`` is the server's orjson in-process."""

    json = json


async def browser_client(
    server: Server, namespace: str, identity: tokens.Identity
) -> socketio.AsyncClient:
    """A connected socket.io client that encodes as a browser does (``BrowserJsonPacket``)."""
    sio = socketio.AsyncClient(reconnection=False, serializer=BrowserJsonPacket)
    await sio.connect(
        server.url, namespaces=[namespace], transports=["websocket"],
        auth={"token": tokens.issue(SECRET, identity)},
    )
    return sio
