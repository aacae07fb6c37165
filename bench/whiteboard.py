"""Benchmark: whiteboard strokes relayed at 60 points/s per side with p99 under 50 ms, chat
relayed in the same run as the baseline, and the widget's first load (issue 14).

``python -m bench.whiteboard [--quick] [--stacks embedded,scaled] [--sessions 1,5,10]
[--seconds S] [--workers W] [--pinned] [--no-browser] [--no-write] [--results PATH]``

For each stack, one broker process (``homework-help serve``, as ``bench.broker`` starts it;
embedded: SQLite + in-process, scaled: PostgreSQL + Redis) and real socket.io clients in
``--workers`` load processes (with ``--pinned``, the broker on CPU 0 and the bench on CPU
1). For each size ``N``: ``N`` open sessions, and in each both sides draw at once, each a
pen stroke sent as ``board:stroke`` batches of 3 points every 50 ms (60 points/s per
side), for ``S`` seconds; the latency of a batch is from the sender's emit to the other
side's ``board:stroke`` (one clock: both sides of a session are in the same load process).
The baseline in the same run: both sides of every session also send a ``chat:send`` every
other second (the chat's rate limit is 10 per 10 s), timed the same way to the other
side's ``chat:message``. Then Chromium opens the widget with a student's token and sums
what it transferred for scripts, styles and the catalog (``bench.i18n``'s measure; goal:
under 200 KB, KaTeX not among it). Writes the
"## Whiteboard" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.broker import (
    Server,
    Stack,
    clean_env,
    free_port,
    homework_help,
    pin,
    raise_nofile,
    tree_cpu,
)
from bench.results import RESULTS, write_section
from tests.broker.harness import SECRET, Client, student, tutor
from tests.browser.conftest import Broker

SECTION = "## Whiteboard"
GOAL_P99_MS = 50.0
GOAL_FIRST_LOAD_KB = 200.0
POINTS_PER_BATCH = 3
BATCH_S = 0.05  # 20 batches of 3 points a second: 60 points/s per side


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Timings:
    """Emit times by key, and the latencies of what arrived on the other side."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.board: list[float] = []
        self.chat: list[float] = []
        self.refused: dict[str, int] = {}
        self.server_cpu_s = 0.0
        self.load = 0.0
        self.missing = 0
        self.wall_s = 0.0

    def arrived(self, key: str, into: list[float]) -> None:
        start = self.sent.pop(key, None)
        if start is not None:
            into.append((time.perf_counter() - start) * 1000)


async def open_sessions(
    server: Broker, first: int, n: int, timings: Timings
) -> list[tuple[Client, Client, str]]:
    """``n`` sessions (numbered from ``first``), each a student and a tutor of their own."""
    pairs = []
    for i in range(first, first + n):
        kid = await server.connect("/student", student(f"s-wb-{i}", "elem", 3))
        ms = await server.connect("/tutor", tutor(f"t-wb-{i}", "paper", ["en"]))
        assert (await ms.call("tutor:status", {"status": "available"}))["ok"]
        ack = await kid.call("help:request", {"subject": "math", "language": "en"})
        assert ack["ok"], ack
        accepted = await ms.call("help:accept", {"request_id": ack["request"]["id"]})
        assert accepted["ok"], accepted
        session = accepted["session"]["session_id"]
        for client in (kid, ms):
            ns = client.namespace

            async def on_stroke(data: Any) -> None:
                timings.arrived(f"{data['session_id']}/{data['by']}/{data['id']}/{data['part']}",
                                timings.board)

            async def on_chat(data: Any) -> None:
                timings.arrived(f"{data['session_id']}/{data['from']}/{data['text']}", timings.chat)

            client.sio.on("board:stroke", on_stroke, namespace=ns)
            client.sio.on("chat:message", on_chat, namespace=ns)
        pairs.append((kid, ms, session))
    return pairs


