"""Micro-benchmark of the socket.io fan-out over Redis: upstream's manager against ours.

``python -m bench.fanout [--messages N] [--concurrency C] [--rate R] [--seconds S]``

For each manager, on a redis-server of its own (never the shared one):

* process **B** serves socket.io with the manager under test; one member (a minimal raw
  engine.io websocket client in this process, so that the client is not what is measured)
  joins room ``r`` on it;
* process **A** serves socket.io with the same manager and emits ``tick`` to room ``r``
  (nobody on A is in it, so every emit must cross Redis).

Phases: a **burst** of N emits from C concurrent tasks (emits/s from A's first emit to the
member's last receipt; how many arrived out of order; CPU µs per emit in A and in B), then a
**paced** run at R emits/s for S seconds (end-to-end latency p50 / p99 / max: A's emit to the
member's receipt, both on CLOCK_MONOTONIC). Figures are printed, nothing is written.

Managers: ``upstream`` (``socketio.AsyncRedisManager``), ``bounded`` (``web.sio``'s
``BoundedRedisManager``, what the server used before), ``fanout`` (``web.sio_manager``: one
PUBLISH per batch) and ``fanout-pipeline`` (the same, but each message its own PUBLISH in a
pipeline: the alternative batching, for the comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import orjson

VARIANTS = ("upstream", "bounded", "fanout", "fanout-pipeline")
ROOM = "r"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_manager(variant: str, url: str, prefix: str) -> Any:
    import socketio

    from broker.redis_keys import RedisKeys

    channel = RedisKeys(prefix).socketio_channel
    if variant == "upstream":
        return socketio.AsyncRedisManager(url, channel=channel)
    if variant == "bounded":
        from web.sio import BoundedRedisManager

        return BoundedRedisManager(url, channel=channel)
    from web.sio_manager import FanoutManager

    if variant == "fanout":
        return FanoutManager(url, prefix)

    class PipelineFanout(FanoutManager):
        async def _send(self, first_seq: int, texts: list[str], gap: int) -> None:
            pipe = self._publishing_client().pipeline(transaction=False)
            for k, text in enumerate(texts or [""]):
                pipe.publish(
                    self.channel, self._envelope(first_seq + k, [text] if text else [], gap)
                )
                gap = 0
            async with asyncio.timeout(self.publish_timeout_s):
                await pipe.execute()

    return PipelineFanout(url, prefix)


# -- the two server processes ---------------------------------------------------------------
async def serve(role: str, variant: str, url: str, prefix: str) -> None:
    import socketio
    from aiohttp import web

    from web import jsonlib

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=make_manager(variant, url, prefix),
        json=jsonlib,
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
    )

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("room"):
            await sio.enter_room(sid, auth["room"])

    sio.on("connect", connect)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # the port is reported below
    if role == "emitter":
        # the emitter's manager listens too, as in a real server with clients of its own
        sio.manager_initialized = True
        sio.manager.initialize()

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    say({"port": runner.addresses[0][1]})
    while line := (await stdin.readline()).decode().split():
        command, args = line[0], [float(a) for a in line[1:]]
        if command == "cpu":
            say({"cpu": time.process_time()})
        elif command == "burst":
            say(await burst(sio, int(args[0]), int(args[1])))
        elif command == "paced":
            say(await paced(sio, int(args[0]), args[1]))
        elif command == "stop":
            break
    await runner.cleanup()


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def burst(sio: Any, n: int, concurrency: int) -> dict[str, Any]:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await sio.emit("tick", {"i": i, "t": time.monotonic()}, to=ROOM)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"t0": t0, "emit_s": time.monotonic() - t0}


async def paced(sio: Any, n: int, rate: float) -> dict[str, Any]:
    t0 = time.monotonic()
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await sio.emit("tick", {"i": i, "t": time.monotonic()}, to=ROOM)
    return {"t0": t0, "emit_s": time.monotonic() - t0}


# -- the orchestrator -----------------------------------------------------------------------
class Proc:
    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "bench.fanout", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ask(self, line: str | None = None) -> dict[str, Any]:
        assert self.p.stdin is not None and self.p.stdout is not None
        if line is not None:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        out = await asyncio.wait_for(asyncio.to_thread(self.p.stdout.readline), 180)
        if not out:
            raise RuntimeError(f"process exited ({self.p.poll()})")
        result: dict[str, Any] = orjson.loads(out)
        return result

    def stop(self) -> None:
        if self.p.poll() is None and self.p.stdin is not None:
            with_suppress(lambda: (self.p.stdin.write("stop\n"), self.p.stdin.flush()))  # type: ignore[union-attr]
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def with_suppress(fn: Any) -> None:
    try:
        fn()
    except OSError:
        pass


class Member:
    """A raw engine.io / socket.io websocket client: joins the room, timestamps each tick."""

    def __init__(self) -> None:
        self.got: list[tuple[int, float]] = []
        self.arrived = asyncio.Event()
        self.expect = 0

    async def run(self, url: str, joined: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{url}/socket.io/?EIO=4&transport=websocket", max_msg_size=0
        ) as ws:
            await ws.receive_str()  # engine.io open
            await ws.send_str('40{"room":"%s"}' % ROOM)  # noqa: UP031
            await ws.receive_str()  # socket.io connect ack
            joined.set()
            async for frame in ws:
                data = frame.data
                if data == "2":
                    await ws.send_str("3")
                elif isinstance(data, str) and data.startswith("42"):
                    now = time.monotonic()
                    tick = orjson.loads(data[2:])[1]
                    self.got.append((tick["i"], now - tick["t"]))
                    if len(self.got) >= self.expect:
                        self.arrived.set()

    def reset(self, expect: int) -> None:
        self.got, self.expect = [], expect
        self.arrived.clear()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_variant(variant: str, redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench{os.getpid()}{variant}"
    common = ("--variant", variant, "--redis", redis_url, "--prefix", prefix)
    b = Proc("--role", "receiver", *common)
    a = Proc("--role", "emitter", *common)
    member = Member()
    joined = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        b_port = (await b.ask())["port"]
        await a.ask()
        task = asyncio.create_task(member.run(f"http://127.0.0.1:{b_port}", joined))
        await asyncio.wait_for(joined.wait(), 30)
        # B subscribes once the member has connected: emit until a tick gets through, so
        # that no phase starts before both sides are subscribed; then warm up
        member.reset(1)
        async with asyncio.timeout(60):
            while not member.got:
                await a.ask("burst 1 1")
                await asyncio.sleep(0.1)
        member.reset(200)
        await a.ask("burst 200 4")
        await asyncio.wait_for(member.arrived.wait(), 60)
        result: dict[str, Any] = {"variant": variant}

        member.reset(args.messages)
        cpu_a0, cpu_b0 = (await a.ask("cpu"))["cpu"], (await b.ask("cpu"))["cpu"]
        sent = await a.ask(f"burst {args.messages} {args.concurrency}")
        try:
            await asyncio.wait_for(member.arrived.wait(), 120)
        except TimeoutError:
            pass
        end = time.monotonic()
        cpu_a1, cpu_b1 = (await a.ask("cpu"))["cpu"], (await b.ask("cpu"))["cpu"]
        got = [i for i, _ in member.got]
        last = max((t for _, t in member.got), default=0.0)
        result["burst_per_s"] = len(got) / (end - sent["t0"]) if got else 0.0
        result["burst_lost"] = args.messages - len(set(got))
        result["burst_out_of_order"] = sum(1 for x, y in itertools.pairwise(got) if y < x)
        result["burst_emit_s"] = sent["emit_s"]
        result["burst_latency_max_ms"] = last * 1000
        result["cpu_a_us"] = (cpu_a1 - cpu_a0) / args.messages * 1e6
        result["cpu_b_us"] = (cpu_b1 - cpu_b0) / args.messages * 1e6

        n = int(args.rate * args.seconds)
        member.reset(n)
        await a.ask(f"paced {n} {args.rate}")
        try:
            await asyncio.wait_for(member.arrived.wait(), 60)
        except TimeoutError:
            pass
        latencies = [t * 1000 for _, t in member.got]
        result["paced_lost"] = n - len(latencies)
        result["p50_ms"] = statistics.median(latencies) if latencies else float("nan")
        result["p99_ms"] = pct(latencies, 0.99)
        result["max_ms"] = max(latencies, default=float("nan"))
        return result
    finally:
        if task is not None:
            task.cancel()
        a.stop()
        b.stop()


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    for _ in range(5):  # a free port may be taken before redis-server binds it
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    return proc, f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.02)
        proc.kill()
        proc.wait()
    raise SystemExit("redis-server did not start")


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """One line per manager: the median of each figure over the repeats."""
    print(
        f"\nburst: {args.messages} emits from {args.concurrency} tasks; paced: {args.rate:g}/s "
        f"for {args.seconds:g} s; median of {args.repeat} run(s); {os.cpu_count()} CPUs\n"
    )
    head = (
        f"{'manager':<16} {'emits/s':>9} {'lost':>5} {'disorder':>8} {'A µs/emit':>10} "
        f"{'B µs/emit':>10} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'lost':>5}"
    )
    print(head)
    print("-" * len(head))
    for variant in args.variants:
        runs = [r for r in rows if r["variant"] == variant]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r[key] for r in runs))

        print(
            f"{variant:<16} {med('burst_per_s'):>9.0f} {med('burst_lost'):>5.0f} "
            f"{med('burst_out_of_order'):>8.0f} {med('cpu_a_us'):>10.1f} {med('cpu_b_us'):>10.1f} "
            f"{med('p50_ms'):>7.2f} {med('p99_ms'):>7.2f} {med('max_ms'):>7.2f} "
            f"{med('paced_lost'):>5.0f}"
        )


async def orchestrate(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        redis, url = start_redis(workdir)
        try:
            rows = []
            for _ in range(args.repeat):
                for variant in args.variants:
                    rows.append(await run_variant(variant, url, args))
                    print(orjson.dumps(rows[-1]).decode(), file=sys.stderr)
            report(rows, args)
        finally:
            redis.kill()
            redis.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2_000)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--role", choices=("receiver", "emitter"), help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional, as in the server
        pass
    if args.role:
        asyncio.run(serve(args.role, args.variant, args.redis, args.prefix))
    else:
        asyncio.run(orchestrate(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
