"""One load process of ``bench.bell``: thousands of raw websocket clients (``bench._ws_load``).

``python -m bench._bell_load CONFIG.json RESULT.json``

``scenario: "bell"``: each client is a booked student (``/student``, a token carrying its
roster id) or tutor (``/tutor``, a token naming its scheduler profile) and records the
monotonic instant (CLOCK_MONOTONIC is system-wide) of its first ``booked:open``.
``scenario: "echo"``: each client connects to the bare python-socketio baseline (default
namespace) and, on ``go``, every client calls ``echo`` at once; it records the instant
of each ack.

Over stdin/stdout: connects every client at ``rate`` a second and prints ``ready
{json}``; ``go`` (echo: the burst); ``wait S`` waits up to S seconds for every client's
event (or ack), then writes RESULT.json and prints ``done``; ``stop`` exits. A watchdog
ends the process after ``max_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench._load import raise_nofile
from bench._ws_load import Client, Fleet, Wire
from broker import tokens
from broker.identity import Learner, student_identity, tutor_identity

mono = time.monotonic


class RootClient(Client):
    """A client of the default namespace ``/`` (the baseline server's), whose socket.io
    packets carry no namespace."""

    def on_eio(self, wire: Wire, text: str) -> None:
        if wire is self.wire and text[:1] == "0":
            wire.send("40" + orjson.dumps({"token": self.token}).decode())
            return
        super().on_eio(wire, text)

    def call_now(self, event: str, data: Any) -> asyncio.Future[Any]:
        """Send ``event`` and return the future of its ack (no timeout)."""
        assert self.wire is not None
        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[self.next_id] = fut
        self.wire.send(f"42{self.next_id}" + orjson.dumps([event, data]).decode())
        return fut


def token_of(secret: str, person: list[str]) -> str:
    kind, ident = person
    if kind == "tutor":
        identity = tutor_identity(f"acct-{ident}", "benchco", ["en"], source="account",
                                  display_name=f"Tutor {ident}", profile=ident)
    else:
        identity = student_identity(
            f"s-{ident}", Learner(school_id="hs", grade=9, given_name="Kid", roster_id=ident))
    return tokens.issue(secret, identity)


def write(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data))


async def main(cfg: dict[str, Any], result_path: str) -> None:
    raise_nofile()
    loop = asyncio.get_running_loop()
    loop.call_later(cfg.get("max_s", 600), os._exit, 3)
    fleet = Fleet(cfg)
    got: dict[int, float] = {}
    echo = cfg["scenario"] == "echo"
    everyone = asyncio.Event()
    want = len(cfg["people"])

    def mark(client: Client) -> None:
        got.setdefault(id(client), mono())
        if len(got) >= want:
            everyone.set()

    def on_event(client: Client, event: str, data: Any) -> None:
        if event == "booked:open":
            mark(client)

    clients: list[Client] = []
    ports = fleet.ports
    for i, person in enumerate(cfg["people"]):
        port = ports[i % len(ports)]
        if echo:
            clients.append(RootClient(fleet, "", "", port))
        else:
            namespace = "/tutor" if person[0] == "tutor" else "/student"
            clients.append(Client(fleet, namespace, token_of(cfg["secret"], person), port,
                                  on_event))
    started = mono()
    rate = float(cfg.get("rate", 2000))
    for i, client in enumerate(clients):
        client.start()
        if i % 50 == 49:
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - mono()))
    await asyncio.wait([c.connected_once for c in clients], timeout=cfg.get("connect_s", 300))
    connected = want = sum(1 for c in clients if c.connected)
    print("ready " + json.dumps({"connected": connected, "connect_s": mono() - started,
                                 "errors": dict(fleet.connect_errors)}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    acks: list[asyncio.Future[Any]] = []
    burst = 0.0
    while line := (await reader.readline()).decode().strip():
        word, _, arg = line.partition(" ")
        if word == "go" and echo:
            burst = mono()
            for client in clients:
                if isinstance(client, RootClient) and client.connected:
                    fut = client.call_now("echo", {"n": 1})
                    fut.add_done_callback(_marker(mark, client))
                    acks.append(fut)
            print("went", flush=True)
        elif word == "wait":
            if len(got) < want:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everyone.wait(), float(arg))
            write(result_path, {
                "connected": connected, "received": sorted(got.values()), "burst": burst,
                "events": dict(fleet.events),
            })
            print("done", flush=True)
        elif word == "stop":
            break
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)


def _marker(mark: Callable[[Client], None], client: Client) -> Callable[[Any], None]:
    return lambda _fut: mark(client)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]))