async def draw(client: Client, role: str, session: str, seconds: float, timings: Timings) -> None:
    """One side: a pen stroke at 60 points/s (a new stroke every second), and a chat
    message every other second (under the chat's 10 per 10 s)."""
    pending: set[asyncio.Task[Any]] = set()

    async def send(event: str, payload: dict[str, Any], key: str) -> None:
        timings.sent[key] = time.perf_counter()
        ack = await client.call(event, payload)
        if not ack.get("ok"):
            code = ack.get("error", {}).get("code", "?")
            timings.refused[code] = timings.refused.get(code, 0) + 1
            timings.sent.pop(key, None)

    start = time.perf_counter()
    tick = 0
    while time.perf_counter() - start < seconds:
        stroke_no, part = divmod(tick, int(1 / BATCH_S))
        sid = f"{role[0]}{stroke_no}"
        y = (stroke_no % 10) / 10
        points = [[round((part * POINTS_PER_BATCH + k) / 60, 4), y]
                  for k in range(POINTS_PER_BATCH)]
        payload = {"session_id": session, "id": sid, "part": part, "tool": "pen",
                   "colour": "#1f2937", "width": 3, "points": points}
        task = asyncio.create_task(send("board:stroke", payload, f"{session}/{role}/{sid}/{part}"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if part == 0 and stroke_no % 2 == 0:
            text = f"step {stroke_no}: 3x + 5 = 20"
            chat = asyncio.create_task(send("chat:send", {"session_id": session, "text": text},
                                            f"{session}/{role}/{text}"))
            pending.add(chat)
            chat.add_done_callback(pending.discard)
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * BATCH_S - time.perf_counter()))
    await asyncio.gather(*pending)


async def relay(
    server: Broker, first: int, sessions: int, seconds: float, start_at: float
) -> Timings:
    timings = Timings()
    pairs = await open_sessions(server, first, sessions, timings)
    await asyncio.sleep(max(0.0, start_at - time.time()))  # every worker starts together
    try:
        await asyncio.gather(*(
            draw(client, role, session, seconds, timings)
            for kid, ms, session in pairs
            for client, role in ((kid, "student"), (ms, "tutor"))
        ))
        await asyncio.sleep(0.5)  # the last pushes
    finally:
        for kid, ms, _ in pairs:
            await kid.close()
            await ms.close()
    return timings


async def first_load_kb(server: Broker) -> float:
    """The widget's first load (scripts, styles, catalog; compressed, as on the wire), KB."""
    from bench.i18n import first_load_bytes

    sizes = await first_load_bytes(server, ["en"])
    return sum(sizes["en"].values()) / 1024


class Remote(Broker):
    """The harness's client side (tokens, ``connect``) for a broker in another process."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url


def worker(url: str, first: int, n: int, seconds: float, start_at: float) -> dict[str, Any]:
    """One load process: its sessions' both sides, from ``start_at`` (wall clock)."""
    timings = asyncio.run(relay(Remote(url), first, n, seconds, start_at))
    return {"board": timings.board, "chat": timings.chat, "refused": timings.refused,
            "missing": len(timings.sent)}


def one_size(url: str, pid: int, sessions: int, first: int, args: argparse.Namespace) -> Timings:
    """``sessions`` sessions (ids from ``first``) spread over ``--workers`` load processes
    (the clients' own work is as large as the broker's: one process of clients would
    measure itself)."""
    workers = max(1, min(args.workers, sessions))
    shares = [sessions // workers + (k < sessions % workers) for k in range(workers)]
    start_at = time.time() + 5 + 0.3 * max(shares)  # after every worker opened its sessions
    timings = Timings()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(worker, url, first + sum(shares[:k]), shares[k], args.seconds,
                               start_at) for k in range(workers)]
        time.sleep(max(0.0, start_at - time.time()))  # the sessions are open: drawing starts
        cpu_before = tree_cpu([pid])
        for future in futures:
            part = future.result()
            timings.board += part["board"]
            timings.chat += part["chat"]
            for code, count in part["refused"].items():
                timings.refused[code] = timings.refused.get(code, 0) + count
            timings.missing += part["missing"]
    timings.server_cpu_s = tree_cpu([pid]) - cpu_before
    timings.wall_s = time.time() - start_at + 0.5
    timings.load = os.getloadavg()[0]
    return timings


