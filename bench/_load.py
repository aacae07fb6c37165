"""The benchmark's load generator: real ``socketio.AsyncClient``s in a process of their own.

``python -m bench._load CONFIG.json RESULT.json`` runs one scenario of ``bench.broker``
against a server that is already running, talking over stdin/stdout with the orchestrator:

1. it opens its connections (and, per scenario, queues requests or opens sessions), then
   prints ``ready <n>``;
2. it waits for ``go <t0>`` (a ``time.monotonic()`` instant: CLOCK_MONOTONIC is system-wide
   on Linux, so every process of the run shares it), runs the timed part, writes its samples
   to RESULT.json and prints ``done``;
3. it waits for ``stop`` (so the orchestrator can read the server's memory while every
   connection is still open), closes its connections and exits.

Every phase is bounded in time; a watchdog ends the process after ``max_s`` seconds
whatever happens. Scenarios:

* ``echo``: each client loops two ``echo`` calls (one cycle) on the baseline server;
* ``request``: each client is a student looping ``help:request`` then ``help:cancel``;
* ``accept``: ``queued`` students request (most then disconnect, keeping their place for
  the grace period), tutors accept the connected ones' requests with modest concurrency,
  timing ``help:accept`` sent -> ``session:started`` received by the student;
* ``chat``: ``sessions`` accepted sessions, both sides sending ``chat:send`` as fast as
  acks return, timing send -> receipt by the other side;
* ``idle``: students connect in batches and stay idle.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from broker import tokens
from web import jsonlib

mono = time.monotonic


def raise_nofile(want: int = 65536) -> int:
    """Raise the soft open-files limit towards ``want`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def student_identity(i: int, prefix: str) -> tokens.Identity:
    """A student of a known school and grade, so every request is routed (never unmet)."""
    school, grade = ("elem", 3) if i % 2 == 0 else ("hs", 10)
    return tokens.Identity(
        "student", f"{prefix}-s{i}", {"school_id": school, "grade": grade, "groups": []}
    )


def tutor_identity(i: int, prefix: str, vendor: str = "paper") -> tokens.Identity:
    return tokens.Identity(
        "tutor",
        f"{prefix}-t{i}",
        {"vendor": vendor, "languages": ["en", "es"], "display_name": f"Tutor {i}"},
    )


TO_LETTERS = str.maketrans("0123456789.", "abcdefghijk")
FROM_LETTERS = str.maketrans("abcdefghijk", "0123456789.")


def stamp(moment: float) -> str:
    """``moment`` (seconds) written in letters: "bcdkefgaaa" for 123.456 (see FROM_LETTERS)."""
    return f"{moment:.6f}".translate(TO_LETTERS)


@dataclass
class Peer:
    sio: socketio.AsyncClient
    namespace: str
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    async def call(self, event: str, data: Any, within: float = 30) -> Any:
        return await self.sio.call(event, data, namespace=self.namespace, timeout=within)


class Load:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.url: str = cfg["url"]
        self.secret: str = cfg.get("secret", "")
        self.prefix: str = cfg.get("prefix", "bench")
        self.http: aiohttp.ClientSession | None = None
        self.peers: list[Peer] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.pushes: collections.Counter[str] = collections.Counter()

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def connect(
        self,
        namespace: str,
        identity: tokens.Identity | None,
        handlers: dict[str, Any] | None = None,
    ) -> Peer:
        sio = socketio.AsyncClient(
            reconnection=False, http_session=self.http, handle_sigint=False, json=jsonlib
        )
        peer = Peer(sio, namespace)
        handlers = handlers or {}

        async def count(event: str, *args: Any) -> None:
            self.pushes[event] += 1

        for event, handler in handlers.items():
            sio.on(event, handler, namespace=namespace)
        sio.on("*", count, namespace=namespace)
        auth = {"token": tokens.issue(self.secret, identity)} if identity is not None else None
        await sio.connect(
            self.url,
            namespaces=[namespace],
            transports=["websocket"],
            auth=auth,
            wait_timeout=30,
        )
        self.peers.append(peer)
        return peer

    async def close(self) -> None:
        async def one(peer: Peer) -> None:
            try:
                await asyncio.wait_for(peer.sio.disconnect(), 5)
            except Exception:
                pass

        for start in range(0, len(self.peers), 500):
            await asyncio.gather(*(one(p) for p in self.peers[start : start + 500]))
        if self.http is not None:
            await self.http.close()

    async def setup(self) -> int:
        """Open the scenario's connections (and state); return how many are ready."""
        raise NotImplementedError

    async def run(self, t0: float) -> dict[str, Any]:
        """The timed part, from ``t0``; return the samples."""
        raise NotImplementedError

    def error(self, what: Any) -> None:
        if isinstance(what, dict):
            code = (what.get("error") or {}).get("code", "?")
        else:
            code = type(what).__name__
        self.errors[str(code)] += 1


# -- scenarios: setup (before "ready") and run (after "go") ---------------------------------


class Echo(Load):
    """Baseline: two ``echo`` calls per cycle with the help:request payload."""

    async def setup(self) -> int:
        n = self.cfg["clients"]
        batch = self.cfg.get("batch", 50)
        for start in range(0, n, batch):
            await asyncio.gather(
                *(self.connect("/", None) for _ in range(start, min(n, start + batch)))
            )
        return len(self.peers)

    async def run(self, t0: float) -> dict[str, Any]:
        stop_at = t0 + self.cfg["warmup"] + self.cfg["duration"]
        payload = self.cfg["payload"]
        acks: list[tuple[float, float]] = []  # (completed at, latency) per echo
        cycles: list[float] = []  # completed at

        async def loop(peer: Peer) -> None:
            while mono() < stop_at:
                try:
                    for _ in range(2):
                        s = mono()
                        got = await peer.call("echo", payload)
                        e = mono()
                        if got != payload:
                            self.error("mismatch")
                        acks.append((e, e - s))
                    cycles.append(e)
                except Exception as exc:  # a timeout: counted, the loop goes on
                    self.error(exc)

        await asyncio.gather(*(loop(p) for p in self.peers))
        return {"acks": acks, "cycles": cycles}


class Request(Load):
    """Students looping ``help:request`` -> ack, ``help:cancel`` -> ack."""

    async def setup(self) -> int:
        n, offset = self.cfg["clients"], self.cfg.get("offset", 0)
        batch = self.cfg.get("batch", 50)
        for start in range(offset, offset + n, batch):
            await asyncio.gather(
                *(
                    self.connect("/student", student_identity(i, self.prefix))
                    for i in range(start, min(offset + n, start + batch))
                )
            )
        return len(self.peers)

    async def run(self, t0: float) -> dict[str, Any]:
        stop_at = t0 + self.cfg["warmup"] + self.cfg["duration"]
        payload = self.cfg["payload"]
        acks: list[tuple[float, float]] = []  # help:request acks (ok)
        cancels: list[tuple[float, float]] = []
        cycles: list[float] = []

        async def loop(peer: Peer) -> None:
            while mono() < stop_at:
                try:
                    s = mono()
                    got = await peer.call("help:request", payload)
                    e = mono()
                    if got.get("ok"):
                        acks.append((e, e - s))
                        request_id = got["request"]["id"]
                    else:
                        self.error(got)
                        request_id = ((got.get("error") or {}).get("detail") or {}).get(
                            "request_id"
                        )
                        if not request_id:
                            await asyncio.sleep(0.05)
                            continue
                    s = mono()
                    got = await peer.call("help:cancel", {"request_id": request_id})
                    e = mono()
                    if got.get("ok"):
                        cancels.append((e, e - s))
                        cycles.append(e)
                    else:
                        self.error(got)
                except Exception as exc:
                    self.error(exc)

        await asyncio.gather(*(loop(p) for p in self.peers))
        return {"acks": acks, "cancels": cancels, "cycles": cycles}


class Accept(Load):
    """``queued`` requests waiting; tutors accept the connected students' ones."""

    async def setup(self) -> int:
        n, stay = self.cfg["queued"], self.cfg["stay"]
        every = max(1, n // stay)
        batch = self.cfg.get("batch", 50)
        self.started: dict[str, asyncio.Future[float]] = {}
        self.stayers: list[str] = []  # their request ids, in enqueue order
        self.early: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        async def on_started(data: dict[str, Any]) -> None:
            now = mono()
            fut = self.started.get(data.get("request_id", ""))
            if fut is not None and not fut.done():
                fut.set_result(now)

        async def one(i: int) -> tuple[int, str | None]:
            keep = i % every == 0 and i // every < stay
            ident = tokens.Identity(
                "student",
                f"{self.prefix}-q{i}",
                {"school_id": "elem", "grade": 3, "groups": []},
            )
            peer = await self.connect(
                "/student", ident, {"session:started": on_started} if keep else None
            )
            payload = {**self.cfg["payload"], "language": "es" if i % 4 == 3 else "en"}
            got = await peer.call("help:request", payload)
            if not got.get("ok"):
                self.error(got)
                return i, None
            request_id = got["request"]["id"]
            if keep:
                self.started[request_id] = loop.create_future()
            else:
                await peer.sio.disconnect()
                self.peers.remove(peer)
            return i, request_id if keep else None

        t = mono()
        for start in range(0, n, batch):
            done = await asyncio.gather(*(one(i) for i in range(start, min(n, start + batch))))
            self.stayers += [rid for _, rid in sorted(done) if rid]
        self.fill_s = mono() - t
        self.tutors: list[Peer] = []
        n_tutors = self.cfg["tutors"]
        for start in range(0, n_tutors, batch):
            self.tutors += await asyncio.gather(
                *(
                    self.connect("/tutor", tutor_identity(i, self.prefix))
                    for i in range(start, min(n_tutors, start + batch))
                )
            )
        for start in range(0, n_tutors, batch):
            await asyncio.gather(
                *(
                    t.call("tutor:status", {"status": "available"})
                    for t in self.tutors[start : start + batch]
                )
            )
        return len(self.stayers)

    async def run(self, t0: float) -> dict[str, Any]:
        capacity = self.cfg.get("capacity", 2)
        slots = [t for t in self.tutors for _ in range(capacity)]
        work = list(zip(self.stayers, slots, strict=False))
        started: list[float] = []
        acks: list[float] = []
        deadline = t0 + self.cfg["max_run_s"]
        queue_len = self.cfg["queued"]
        nxt = 0

        async def worker() -> None:
            nonlocal nxt
            while nxt < len(work) and mono() < deadline:
                request_id, tutor = work[nxt]
                nxt += 1
                s = mono()
                try:
                    got = await tutor.call("help:accept", {"request_id": request_id})
                    acks.append(mono() - s)
                    if not got.get("ok"):
                        self.error(got)
                        continue
                    at = await asyncio.wait_for(self.started[request_id], 30)
                    started.append(at - s)
                except Exception as exc:
                    self.error(exc)

        await asyncio.gather(*(worker() for _ in range(self.cfg["concurrency"])))
        return {
            "started": started,
            "acks": acks,
            "queued_at_start": queue_len,
            "fill_s": self.fill_s,
            "wall_s": mono() - t0,
        }


class Chat(Load):
    """``sessions`` open sessions; both sides send as fast as acks return."""

    async def setup(self) -> int:
        n = self.cfg["sessions"]
        capacity = self.cfg.get("capacity", 2)
        batch = self.cfg.get("batch", 50)
        self.received: list[tuple[float, float]] = []  # at the other side: (at, latency)
        self.delivered = 0  # every chat:message received, own copies included

        def handler(role: str) -> Any:
            async def on_message(msg: dict[str, Any]) -> None:
                now = mono()
                self.delivered += 1
                if msg.get("from") != role:
                    text = msg.get("text", "")
                    try:
                        sent = float(text.split(" ", 1)[0].translate(FROM_LETTERS))
                    except ValueError:
                        return
                    self.received.append((now, now - sent))

            return on_message

        self.students: list[Peer] = []
        self.request_ids: list[str] = []
        for start in range(0, n, batch):
            peers = await asyncio.gather(
                *(
                    self.connect(
                        "/student",
                        tokens.Identity(
                            "student",
                            f"{self.prefix}-c{i}",
                            {"school_id": "elem", "grade": 3, "groups": []},
                        ),
                        {"chat:message": handler("student")},
                    )
                    for i in range(start, min(n, start + batch))
                )
            )
            acks = await asyncio.gather(
                *(p.call("help:request", self.cfg["payload"]) for p in peers)
            )
            for peer, ack in zip(peers, acks, strict=True):
                if ack.get("ok"):
                    self.students.append(peer)
                    self.request_ids.append(ack["request"]["id"])
                else:
                    self.error(ack)
        n_tutors = -(-len(self.students) // capacity)
        self.tutors = []
        for start in range(0, n_tutors, batch):
            self.tutors += await asyncio.gather(
                *(
                    self.connect(
                        "/tutor", tutor_identity(i, self.prefix), {"chat:message": handler("tutor")}
                    )
                    for i in range(start, min(n_tutors, start + batch))
                )
            )
        self.senders: list[tuple[Peer, str]] = []
        for k, (student, request_id) in enumerate(
            zip(self.students, self.request_ids, strict=True)
        ):
            tutor = self.tutors[k // capacity]
            got = await tutor.call("help:accept", {"request_id": request_id})
            if not got.get("ok"):
                self.error(got)
                continue
            session_id = got["session"]["session_id"]
            self.senders += [(student, session_id), (tutor, session_id)]
        return len(self.senders) // 2

    async def run(self, t0: float) -> dict[str, Any]:
        stop_at = t0 + self.cfg["warmup"] + self.cfg["duration"]
        acks: list[tuple[float, float]] = []
        filler = self.cfg.get("filler") or "x" * max(0, self.cfg.get("text_len", 60) - 20)
        # "letters": the send time written with letters for digits, so that what the server
        # reads of a message is the filler (bench.moderation_relay), not a 12-digit number.
        lettered = self.cfg.get("stamp") == "letters"

        async def loop(peer: Peer, session_id: str) -> None:
            while mono() < stop_at:
                try:
                    s = mono()
                    got = await peer.call(
                        "chat:send",
                        {"session_id": session_id,
                         "text": f"{stamp(s) if lettered else f'{s:.6f}'} {filler}"},
                    )
                    e = mono()
                    if got.get("ok"):
                        acks.append((e, e - s))
                    else:
                        self.error(got)
                        await asyncio.sleep(0.05)
                except Exception as exc:
                    self.error(exc)

        await asyncio.gather(*(loop(p, sid) for p, sid in self.senders))
        await asyncio.sleep(0.5)  # let the last relays arrive
        return {"acks": acks, "received": self.received, "delivered": self.delivered}


class Idle(Load):
    """Students that connect (in batches) and stay connected, idle."""

    async def setup(self) -> int:
        n, offset = self.cfg["clients"], self.cfg.get("offset", 0)
        batch = self.cfg.get("batch", 200)
        for start in range(offset, offset + n, batch):
            results = await asyncio.gather(
                *(
                    self.connect("/student", student_identity(i, self.prefix))
                    for i in range(start, min(offset + n, start + batch))
                ),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    self.error(r)
        return len(self.peers)

    async def run(self, t0: float) -> dict[str, Any]:
        return {"connected": sum(1 for p in self.peers if p.sio.connected)}


SCENARIOS: dict[str, type[Load]] = {
    "echo": Echo,
    "request": Request,
    "accept": Accept,
    "chat": Chat,
    "idle": Idle,
}


async def _readline() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


async def main_async(cfg: dict[str, Any], result_path: str) -> None:
    load = SCENARIOS[cfg["scenario"]](cfg)
    await load.open()
    try:
        n = await asyncio.wait_for(load.setup(), cfg.get("setup_s", 120))
        print(f"ready {n}", flush=True)
        line = await asyncio.wait_for(_readline(), cfg.get("wait_go_s", 120))
        t0 = float(line.split()[1]) if line.startswith("go ") else mono()
        await asyncio.sleep(max(0.0, t0 - mono()))
        result = await asyncio.wait_for(load.run(t0), cfg.get("run_s", 120))
        result["errors"] = dict(load.errors)
        result["pushes"] = dict(load.pushes)
        await asyncio.to_thread(Path(result_path).write_text, json.dumps(result), "utf-8")
        print("done", flush=True)
        await asyncio.wait_for(_readline(), cfg.get("wait_stop_s", 120))
    finally:
        await load.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg_path, result_path = argv
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    raise_nofile()
    max_s = float(cfg.get("max_s", 300))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def guarded() -> None:
        asyncio.get_running_loop().call_later(max_s, os._exit, 3)
        await main_async(cfg, result_path)

    asyncio.run(guarded())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