def measure(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Each size in turn (fresh sessions), then the widget's first load."""
    rounds, first = {}, 0
    for size in args.sizes:
        rounds[size] = one_size(url, pid, size, first, args)
        first += size
    load_kb = float("nan") if args.no_browser else asyncio.run(first_load_kb(Remote(url)))
    return {"rounds": rounds, "first_load_kb": load_kb}


def run(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """A broker process (``homework-help serve`` on a fresh copy of the test district, as
    ``bench.broker`` starts them), the clients here (``--pinned``: CPU 0 and CPU 1)."""
    tmp = Path(tempfile.mkdtemp(prefix="hh-bench-board-"))
    stack = Stack(kind, tmp)
    stack.prepare()
    try:
        port = free_port()
        env = clean_env(HH_SECRET_KEY=SECRET, HH_PSEUDONYM_SECRET=SECRET, HH_LOG_LEVEL="WARNING",
                        HH_HOST="127.0.0.1", PORT=str(port), HH_TUTOR_SILENT_S="0",
                        **stack.fresh("board"))
        server = Server("broker", [*homework_help(), "serve", "--port", str(port)], env, port, tmp)
        try:
            server.wait_ready()
            if args.pinned and (os.cpu_count() or 1) > 1:
                pin(server.pid, 0)
                pin(os.getpid(), 1)
            return measure(server.url, server.pid, args)
        finally:
            server.stop()
    finally:
        stack.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, outs: dict[str, dict[str, Any]]) -> str:
    sizes = ",".join(str(n) for n in args.sizes)
    lines = [
        SECTION,
        "",
        f"`python -m bench.whiteboard --stacks {','.join(args.stacks)}"
        f"{' --pinned' if args.pinned else ''} --workers {args.workers} --sessions {sizes} "
        f"--seconds {args.seconds:g}` on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        "embedded: SQLite + in-process; scaled: PostgreSQL + Redis; the broker "
        f"(`homework-help serve`) in its own process, the clients in {args.workers} load "
        f"processes{' (pinned: CPU 0 and CPU 1)' if args.pinned else ''}.",
        "",
        "N sessions, both sides drawing at once: 2N senders x 60 points/s (`board:stroke` "
        f"batches of {POINTS_PER_BATCH} points every {BATCH_S * 1000:.0f} ms) for "
        f"{args.seconds:g} s, plus one `chat:send` per side every other second as the "
        "baseline; latency from the sender's emit to the other side's push. The broker's CPU "
        "is its own over the round; the load average (1 min) is the machine's at its end.",
        "",
        "| stack | N | relay | relayed | p50 | p95 | p99 | max | broker CPU | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    rounds = [(kind, size, t) for kind, out in outs.items() for size, t in out["rounds"].items()]
    for kind, size, t in rounds:
        cpu = f"{100 * t.server_cpu_s / max(t.wall_s, 1e-9):.0f}% of a core"
        lines += [
            f"| {kind} | {size} | strokes | {len(t.board)} batches "
            f"({len(t.board) * POINTS_PER_BATCH} points) | {statistics.median(t.board):.1f} ms | "
            f"{pct(t.board, 0.95):.1f} ms | "
            f"{pct(t.board, 0.99):.1f} ms | {max(t.board):.1f} ms | {cpu} | {t.load:.1f} |",
            f"| {kind} | {size} | chat (baseline) | {len(t.chat)} | "
            f"{statistics.median(t.chat):.1f} ms | "
            f"{pct(t.chat, 0.95):.1f} ms | {pct(t.chat, 0.99):.1f} ms | {max(t.chat):.1f} ms "
            "| | |",
        ]
        p99 = pct(t.board, 0.99)
        verdicts.append(f"{kind} N={size}: **{'met' if p99 < GOAL_P99_MS else 'NOT met'}** "
                        f"(p99 {p99:.1f} ms, {p99 / pct(t.chat, 0.99):.2f}x the chat's; "
                        f"refused {t.refused or 'none'}, not arrived {t.missing})")
    lines += [
        "",
        f"Goal: strokes at 60 points/s per side with p99 under {GOAL_P99_MS:.0f} ms: "
        + "; ".join(verdicts) + ".",
        "",
    ]
    load = next(iter(outs.values()))["first_load_kb"]
    if load == load:  # not NaN
        lines += [
            f"The widget's first load (Chromium, `en`, scripts + styles + catalog, gzip as sent): "
            f"{load:.1f} KB (goal < {GOAL_FIRST_LOAD_KB:.0f} KB: "
            f"**{'met' if load < GOAL_FIRST_LOAD_KB else 'NOT met'}**). KaTeX (75 KB script, "
            "its styles and fonts) is not part of it: `chat-math.js` imports it when the first "
            "message with math is shown or the equation toolbar is opened "
            "(tests/browser/test_math_board.py checks that the first load fetches none of it).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 sessions for 3 s")
    parser.add_argument("--stacks", default="embedded,scaled",
                        help="embedded (SQLite + in-process) and/or scaled (PostgreSQL + Redis)")
    parser.add_argument("--sessions", default="1,5,10",
                        help="sessions drawing at once, one round per size: 1,5,10")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="load processes")
    parser.add_argument("--no-browser", action="store_true", help="skip the first-load measure")
    parser.add_argument("--pinned", action="store_true",
                        help="the broker on CPU 0, the clients on CPU 1 (a quiet machine)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.seconds = "3", 3.0
    args.sizes = [int(n) for n in str(args.sessions).split(",")]
    raise_nofile()
    args.stacks = str(args.stacks).split(",")
    outs = {}
    for n, kind in enumerate(args.stacks):
        args.no_browser = args.no_browser or n > 0  # the first load once
        outs[kind] = run(args, kind)
    text = report(args, outs)
    print(text)
    if not args.no_write and not args.quick:
        write_section(SECTION, text, args.results)


if __name__ == "__main__":
    main()
