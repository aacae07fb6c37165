"""Benchmark: the live broker against a bare python-socketio server, under the same load.

``python -m bench.broker [--quick] [--scaled] [--no-write] [--profile SCENARIO]``

In one run, on this machine: the broker (``homework-help serve``, SQLite + in-process queue
by default) and, as the baseline, a bare python-socketio ``AsyncServer`` on aiohttp whose
one event ``echo`` returns its argument (``bench/_baseline_server.py``) run as subprocesses;
the load runs in separate processes of real ``socketio.AsyncClient``s (``bench/_load.py``).
Measured:

1. request throughput and latency: 200 students looping ``help:request`` -> ack,
   ``help:cancel`` -> ack, against 200 clients looping two ``echo`` calls with the same
   payload; acknowledged requests/s vs echo cycles/s, and p50/p99 of the acks;
2. accept -> ``session:started`` latency with 1,000 requests queued (800 of the students
   disconnected after requesting, keeping their place; tutors accept the 200 connected
   ones' requests, 4 at a time);
3. chat relay: 100 accepted sessions, both sides sending as fast as acks return; messages
   relayed to the other side per second and send -> receive latency;
4. memory: broker RSS before and after 5,000 idle students connect.

Each scenario gets a fresh broker process on a fresh copy of a migrated database, so one
scenario's leftovers (queued requests, sessions) never weigh on the next. When the machine
has 2 or more CPUs the servers are pinned to CPU 0 and the load to CPU 1, so a server never
has more than one core and the load never competes with it. ``--scaled`` repeats the
broker scenarios on PostgreSQL + Redis and adds a column: a PostgreSQL cluster and a Redis
server of the run's own, pinned to the load's CPU (:mod:`bench.services`), or the
machine's on 127.0.0.1 when those cannot be started; its databases and keys are removed
afterwards. The CPU of the load and of those services is measured in the request test's
timed window as well as the servers': the load's core is shared, and can be the limit.
``--profile request`` (or accept/chat) samples that scenario's broker with
py-spy (cProfile without it) and prints where it spends its time. ``HH_BENCH_BROKER_CMD``
(e.g. ``python /tmp/patched_serve.py serve``) replaces the serve command, to measure a
candidate fix without touching the application. Replaces only the "## Broker" section of
bench/RESULTS.md (``--quick`` writes nothing unless ``--results PATH`` is given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import pstats
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.results import RESULTS, write_section
from bench.services import OwnServices, ServiceUnavailable
from tests.broker.conftest import insert_schools

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Broker"
SECRET = "bench-broker-secret-not-for-production"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
PAYLOAD = {"subject": "math", "language": "en", "topic": "adding fractions: 1/2 + 1/4"}
GOAL_THROUGHPUT = 0.5  # broker requests/s >= 50% of baseline echo cycles/s
GOAL_P99 = 2.0  # broker p99 <= 2x baseline p99
GOAL_RSS = 1024**3  # 5,000 idle students in under 1 GiB
SCALED_PROCESSES = 2  # the scaled stack serves the request scenario from two processes


@dataclass(frozen=True)
class Sizes:
    clients: int = 200
    warmup: float = 3.0
    duration: float = 15.0
    queued: int = 1000
    stay: int = 200
    tutors: int = 110
    concurrency: int = 4
    sessions: int = 100
    chat_duration: float = 10.0
    idle: int = 5000
    idle_procs: int = 2
    rounds: int = 2


FULL = Sizes()
QUICK = Sizes(
    clients=20,
    warmup=0.5,
    duration=2.0,
    queued=100,
    stay=20,
    tutors=12,
    concurrency=2,
    sessions=10,
    chat_duration=2.0,
    idle=200,
    idle_procs=1,
    rounds=1,
)


# -- small helpers -------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench.broker {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


def stack_kinds(scaled: bool, say: Callable[[str], None]) -> list[str]:
    """The stacks a benchmark runs: embedded, and scaled when asked for and PostgreSQL and
    Redis answer on 127.0.0.1 (otherwise ``say`` why it is embedded only)."""
    if not scaled:
        return ["embedded"]
    if reachable(5432) and reachable(6379):
        return ["embedded", "scaled"]
    say("--scaled: PostgreSQL or Redis not reachable on 127.0.0.1; embedded only")
    return ["embedded"]


def scaled_stack(tmp: Path, cpu: int | None) -> dict[str, Stack]:
    """The scaled stack on PostgreSQL and Redis of its own, pinned to ``cpu`` (the load's),
    off the serving core (:mod:`bench.services`); on the machine's, unpinned, when they
    cannot be started, or with ``HH_BENCH_SHARED_SERVICES=1`` (to compare the two); none
    when neither answers."""
    try:
        if os.environ.get("HH_BENCH_SHARED_SERVICES") == "1":
            raise ServiceUnavailable("HH_BENCH_SHARED_SERVICES=1")
        services = OwnServices(cpu)
    except ServiceUnavailable as exc:
        log(f"scaled: no PostgreSQL and Redis of its own ({exc})")
    else:
        try:
            services.start()
            where = "not pinned" if cpu is None else f"pinned to CPU {cpu}"
            log(f"scaled: own PostgreSQL :{services.postgres.port} and Redis "
                f":{services.redis.port}, {where}")
            return {"scaled": Stack("scaled", tmp, services)}
        except (RuntimeError, OSError) as exc:
            services.destroy()
            log(f"scaled: could not start PostgreSQL and Redis of its own ({exc})")
    if "scaled" not in stack_kinds(True, log):  # says why
        return {}
    log("scaled: on the machine's PostgreSQL and Redis (127.0.0.1), not pinned")
    return {"scaled": Stack("scaled", tmp)}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(min(len(ordered), rank)) - 1]


def in_window(samples: list[list[float]], lo: float, hi: float) -> list[float]:
    """Latencies of ``(completed_at, latency)`` samples completed within ``[lo, hi]``."""
    return [lat for at, lat in samples if lo <= at <= hi]


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of several load processes as one: samples joined, counts added."""
    out: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            if isinstance(value, list):
                out.setdefault(key, []).extend(value)
            elif isinstance(value, dict):
                counts = out.setdefault(key, {})
                for k, v in value.items():
                    counts[k] = counts.get(k, 0) + v if isinstance(v, int | float) else v
            else:
                out.setdefault(key, value)
    return out


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
    return total


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def raise_nofile(want: int = 65536) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


# -- databases -----------------------------------------------------------------------------


async def _pg(sql: str, admin: str = PG_ADMIN) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _redis_delete(prefix: str, url: str = REDIS) -> int:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


def homework_help() -> list[str]:
    exe = Path(sys.executable).with_name("homework-help")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "web.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
    for name in ("DATABASE_URL", "REDIS_URL", "PORT"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Stack:
    """Fresh databases (and Redis prefixes) for one stack: ``embedded`` or ``scaled``.

    ``services``: the scaled stack's own PostgreSQL and Redis (:mod:`bench.services`);
    without them it uses the machine's (127.0.0.1:5432 and :6379)."""

    def __init__(self, kind: str, tmp: Path, services: OwnServices | None = None) -> None:
        self.kind = kind
        self.tmp = tmp
        self.services = services
        self.pg_admin = services.pg_admin if services else PG_ADMIN
        self.redis_url = services.redis_url if services else REDIS
        self.tag = uuid.uuid4().hex[:8]
        self.template = ""
        self.databases: list[str] = []
        self.prefixes: list[str] = []
        self.count = 0

    def prepare(self) -> None:
        if self.kind == "embedded":
            path = self.tmp / "bench.db"
            url = f"sqlite+aiosqlite:///{path}"
        else:
            self.template = f"hh_bench_{self.tag}_tmpl"
            asyncio.run(_pg(f'CREATE DATABASE "{self.template}"', self.pg_admin))
            self.databases.append(self.template)
            url = self._pg_url(self.template)
        out = subprocess.run(
            [*homework_help(), "migrate"],
            env=clean_env(DATABASE_URL=url, HH_LOG_LEVEL="WARNING"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"migrate failed: {out.stdout}\n{out.stderr}")
        asyncio.run(insert_schools(url))  # the test district: tests/broker/conftest.py

    def fresh(self, name: str) -> dict[str, str]:
        """Environment of a broker on a fresh copy of the prepared database."""
        self.count += 1
        name = f"{name}{self.count}"
        if self.kind == "embedded":
            path = self.tmp / f"bench-{name}.db"
            shutil.copyfile(self.tmp / "bench.db", path)
            return {"DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
        db = f"hh_bench_{self.tag}_{name}"
        asyncio.run(_pg(f'CREATE DATABASE "{db}" TEMPLATE "{self.template}"', self.pg_admin))
        self.databases.append(db)
        prefix = f"hhbench{self.tag}{name}"
        self.prefixes.append(prefix)
        return {
            "DATABASE_URL": self._pg_url(db),
            "REDIS_URL": self.redis_url,
            "HH_REDIS_PREFIX": prefix,
        }

    def describe(self) -> str:
        """Where the scaled stack's PostgreSQL and Redis ran, for the report."""
        if self.services is None:
            return ("the machine's PostgreSQL and Redis (127.0.0.1:5432 and :6379), not "
                    "pinned: they share both CPUs")
        where = (f"pinned to CPU {self.services.cpu} with the load"
                 if self.services.cpu is not None else "not pinned")
        return ("PostgreSQL and Redis of the run's own (an `initdb` cluster with "
                "PostgreSQL's durable defaults, a `redis-server`; bench/services.py), "
                f"{where}: a district runs them on hosts of their own, and left to float "
                "they ran on the serving core between the serving processes' turns")

    def _pg_url(self, database: str) -> str:
        if self.services:
            return self.services.pg_url(database)
        return f"postgresql://postgres@127.0.0.1:5432/{database}"

    def cleanup(self) -> None:
        if self.services:  # its own services go whole, with every database and key
            self.services.destroy()
            return
        for prefix in self.prefixes:
            with contextlib.suppress(Exception):
                asyncio.run(_redis_delete(prefix, self.redis_url))
        for db in reversed(self.databases):
            with contextlib.suppress(Exception):
                asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', self.pg_admin))


# -- processes -----------------------------------------------------------------------------


class Server:
    """A server subprocess (broker or baseline), stopped with SIGTERM."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, tmp: Path):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if json.loads(r.read()).get("ok"):
                        return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Worker:
    """One load process (``bench._load``, or ``module``), driven over stdin/stdout."""

    def __init__(
        self, cfg: dict[str, Any], tmp: Path, name: str, cpu: int | None,
        module: str = "bench._load",
    ) -> None:
        self.name = name
        self.cfg_path = tmp / f"{name}.json"
        self.result_path = tmp / f"{name}.result.json"
        self.err_path = tmp / f"{name}.err"
        self.cfg_path.write_text(json.dumps(cfg))
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(self.cfg_path), str(self.result_path)],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        pin(self.proc.pid, cpu)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ready: dict[str, Any] = {}  # what its "ready" line said, for the caller
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {word!r} after {timeout}s; {self.stderr()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited before {word!r}: {self.stderr()}")
            if line.startswith(word):
                return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self.result_path.read_text()))

    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text()[-3000:]

    def finish(self) -> None:
        self.send("stop")
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()


@dataclass
class Run:
    results: list[dict[str, Any]]
    t0: float
    server_cpu: float | None = None  # % of one core during the timed window
    load_cpu: float | None = None
    services_cpu: dict[str, float] = field(default_factory=dict)  # the same, per service
    rss_before: int = 0
    rss_held: int = 0
    ready: int = 0


def drive(
    server: Server | list[Server],
    cfgs: list[dict[str, Any]],
    tmp: Path,
    name: str,
    *,
    load_cpu: int | None,
    window: tuple[float, float] | None = None,
    setup_s: float = 180,
    run_s: float = 180,
    on_window: Any = None,
    services: dict[str, list[int]] | None = None,
) -> Run:
    """Start the load processes, wait until ready, go, collect, stop them. With several
    servers (processes of one broker), CPU and memory are their sums. ``services``: the
    processes of each of the stack's own services (PostgreSQL, Redis), whose CPU in the
    window (with their children's: PostgreSQL's backends) is measured too: they share the
    load's core."""
    servers = server if isinstance(server, list) else [server]
    server = servers[0]
    pids = [s.pid for s in servers]
    workers = [Worker(c, tmp, f"{name}-{i}", load_cpu) for i, c in enumerate(cfgs)]
    try:
        ready = sum(int(w.expect("ready", setup_s).split()[1]) for w in workers)
        rss_before = sum(tree_rss(pid) for pid in pids)
        t0 = time.monotonic() + 0.3
        for w in workers:
            w.send(f"go {t0}")
        run = Run([], t0, ready=ready)
        if window is not None:
            lo, hi = t0 + window[0], t0 + window[0] + window[1]
            time.sleep(max(0.0, lo - time.monotonic()))
            if on_window is not None:
                on_window(server, window[1])
            groups = {"server": pids, "load": [w.proc.pid for w in workers], **(services or {})}

            def spent() -> tuple[dict[str, float], float]:
                """CPU seconds of each group of processes so far, and when."""
                return {k: tree_cpu(ps) for k, ps in groups.items()}, time.monotonic()

            c0, w0 = spent()
            time.sleep(max(0.0, hi - time.monotonic()))
            c1, w1 = spent()
            used = {k: 100 * (c1[k] - c0[k]) / (w1 - w0) for k in groups}
            run.server_cpu = used.pop("server")
            run.load_cpu = used.pop("load")
            run.services_cpu = used
        for w in workers:
            w.expect("done", run_s)
        run.rss_before = rss_before
        run.rss_held = sum(tree_rss(pid) for pid in pids)
        run.results = [w.result() for w in workers]
        return run
    finally:
        for w in workers:
            w.finish()


# -- the scenarios -------------------------------------------------------------------------


class Bench:
    def __init__(self, sizes: Sizes, tmp: Path, *, pinned: bool, profile: str | None) -> None:
        self.sizes = sizes
        self.tmp = tmp
        self.server_cpu = 0 if pinned else None
        self.load_cpu = 1 if pinned else None
        self.profile = profile
        self.profiles: dict[str, Path] = {}
        # What the chat scenario writes after each message's timestamp (default: x's).
        self.chat_filler: str | None = None
        self.spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []

    def spy(self, server: Server, seconds: float) -> None:
        """During a timed window: sample the profiled broker with py-spy, if installed."""
        exe = pyspy()
        named = self.profile and re.search(rf"-{self.profile}(-p\d+)?$", server.name)
        if exe is None or not named:
            return
        out = self.tmp / f"{server.name}-{len(self.spies) + 1}.spy.txt"
        cmd = [
            exe,
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--gil",
            "--full-filenames",
            "--output",
            str(out),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.spies.append((server.name, out, proc))

    def base_cfg(self, scenario: str, url: str, **kw: Any) -> dict[str, Any]:
        return {
            "scenario": scenario,
            "url": url,
            "secret": SECRET,
            "prefix": f"b{uuid.uuid4().hex[:6]}",
            "payload": PAYLOAD,
            "max_s": 400,
            **kw,
        }

    @contextlib.contextmanager
    def broker(self, stack: Stack, name: str, **env: str) -> Iterator[Server]:
        with self.brokers(stack, name, 1, **env) as servers:
            yield servers[0]

    @contextlib.contextmanager
    def brokers(
        self, stack: Stack, name: str, processes: int, **env: str
    ) -> Iterator[list[Server]]:
        """``processes`` serving processes of one broker (one database, one Redis prefix),
        all pinned to the server CPU."""
        environ = clean_env(
            HH_SECRET_KEY=SECRET,
            HH_LOG_LEVEL="WARNING",
            HH_HOST="127.0.0.1",
            HH_CHAT_RATE_MESSAGES=str(10**9),
            HH_REQUEST_RATE_LIMIT=str(10**9),  # the load loops request/cancel on purpose
            **stack.fresh(name),
            **env,
        )
        servers: list[Server] = []
        try:
            for n in range(processes):
                port = free_port()
                cmd = [*homework_help(), "serve", "--port", str(port)]
                if os.environ.get("HH_BENCH_BROKER_CMD"):  # a candidate fix, app untouched
                    cmd = [*os.environ["HH_BENCH_BROKER_CMD"].split(), "--port", str(port)]
                if self.profile == name and pyspy() is None and n == 0:
                    out = self.tmp / f"{stack.kind}-{name}.prof"
                    self.profiles[f"{stack.kind}-{name}"] = out
                    cmd = [
                        sys.executable, "-m", "bench._profile_serve", str(out), "--port", str(port)
                    ]
                suffix = f"-p{n + 1}" if processes > 1 else ""
                server = Server(f"broker-{stack.kind}-{name}{suffix}", cmd, environ, port, self.tmp)
                servers.append(server)
                pin(server.pid, self.server_cpu)
            for server in servers:
                server.wait_ready()
            time.sleep(0.5)
            yield servers
        finally:
            for server in servers:
                server.stop()

    @contextlib.contextmanager
    def baseline(self) -> Iterator[Server]:
        port = free_port()
        cmd = [sys.executable, "-m", "bench._baseline_server", "--port", str(port)]
        server = Server("baseline", cmd, clean_env(), port, self.tmp)
        try:
            pin(server.pid, self.server_cpu)
            server.wait_ready()
            time.sleep(0.3)
            yield server
        finally:
            server.stop()

    def _window(self, run: Run) -> tuple[float, float]:
        lo = run.t0 + self.sizes.warmup
        return lo, lo + self.sizes.duration

    def echo(self) -> dict[str, Any]:
        z = self.sizes
        with self.baseline() as server:
            cfg = self.base_cfg(
                "echo", server.url, clients=z.clients, warmup=z.warmup, duration=z.duration
            )
            run = drive(
                server,
                [cfg],
                self.tmp,
                "echo",
                load_cpu=self.load_cpu,
                window=(z.warmup, z.duration),
            )
        lo, hi = self._window(run)
        res = run.results[0]
        acks = in_window(res["acks"], lo, hi)
        cycles = [c for c in res["cycles"] if lo <= c <= hi]
        return {
            "clients": run.ready,
            "per_s": len(cycles) / z.duration,
            "calls_per_s": len(acks) / z.duration,
            "p50": percentile(acks, 50),
            "p99": percentile(acks, 99),
            "server_cpu": run.server_cpu,
            "load_cpu": run.load_cpu,
            "errors": res["errors"],
        }

    def request(self, stack: Stack) -> dict[str, Any]:
        z = self.sizes
        processes = SCALED_PROCESSES if stack.kind == "scaled" else 1
        with self.brokers(stack, "request", processes) as servers:
            share = -(-z.clients // processes)
            cfgs = [
                self.base_cfg(
                    "request", server.url, clients=min(share, z.clients - i * share),
                    warmup=z.warmup, duration=z.duration,
                )
                for i, server in enumerate(servers)
            ]
            run = drive(
                servers,
                cfgs,
                self.tmp,
                f"request-{stack.kind}",
                load_cpu=self.load_cpu,
                window=(z.warmup, z.duration),
                on_window=self.spy,
                services=(
                    {name: [pid] for name, pid in stack.services.roots().items()}
                    if stack.services else None
                ),
            )
        lo, hi = self._window(run)
        res = merged(run.results)
        acks = in_window(res["acks"], lo, hi)
        cancels = in_window(res["cancels"], lo, hi)
        return {
            "processes": processes,
            "clients": run.ready,
            "per_s": len(acks) / z.duration,
            "p50": percentile(acks, 50),
            "p99": percentile(acks, 99),
            "cancel_p50": percentile(cancels, 50),
            "cancel_p99": percentile(cancels, 99),
            "server_cpu": run.server_cpu,
            "load_cpu": run.load_cpu,
            "services_cpu": run.services_cpu,
            "errors": res["errors"],
            "pushes": res["pushes"],
        }

    def accept(self, stack: Stack) -> dict[str, Any]:
        z = self.sizes
        # A long grace so no disconnected student's request is abandoned mid-measure.
        with self.broker(stack, "accept", HH_GRACE_SECONDS="600") as server:
            cfg = self.base_cfg(
                "accept",
                server.url,
                queued=z.queued,
                stay=z.stay,
                tutors=z.tutors,
                concurrency=z.concurrency,
                max_run_s=120,
                setup_s=240,
            )
            run = drive(
                server, [cfg], self.tmp, f"accept-{stack.kind}", load_cpu=self.load_cpu, setup_s=250
            )
        res = run.results[0]
        return {
            "queued": res["queued_at_start"],
            "accepts": len(res["started"]),
            "p50": percentile(res["started"], 50),
            "p99": percentile(res["started"], 99),
            "ack_p50": percentile(res["acks"], 50),
            "ack_p99": percentile(res["acks"], 99),
            "fill_s": res["fill_s"],
            "wall_s": res["wall_s"],
            "errors": res["errors"],
            "pushes": res["pushes"],
        }

    def chat(self, stack: Stack) -> dict[str, Any]:
        z = self.sizes
        with self.broker(stack, "chat") as server:
            cfg = self.base_cfg(
                "chat", server.url, sessions=z.sessions, warmup=z.warmup, duration=z.chat_duration
            )
            if self.chat_filler:
                cfg["filler"] = self.chat_filler
                cfg["stamp"] = "letters"
            run = drive(
                server,
                [cfg],
                self.tmp,
                f"chat-{stack.kind}",
                load_cpu=self.load_cpu,
                window=(z.warmup, z.chat_duration),
                on_window=self.spy,
            )
        lo = run.t0 + z.warmup
        hi = lo + z.chat_duration
        res = run.results[0]
        received = in_window(res["received"], lo, hi)
        acks = in_window(res["acks"], lo, hi)
        return {
            "sessions": run.ready,
            "per_s": len(received) / z.chat_duration,
            "sends_per_s": len(acks) / z.chat_duration,
            "p50": percentile(received, 50),
            "p99": percentile(received, 99),
            "server_cpu": run.server_cpu,
            "load_cpu": run.load_cpu,
            "errors": res["errors"],
        }

    def memory(self, stack: Stack) -> dict[str, Any]:
        z = self.sizes
        per = -(-z.idle // z.idle_procs)
        with self.broker(stack, "memory") as server:
            time.sleep(1.0)
            before = tree_rss(server.pid)
            cfgs = [
                self.base_cfg(
                    "idle",
                    server.url,
                    clients=min(per, z.idle - k * per),
                    offset=k * per,
                    batch=250,
                    setup_s=240,
                )
                for k in range(z.idle_procs)
            ]
            t = time.monotonic()
            run = drive(server, cfgs, self.tmp, f"idle-{stack.kind}", load_cpu=None, setup_s=250)
            connect_s = time.monotonic() - t
            time.sleep(1.0)
            after = tree_rss(server.pid)
        connected = sum(r["connected"] for r in run.results)
        errors: dict[str, int] = {}
        for r in run.results:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {
            "connected": connected,
            "before": before,
            "after": max(after, run.rss_held),
            "per_conn": (max(after, run.rss_held) - before) / max(1, connected),
            "connect_s": connect_s,
            "errors": errors,
        }

    def stack_figures(self, stack: Stack, names: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            log(f"{stack.kind}: {name} ...")
            t = time.monotonic()
            out[name] = getattr(self, name)(stack)
            log(f"{stack.kind}: {name} done in {time.monotonic() - t:.1f}s: {compact(out[name])}")
        return out


def compact(d: dict[str, Any]) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, float):
            v = round(v, 4)
        parts.append(f"{k}={v}")
    return " ".join(parts)


# -- report --------------------------------------------------------------------------------


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f} ms"


def num(v: float | None, nd: int = 0) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def mib(v: float) -> str:
    return f"{v / 2**20:,.1f} MiB"


def per_core(fig: dict[str, Any]) -> float:
    """Throughput per second of server CPU (so a load-bound baseline cannot flatter)."""
    return float(fig["per_s"]) / max(0.01, (fig.get("server_cpu") or 100.0) / 100)


def per_load_core(fig: dict[str, Any]) -> float:
    """Throughput per second of the load's core: the load's CPU plus that of the services
    pinned beside it (the scaled stack's own PostgreSQL and Redis)."""
    used = (fig.get("load_cpu") or 100.0) + sum((fig.get("services_cpu") or {}).values())
    return float(fig["per_s"]) / max(0.01, used / 100)


def times(ratio: float, goal: float) -> str:
    """``ratio`` as ``0.49x``; to three places where two would round it onto the goal
    (0.4987 is ``0.499x``, not a ``0.50x`` that reads as met)."""
    return f"{ratio:.3f}x" if round(ratio, 2) == goal and ratio != goal else f"{ratio:.2f}x"


def load_core(req: dict[str, Any]) -> str:
    """What ran on the load's core during a timed window: the load, and the stack's own
    services pinned beside it, each in % of that core, and their sum."""
    services = req.get("services_cpu") or {}
    parts = [f"load {num(req['load_cpu'])}%"]
    parts += [f"{name} {num(cpu)}%" for name, cpu in services.items()]
    total = req["load_cpu"] + sum(services.values())
    return " + ".join(parts) + (f" = {num(total)}%" if services else "")


def verdicts(base: dict[str, Any], fig: dict[str, Any]) -> dict[str, tuple[float | None, bool]]:
    req = fig["request"]
    thr = req["per_s"] / base["per_s"] if base["per_s"] else None
    p99 = req["p99"] / base["p99"] if req["p99"] and base["p99"] else None
    mem = fig["memory"]
    return {
        "throughput": (thr, thr is not None and thr >= GOAL_THROUGHPUT),
        "p99": (p99, p99 is not None and p99 <= GOAL_P99),
        "memory": (mem["after"], mem["connected"] >= 1 and mem["after"] < GOAL_RSS),
    }


def report(
    sizes: Sizes,
    base: dict[str, Any],
    stacks: dict[str, dict[str, Any]],
    *,
    pinned: bool,
    quick: bool,
    services: str = "",
) -> str:
    names = ["embedded", "scaled"]
    flags = (" --quick" if quick else "") + (" --scaled" if "scaled" in stacks else "")
    col = {n: stacks.get(n) for n in names}
    head = (
        "| measure | embedded (SQLite + in-process, 1 process) "
        "| scaled (PostgreSQL + Redis, 2 processes) | goal | met |"
    )
    lines = [
        SECTION,
        "",
        f"`python -m bench.broker{flags}` ({dt.date.today().isoformat()}, commit {git_commit()}, "
        f"Python {platform.python_version()}, "
        f"nproc {os.cpu_count()} shared with other work"
        f"{'; servers pinned to CPU 0, load processes to CPU 1' if pinned else ''}). "
        "Servers and load are separate processes of real python-socketio clients over "
        "websocket on 127.0.0.1; each broker scenario runs on a fresh broker process and a "
        "fresh copy of a migrated database. Baseline: a bare python-socketio `AsyncServer` on "
        "aiohttp (uvloop, default json, no auth) whose one event `echo` returns its argument, "
        f"driven by the same {sizes.clients} clients looping two `echo` calls with the "
        f"`help:request` payload; the broker's {sizes.clients} students loop "
        "`help:request` -> ack, "
        f"`help:cancel` -> ack. Timed {sizes.duration:g} s after a {sizes.warmup:g} s warm-up; "
        f"baseline and broker alternate, best of {sizes.rounds} round(s) each (all rounds in "
        "brackets). Ratios of per-second figures compare with the baseline measured in the "
        "same run; the per-core-second row divides by the server's measured CPU, since the "
        "baseline server is usually not the bottleneck of its own test (the load process is).",
        "",
        head,
        "|---|---|---|---|---|",
    ]

    def cell(name: str, fn: Any) -> str:
        fig = col[name]
        if fig is None:
            return "not run"
        try:
            return str(fn(fig))
        except (KeyError, TypeError, ZeroDivisionError):
            return "-"

    def met(key: str) -> str:
        out = []
        for name in names:
            fig = col[name]
            if fig is not None:
                out.append(f"{name}: {'yes' if verdicts(base, fig)[key][1] else 'NO'}")
        return "; ".join(out)

    def row(label: str, fn: Any, goal: str = "-", key: str | None = None) -> None:
        lines.append(
            f"| {label} | {cell('embedded', fn)} | {cell('scaled', fn)} | {goal} | "
            f"{met(key) if key else '-'} |"
        )

    lines.append(
        f"| baseline echo: cycles/s (2 calls each) | {num(base['per_s'])} "
        f"({', '.join(map(str, base.get('rounds', [])))}; p50 {ms(base['p50'])}, "
        f"p99 {ms(base['p99'])}, server CPU {num(base['server_cpu'])}%, "
        f"load CPU {num(base['load_cpu'])}%) | same baseline | - | - |"
    )
    row(
        "`help:request` acked/s",
        lambda f: f"{num(f['request']['per_s'])} ({', '.join(map(str, f['request']['rounds']))})",
    )
    row(
        "throughput vs baseline",
        lambda f: times(f["request"]["per_s"] / base["per_s"], GOAL_THROUGHPUT),
        ">= 0.50x",
        "throughput",
    )
    row(
        "requests per server core-second vs baseline cycles per core-second",
        lambda f: (
            f"{per_core(f['request']):,.0f} vs {per_core(base):,.0f} "
            f"({per_core(f['request']) / per_core(base):.2f}x)"
        ),
    )
    row(
        "requests per load-core-second (load + services) vs baseline cycles per load-core-second",
        lambda f: (
            f"{per_load_core(f['request']):,.0f} vs {per_load_core(base):,.0f} "
            f"({per_load_core(f['request']) / per_load_core(base):.2f}x)"
        ),
    )
    row("`help:request` ack p50", lambda f: ms(f["request"]["p50"]))
    row("`help:request` ack p99", lambda f: ms(f["request"]["p99"]))
    row(
        "p99 vs baseline p99", lambda f: times(f["request"]["p99"] / base["p99"], GOAL_P99),
        "<= 2x", "p99",
    )
    row("p50 vs baseline p50", lambda f: f"{f['request']['p50'] / base['p50']:.2f}x")
    row(
        "`help:cancel` ack p50 / p99",
        lambda f: f"{ms(f['request']['cancel_p50'])} / {ms(f['request']['cancel_p99'])}",
    )
    row(
        "server CPU during the request test",
        lambda f: f"{num(f['request']['server_cpu'])}% of a core",
    )
    row("the load's core during the request test", lambda f: load_core(f["request"]))
    row(
        f"accept -> `session:started` p50 / p99 ({sizes.queued:,} queued)",
        lambda f: (
            f"{ms(f['accept']['p50'])} / {ms(f['accept']['p99'])} "
            f"over {f['accept']['accepts']} accepts"
        ),
    )
    row(
        "`help:accept` ack p50 / p99",
        lambda f: f"{ms(f['accept']['ack_p50'])} / {ms(f['accept']['ack_p99'])}",
    )
    row(
        f"chat relayed to the other side/s ({sizes.sessions} sessions)",
        lambda f: f"{num(f['chat']['per_s'])} ({num(f['chat']['sends_per_s'])} sends acked/s)",
    )
    row(
        "chat send -> receive p50 / p99",
        lambda f: f"{ms(f['chat']['p50'])} / {ms(f['chat']['p99'])}",
    )
    row("broker RSS before idle students", lambda f: mib(f["memory"]["before"]))
    row(
        f"broker RSS with {sizes.idle:,} idle students",
        lambda f: f"{mib(f['memory']['after'])} ({f['memory']['connected']:,} connected)",
        "< 1 GiB",
        "memory",
    )
    row("per idle connection", lambda f: f"{f['memory']['per_conn'] / 1024:,.1f} KiB")
    errors = {
        n: {
            k: f[k].get("errors")
            for k in ("request", "accept", "chat", "memory")
            if f[k].get("errors")
        }
        for n, f in stacks.items()
    }
    lines += [
        "",
        f"Accept: {sizes.queued:,} students request (4 in 5 disconnect after their ack and "
        "keep their place; "
        f"grace raised to 600 s so none is abandoned mid-test), {sizes.tutors} tutors "
        f"(capacity 2, paper, en+es) accept the {sizes.stay} connected students' requests "
        f"{sizes.concurrency} at a time, timed from sending `help:accept` to the student "
        f"receiving `session:started`. Chat: both sides of each session send `chat:send` "
        "as fast as acks return (rate limit raised); latency is send -> receipt by the other "
        "side. Memory: RSS of the broker process (and any children) before and after the idle "
        "students connect from separate load processes."
        + (
            " Scaled: a fresh PostgreSQL database and Redis key prefix per scenario, dropped "
            f"afterwards; {services}."
            if "scaled" in stacks
            else ""
        ),
        "",
        f"Errors seen by the load: {json.dumps(errors) if any(errors.values()) else 'none'}.",
        "",
        "How it got here, each step measured by this benchmark (embedded `help:request` "
        "against the echo of the same run): the first version made 0.05-0.18x with a p99 of"
        " 847 ms. Group commit, the in-memory one-request-per-student hold, prebuilt "
        "statements and 100 ms coalescing of position pushes reached 0.31x, p99 4.4x. Then:"
        " state changes written by a SQLite writer thread of their own (stdlib `sqlite3`, "
        "one hand-off per batch) instead of SQLAlchemy over aiosqlite (two hand-offs per "
        "statement): 2,026 -> ~3,600/s; the start-up heap frozen out of the garbage "
        "collector, whose full collections took ~75 ms every second or two: p99 ~100 -> ~40"
        " ms; `request:closed` no longer pushed to the connection that cancelled (its ack "
        "says so), time-ordered ids, one-step timestamp binds and WAL checkpoints every "
        "4,000 pages: 0.6-0.75x. On PostgreSQL + Redis: a dedicated asyncpg writer "
        "connection, tutor counts for wait estimates read at most once a second, hiredis, "
        "and cancel as one remove-if-owner script: 480 -> ~1,300/s. Then the queue, the "
        "claims and the one-open-request rule moved into the database (issue 10: nothing "
        "lost or stuck after a crash or a Redis/PostgreSQL fault), which costs a database "
        "round trip on every event: embedded 0.6-0.75x -> ~0.44x, scaled ~0.2x -> ~0.13x "
        "(both stacks now measured from the same clients; scaled from two processes sharing"
        " the server core). Since: the position counted in the insert's transaction, "
        "cancels as one `UPDATE ... RETURNING`, one-script throttles, background "
        "wait-estimate counts, and PostgreSQL writer lanes keyed so they never deadlock "
        "(scaled chat 139/s with p50 1.2 s -> ~1,160/s, p99 ~0.4 s). Then the hot reads (a "
        "request, a queue, open sessions, tutors' states) left SQLAlchemy for "
        "`broker/db/reader.py`, as the writes had: on SQLite a read-only connection (then "
        "read on the loop's thread), on PostgreSQL asyncpg connections of their own: scaled"
        " `help:request` 589 -> 666/s (0.13x -> 0.21x, p99 8.0x -> 4.3x), accept -> "
        "`session:started` p99 154 -> 37 ms embedded and 135 -> 76 ms scaled. The embedded "
        "request loop itself reads little and stayed at ~1,930/s; its ratio moved with the "
        "echo's speed in the run (4,387 -> 3,248 cycles/s), and an alternating A/B of the "
        "chat scenario gave the same rates before and after (2,091 and 2,365/s; 2,208 and "
        "2,475/s). Then fewer statements on PostgreSQL, each an alternating A/B of four "
        "runs (or two, chat) against the commit before: a request inserted with its place "
        "counted by the insert itself (scaled `help:request` means 1,347 -> 1,538/s); a "
        "batch's requests and its cancels each as one statement over arrays "
        "(`broker/commit/base.py`, fused statements: 1,420 -> 1,880/s, p99 ~130 -> ~80 ms);"
        " a chat message counted and buffered by one statement (scaled chat 2,450 -> "
        "2,750/s), then a batch's messages to different sessions as one (3,180 -> 3,750/s, "
        "p99 ~127 -> ~98 ms); then a session's later messages in a batch as a second fused "
        "statement, not one each (2,916-3,129 -> 3,097-3,535/s, p99 ~118 -> ~93 ms); a "
        "batch that comes to one statement sent without BEGIN and COMMIT (a quiet write "
        "~520 -> ~340 us; the loaded scenarios unchanged). Then a queue's pushes (the "
        "tutors' snapshot, the students' places) throttled, at once on a quiet queue and at"
        " most one per 500 ms on a busy one, instead of one 100 ms after each change (~700 "
        "`queue:position` pushes a second under this churn -> ~140; embedded "
        "`help:request`, four alternating runs each: 2,926 -> 3,240/s; scaled 1,540 and "
        "1,677 -> 1,608 and 1,705/s, within the noise). Then two PostgreSQL writer lanes "
        "per process instead of four: since the fusion a lane's batch is BEGIN, a statement"
        " per kind and COMMIT, so more lanes only split the same writes into more "
        "transactions (scaled `help:request`, alternating patched servers, best of two "
        "rounds each: four lanes 1,480-1,840/s over six runs, mean 1,690; two 1,620-2,060/s"
        " over four, mean 1,890; one 1,690-2,190/s over four, mean 2,040, and against two "
        "directly within the noise; scaled chat with one lane 2,849 and 3,242 against 2,853"
        " and 2,988/s with four). Two rather than one, so that a batch waiting for a row "
        "lock holds up only its lane's keys (one since: see below)."
        " Then the queue statements wrote `status = 'queued'` into their SQL instead of"
        " binding it (`is_queued` in broker/db/models.py): SQLite had read the table row"
        " behind every index entry it counted for a request's place, to check the bound"
        " status (the SQLite writer thread's time per request + cancel, 200 students in"
        " one process without sockets: ~75 -> ~45 us), and PostgreSQL's generic plan"
        " could not use the partial queue index (`tests/broker/test_queue_plans.py`)."
        " Embedded `help:request`, 18 alternating runs each against the commit before:"
        " mean 2,761 -> 3,038/s, ratio to the echo of the same run 0.49 -> 0.53 on"
        " average (at least 0.5x in 6 -> 11 of 18 runs, p99 at most 2x in 5 -> 7);"
        " scaled, 12 runs each, 1,496 and 1,418/s, within the noise (a standard"
        " deviation of ~200/s)."
        " Then PostgreSQL's fused enqueue counted a request's batch mates over one"
        " joined CTE instead of joining the inserted rows to the arrays again for each"
        " row, a nested loop cubic in the batch (auto_explain under load: 95 requests,"
        " 138 ms of a 163 ms statement): 200 students asking at once in one process,"
        " 150-158 -> 25-27 ms a batch; scaled `help:request`, three alternating rounds"
        " each on a slow machine (echo 2,600-4,000 cycles/s), means 879 -> 1,069/s."
        " Then the fused chat messages answered from their counted rows instead of"
        " joining them back to the inserted ones, a nested loop quadratic in the batch"
        " (auto_explain, 100 sessions both sides sending in one process, 120 statements:"
        " 382 and 418 -> 293 and 249 ms in all, median 2.9-3.0 -> 2.0-2.2 ms a"
        " statement)."
        " Then the SQLite writer's write-ahead log checkpointed by a thread of its own"
        " between commits (broker/commit/wal_checkpoint.py): timed per batch on the writer"
        " (embedded `help:request`), the 4,000-page checkpoint inside a commit held its"
        " batch 15-24 ms every ~0.47 s against a median batch of 0.6 ms, mostly waiting on"
        " fsync; with the passes beside it the writer's longest batch was 8-16 ms. Four"
        " alternating runs each against the commit before (2026-12-05, echo 15,400-16,600"
        " calls/s): `help:request` p99 43.9, 45.8, 43.6 and 46.5 -> 38.0, 38.0, 40.2 and"
        " 37.4 ms, 2.0-2.8 -> 1.9-2.4x the echo's of the same round; 3,773-4,072 ->"
        " 3,758-3,887 acks/s, the passes' CPU on the writer's core (a pass every 0.25 s"
        " instead of 0.1 s made no difference, four more runs). With no checkpoint at all"
        " (two runs, for scale) the p99 was 35.2 and 39.5 ms: what remains of the tail is"
        " not the writer's."
        " Then the Redis throttle's batch of `allow` calls went as one script call over"
        " all its keys, not a pipeline of one script each (broker/throttle.py; the"
        " client's CPU per call on one core: 36-37 -> 21-23 us in batches of 20, 25-27 ->"
        " 14-15 us in batches of 100): scaled `help:request`, two alternating pairs, ratio"
        " to the echo of the same round 0.27-0.31 (mean 0.28) -> 0.30-0.32 (mean 0.31)."
        " Then the scaled column's PostgreSQL and Redis became the run's own, pinned to"
        " the load's CPU (bench/services.py), where they had been the machine's, which the"
        " kernel ran on the serving core too (py-spy: 14-18% of a serving process's"
        " samples in a socket send to Redis, descheduled): a change of method, not a"
        " faster broker. At one commit (aa58a98), two alternating pairs: 2,140-2,561"
        " acks/s with the serving processes at 86-88% of their core on the machine's"
        " services, 2,482-3,020 at 95-96% on the run's own; ratios to the echo of the"
        " same round 0.23-0.37 (mean 0.31) against 0.31-0.37 (mean 0.34)."
        " Then engine.io's websocket loops kept their 45 s idle timeouts with one timer"
        " per connection (web/eio_websocket.py) instead of a task, a future and a timer"
        " handle created and cancelled for every frame in and out (`asyncio.wait_for`,"
        " in ~11% of an embedded server's samples): `--only request`, alternating runs of"
        " two rounds each (2026-12-06), embedded 3,334, 3,471, 3,968 and 3,497 acks/s"
        " against 3,108 and 3,080 at the commit before (and 2,853-3,350 in three runs of"
        " it earlier that morning); scaled 1,885-2,126 against 1,744-2,067, within the"
        " noise. Four more rounds after the whole run (two `--only request` runs, commit"
        " 4174e50): embedded 0.55, 0.59, 0.58 and 0.59x the echo of the same round, p99"
        " 1.36, 1.23, 1.87 and 1.14x; scaled 0.32, 0.30, 0.35 and 0.30x, p99 2.33, 2.29,"
        " 3.05 and 2.36x."
        " Then one PostgreSQL writer lane per process instead of two (later on"
        " 2026-12-06, a fast morning, the echo at 8,099-9,200 cycles/s;"
        " broker/commit/postgres.py `LANES`): three alternating pairs of `--only request`"
        " runs, two rounds each, patched servers, scaled 2,943-3,545 acks/s (mean 3,249)"
        " with one against 2,503-3,073 (mean 2,814) with two, more in every pair; ratios"
        " to the echo of the same round 0.34-0.40 against 0.29-0.35; p99 47-60 against"
        " 55-70 ms; PostgreSQL at 30-36% of the load's core against 39-42% while carrying"
        " more. One connection's next batch gathers while its current one is under way,"
        " so a busy process's writes go as fewer, bigger fused statements. The price, a"
        " batch waiting for a row lock holding up every write of its process rather than"
        " half of them, did not show: the two-process peak's relay p99 was 28.8 ms with"
        " one lane against 27.1-33.8 ms with two that morning (`bench.peak --only peak`),"
        " and the fault suite passed. The whole run above is the first with one lane"
        " (scaled 0.39x, chat 4,110 relayed/s against 3,467 in the whole run with two"
        " that morning). In the accept scenario, three alternating pairs of `--only accept`"
        " runs: accept -> `session:started` p50 5.7-6.1 ms with one lane against 5.3-5.4 ms"
        " with two, p99 22.0-23.5 against 21.3-21.9 ms: at this low load a write may wait"
        " for the batch ahead of it, which a second lane would have run beside it.",
        "",
        "Where the time goes now (py-spy, `--profile request`): embedded, most of it is "
        "aiohttp, engine.io, socket.io and asyncio doing the same per-event work the echo "
        "does, then the broker's own code and the SQLite writer thread (both pinned to one "
        "core). Scaled (2026-12-05, PostgreSQL and Redis pinned off the serving core, before"
        " the throttle's one script call): of a serving process's samples, ~11% the"
        " throttle's round trips to Redis, ~11% the group commit over asyncpg, ~12% the"
        " fan-out of the cancels' `request:closed` (emit, publish, and the other process"
        " receiving it); the rest is the per-event work the echo does, twice over for two"
        " processes on one core. Again on 2026-12-06, after the throttle's one script call"
        " and engine.io's idle timers: ~15% the group commit, ~9% the throttle (its batch"
        " sender ~5%, the calls waiting on it ~4%), ~8% the fan-out (publishing ~4%, the"
        " listener ~4%). Each ack still waits for its commit: acknowledging first"
        " would be faster "
        "but could lose a queued request in a crash. The baseline echo's own rate swings "
        "from ~6,600 to ~11,500 cycles/s between runs on this shared machine, and the "
        "ratios with it. Tried and not kept (2026-12-04): a batch of two one-statement "
        "writes on PostgreSQL (under load the usual batch: the fused requests and the fused"
        " cancels) run as two statements, each its own transaction, instead of BEGIN, both "
        "and COMMIT: two round trips instead of four, and 240 instead of 400 us of the "
        "client's CPU per pair on one quiet connection; but in the request scenario (three "
        "alternating pairs of `--only request` runs, two rounds each) 1,351 against 1,335 "
        "acks/s, within the noise: PostgreSQL's extra commit costs about what the serving "
        "process saves, on the cores they share. Tried and not kept (2026-12-05): "
        "python-socketio's `async_handlers` off, so an event runs in its connection's "
        "reader instead of a task of its own (the gateway already runs one event per "
        "connection at a time): embedded `help:request`, four alternating runs each, "
        "2,784-3,145 against 2,705-3,033 acks/s, no gain, and a connection's pings would "
        "wait behind its handler. Also not kept (2026-12-05, commit 8538f2f): skipping "
        "python-socketio's packet encoding for a room's emit with no recipient on the "
        "process (a cancel's `request:closed` usually has none, on either process): 5.5 us "
        "saved an emit on each side, but four alternating rounds each gave 2,773-2,989 "
        "against 2,818-2,926 scaled acks/s, no difference. Tried again and not kept "
        "(2026-12-06, on top of the idle timers): every emit looking for its recipients "
        "before building its packet, a single recipient sent to without a task, and each "
        "packet's data serialised once by orjson instead of walked in Python for bytes "
        "first (upstream's `data_is_binary`, on every emit and ack): four alternating "
        "runs each, embedded 3,807-4,479 against 3,720-4,219 acks/s (ratios to the echo "
        "of the same round, means 0.65 against 0.62), scaled 1,844-2,257 against "
        "1,958-2,259, within the noise. Measured for scale, not as a "
        "fix (2026-12-05): a patched "
        "scaled server whose `help:request`/`help:cancel` throttle answered without asking "
        "Redis made 1,844-2,013 acks/s against 1,420-1,780 with it (two alternating pairs):"
        " the throttle's round trip, which each event waits for before its write, costs "
        "about a sixth of the scaled throughput. Keeping the count per person across "
        "processes needs that round trip (or the count in the write's own transaction); it "
        "was left as is. Measured and left as is (2026-12-05, commit 6cfddda): the hot "
        "reads' asyncpg connections per process (`READ_CONNECTIONS` in "
        "broker/db/reader.py), two against the default four, patched servers alternating, "
        "best of two rounds each: scaled `help:request` 1,962, 2,305 and 1,930 acks/s with "
        "two against 2,118, 2,060 and 2,098 with four (the request loop reads little); "
        "scaled accept -> `session:started` p50 / p99 5.6 / 20.2, 5.2 / 23.9 and 6.2 / 23.2"
        " ms with two against 6.1 / 19.5, 5.9 / 29.8 and 7.4 / 26.9 ms with four. A "
        "slightly lower p50 with two, within the noise otherwise; a reconnect storm reads "
        "most (a connect's state, `session:sync`) and was not measured with two, so the "
        "default stayed at four. Where an embedded server's time goes in this scenario "
        "(py-spy, `--profile request`, the same day; 2,998 and 3,257 acks/s against an echo"
        " of 5,866 and 6,351 cycles/s): the SQLite group commit ~9% of the samples on the "
        "event loop (of it ~8% binding the statements' arguments in Python, bind processors"
        " included) and ~6% in its writer thread, the garbage collector's paced collections"
        " ~4.5%, the broker's request and cancel handlers ~10% beside them; the rest is "
        "engine.io, socket.io, aiohttp and the event loop doing what the echo does. No "
        "single part of the broker's own work is the ~16% of a core the embedded stack "
        "lacks for 0.5x in a run like this one.",
        "",
        "The two cores' budget (2026-12-06; the rows `the load's core` and `requests per"
        " load-core-second` since then). The scaled stack's own PostgreSQL and Redis run on"
        " the load's core (bench/services.py), and in the request test that core is as busy"
        " as the serving one: in three runs that day (five scaled rounds), the load 45-47%"
        " of it, PostgreSQL 34-40% and Redis 8-11%, 90-95% in all, while the two serving"
        " processes used 91-95% of theirs. The echo's load alone takes 92-98% of the same"
        " core, so the echo is its load's limit, not its server's. A scaled request cycle"
        " cost that core 0.19-0.28 ms of PostgreSQL and about 0.045 ms of Redis, and the"
        " load 0.22-0.33 ms (0.17-0.23 ms an echo cycle). Even at the lowest of those costs"
        " the load's core carries at most about 2,500 request cycles a second, 0.42x of the"
        " fastest echo of those runs (5,934), however little the serving processes spent:"
        " in this layout 0.5x needs less PostgreSQL work per request as well as a cheaper"
        " server. Where PostgreSQL's share goes (pg_stat_statements, same day): executing"
        " the fused statements, 0.061 ms a row for the enqueue (8.4 rows a call) and 0.076"
        " ms a row for the cancel (7.4 rows a call), about two thirds of its CPU per cycle;"
        " each request row goes into 7 of help_requests' 9 indexes and each cancel into 5"
        " (a change of `status`, which is indexed, is never a heap-only update); commits,"
        " WAL and the protocol take the rest. `plan_cache_mode = force_generic_plan` on"
        " the writer's connections made no difference (PostgreSQL 34-43%, one run). The"
        " scaled figures of one morning also spread wide on their own: 1,365-2,492 acks/s"
        " over ten rounds of the same code, 0.23-0.56x of the echo of the same round."
        " Dropping three of those indexes from the benchmark's template (`school_id`,"
        " `requested_at`, `(status, queued_at)`; an experiment, the reports need them):"
        " PostgreSQL 28-34% of the load's core against 35-38%, and 1,270-1,778 scaled"
        " acks/s against 1,115-1,833 (two alternating pairs of two rounds), no gain: with"
        " the serving core at 87-97% the other limit holds, and only a cheaper request on"
        " both cores moves the figure.",
        "",
        "The whole machine's budget (later on 2026-12-06, a fast morning: the echo at"
        " 8,451-9,213 cycles/s over eight rounds). Both tests keep both cores busy (the"
        " echo's server at 87-90% and its load at 97-99%; the scaled stack's serving"
        " processes at 90-93% and the load's core at 92-97%), so the ratio is the machine's"
        " CPU per cycle: the echo's 0.20-0.22 ms (server 0.10, load 0.11), the scaled"
        " stack's 0.60-0.69 ms over six rounds (serving 0.30-0.34, load 0.14-0.17,"
        " PostgreSQL 0.13-0.16, Redis 0.03-0.04), for 2,703-3,102 acks/s, 0.29-0.35x."
        " However the processes are laid out on two cores, 0.5x needs at most twice the"
        " echo's CPU per cycle, about a third less than this. Sized by an experiment, not"
        " kept: the scaled stack served from one process instead of two (`SCALED_PROCESSES"
        " = 1`, two rounds) made 3,195 and 3,295 acks/s, 0.36 and 0.38x, p99 50 and 57 ms."
        " Its serving process used 77% of its core, 0.23-0.24 ms per cycle against"
        " 0.30-0.34 for two processes sharing a core; PostgreSQL 0.10-0.11 ms per cycle"
        " against 0.13-0.16 (likely because one process's two writer connections fuse bigger"
        " batches than two processes' four); and its load's core was the limit, at 90-91%."
        " Even so the machine spent 0.51-0.53 ms per cycle, 2.4x the echo's: at most about 0.41x on"
        " these two cores with neither idle. No layout reaches the goal: the request has to"
        " cost less on every process it touches (the serving process, PostgreSQL, and the"
        " load, which spends 0.14-0.17 ms per cycle here against 0.11 ms per echo cycle).",
        "",
        "The load's core as the limit (later still on 2026-12-06, one writer lane). Ten"
        " rounds of the unchanged stack made 3,210-3,753 acks/s, 0.34-0.41x of the echo of"
        " the same round (8,865-9,498 cycles/s), with the serving processes at 84-88% of"
        " their core and the load's core at 86-91% (the load 42-48%, PostgreSQL 30-37%,"
        " Redis 9-10%). Two upper bounds, patched servers that break the product, not"
        " kept. First, never publishing a cancel's `request:closed` (the student's other"
        " tabs would not hear of it): the serving processes fell to 75-77%, and the stack"
        " made 3,335 and 3,619 acks/s (0.36 and 0.42x). Second, also not counting the"
        " queue ahead of a new request (every position wrong): 3,640 and 3,677 (0.39 and"
        " 0.41x). In both the load's core rose to 93-94%: with the serving core's work"
        " gone, the load's core stops the stack at about the same rate, within the"
        " unchanged stack's spread. Tried and not kept:"
        " the writer yielding to the event loop once before it takes a small batch"
        " (`asyncio.sleep(0)`, so that handlers ready in the same turn join it), one run:"
        " 3,232 and 3,460 acks/s against 3,210-3,417 in the two runs before it. The"
        " benchmark's request throttle window at 1 s instead of 60 s: its keys held about"
        " 34 entries each instead of about 2,000, as small as a district's limit keeps"
        " them. Redis rose to 11% of the load's core against 9-10%, and the stack made"
        " 3,387-3,730 acks/s against 3,599 and 3,753 (two patched runs, one unpatched)."
        " The request test's load from one process for both servers, as the echo's is,"
        " instead of one process each (two alternating pairs): the load took 45-46% of its"
        " core against 42-45%, and the stack made 3,260-3,634 acks/s against 3,477-3,591."
        " So on this layout the load's core sets the rate. Per scaled cycle it spends"
        " 0.23-0.28 ms: the load 0.12-0.15 ms (0.11 ms an echo cycle), PostgreSQL"
        " 0.09-0.11 and Redis 0.03. For 0.5x of a 9,000-cycle echo, at the 93% it reached,"
        " all three would have to fit in about 0.21 ms. The one redesign left on"
        " PostgreSQL's side, a queue table of its own, was measured before being built"
        " (`bench.queue_design`, \"Queue design\" below): it costs PostgreSQL more per"
        " request, not less.",
        "",
        "Outage bounds (the evening of 2026-12-06, issue 10's frozen-service faults): "
        "each `help:request`/`help:cancel` now waits on its throttle's Redis round trip "
        "at most `REDIS_WAIT_S` (1 s, `asyncio.timeout` around each call), so that a "
        "Redis that answers nothing holds no event. Four alternating runs of `--only "
        "request` each against the commit before (3e6a815, an old-code server beside the "
        "new): scaled 2,534-2,725 acks/s, 0.32-0.38x of the echo of the same round (mean "
        "0.344), against 2,653-2,819, 0.33-0.41x (mean 0.359): within this benchmark's "
        "noise, perhaps a small real cost. One bound per round trip inside "
        "`RedisThrottle` instead (one timer per batch, not per event) matched the code "
        "before in one pair (0.37 and 0.36 against 0.35 and 0.37) but left 3 calls "
        "unanswered in the frozen-Redis fault scenario (a call waits behind the round "
        "trip under way, then its own), so it was not kept.",
        "",
        "Presence judged once per process (2026-12-07, issue 10's one-process "
        "partition: broker/presence_judge.py, and one read of `presence_blind` per "
        "sweep on the scaled stack, nothing on the request path): `--only request` at "
        "22edc08, two rounds: scaled 2,622 and 2,548 acks/s, 0.34x and 0.37x of the "
        "echo of the same round (7,623 and 6,804 cycles/s), p99 61.6 and 71.7 ms; "
        "embedded 0.50x and 0.54x. At the start of the same session, on the code before "
        "(1f48bfe, profiled): scaled 0.35x and 0.37x, embedded 0.54x and 0.57x. "
        "Unchanged, within this benchmark's noise.",
        "",
        "Busy keys' throttle events lent ahead (2026-12-07, broker/throttle.py: a key "
        "back within a second of its last round trip is granted 2, 4, ... events, up to "
        "64 and an eighth of the limit, counted in Redis at the lease's end and spent "
        "without a round trip for a second; the benchmark's students, at ~15 cycles a "
        "second each, ask Redis about twice a second instead of ~30 times). Two "
        "alternating pairs of `--only request` runs (two rounds each) against the commit "
        "before (99c05d9, an old-code server beside the new): scaled 3,180, 3,314, 3,428 "
        "and 3,598 acks/s, 0.376, 0.384, 0.382 and 0.399x of the echo of the same round "
        "(mean 0.385), against 3,146, 3,272, 3,019 and 3,294, 0.354, 0.382, 0.350 and "
        "0.382x (mean 0.367); p99 47.9-59.8 against 51.5-61.1 ms. Redis fell from "
        "7.7-8.7% of the load's core to 3.5-4.1%, the serving processes from 85-89% of "
        "theirs to 80-84%: the machine's CPU per cycle 0.538-0.549 -> 0.502-0.521 ms. "
        "Both cores now have room (the load's core at 82-85%), so what holds the rate is "
        "no longer only CPU.",
        "",
        "One-statement units committed alone (2026-12-07, broker/commit/postgres.py: a "
        "batch whose units are one statement each, after fusion the usual one, sends each "
        "as its own transaction instead of BEGIN, the statements and COMMIT; a unit "
        "failing after others of its batch committed fails alone, `PartialCommit` in "
        "broker/commit/base.py). Timed inside a serving process under the request "
        "scenario (asyncpg's calls wrapped): every round trip of the writer took 2.1-2.7 "
        "ms at the median, BEGIN as long as the statements, most of it the busy event "
        "loop coming back to the writer, and the one lane was never idle (batches of ~37 "
        "units every ~11 ms): four round trips a batch were what held the rate, not "
        "PostgreSQL. Three alternating pairs of `--only request` runs (two rounds each) "
        "against the commit before (944eafd): scaled 3,648-4,061 acks/s, 0.405-0.459x of "
        "the echo of the same round (mean 0.427), against 3,383-3,904, 0.370-0.432x (mean "
        "0.395); p99 44.5-50.1 against 44.8-52.6 ms. (Tried on 2026-12-04, when the "
        "throttle's round trips and four lanes held the rate, the same change made no "
        "difference.)",
        "",
        "Tried and not kept (2026-12-07, on top of the above): a batch's one-statement "
        "units of different keys run two at a time, each on a connection of the lane (the "
        "fused requests beside the fused cancels, one round trip's wait for both; a unit "
        "with an `order` or no key alone). Three alternating pairs against the commit "
        "with the units committed one after another: 0.396-0.437x of the echo of the same "
        "round (mean 0.417) against 0.415-0.452x (mean 0.438), the serving processes at "
        "79-82% of their core against 82-86%: two tasks and two connections' wake-ups a "
        "batch cost more than the round trip they saved.",
        "",
        "Each unit answered once its statement committed (2026-12-07, "
        "broker/commit/base.py `answer`, broker/commit/postgres.py): the fused requests' "
        "callers are answered as soon as their statement returns, one round trip before "
        "the fused cancels' statement ends the batch, instead of all at the end. Three "
        "alternating pairs of `--only request` runs (two rounds each) against the commit "
        "before (177a64d, after the rerun above): scaled 4,071-4,546 acks/s, 0.436-0.499x "
        "of the echo of the same round (mean 0.466), against 3,710-4,119, 0.403-0.451x "
        "(mean 0.429); p99 40.2-66.2 (40.2-52.2 in five of six rounds) against 44.8-48.5 "
        "ms. "
        "The scaled chat scenario, two alternating pairs of `--only chat` runs against "
        "the same commit: 4,406 and 5,419 relayed/s (p99 73 and 50 ms) against 4,272 and "
        "4,034 (p99 71 and 84 ms), no writer lock give-ups in any (counted by a wrapped "
        "server); the whole run's 3,550/s in the table above was a low round.",
        "",
        "Tried and not kept (2026-12-07, after the above): a batch's fused requests and "
        "its fused student cancels as one statement (a UNION ALL of the two over one "
        "snapshot, joined only when no cancel is of a request or a student of the same "
        "batch), one round trip a batch instead of two. Seven alternating pairs of "
        "`--only request` runs (two rounds each) against 457f215, on a noisy morning "
        "(the echo at 4,669-10,700 cycles/s): scaled 0.303-0.625x of the echo of the "
        "same round (mean 0.417) against 0.346-0.606x (mean 0.460), 3,469 against 3,589 "
        "acks/s on average; the scaled rate over the embedded rate of the same round, "
        "which the change does not touch, 0.694 against 0.767 on average. The requests' "
        "callers now waited for the cancels' part too, one round trip later than when "
        "each statement's callers are answered as it commits.",
        "",
        "Checked after the whole run above (2026-12-07, at 964529b), whose embedded "
        "chat figure, 3,042 relayed/s, was lower than the morning's 5,077: two "
        "alternating pairs of `--only chat` runs (embedded) against c7a55c8, the commit "
        "before the throttle answered at once (bench/RESULTS.md, Throttle), gave 5,755 "
        "and 5,167 relayed/s against 4,506 and 5,669 (p99 48.5 and 54.9 ms against 60.1 "
        "and 50.2 ms): a low round, not a regression.",
        "",
        "PostgreSQL's share looked into (2026-12-07, at fa3b776, nothing changed): the "
        "scaled request test with `pg_stat_statements` on the run's own PostgreSQL (a "
        "temporary option). In 10 s of the timed window the fused cancel ran 895 times "
        "over 17,933 rows, 1,936 ms executing (108 us a row), the fused enqueue 853 times "
        "over 18,046 rows, 1,126 ms (62 us a row), everything else under 2%; neither is "
        "planned again (0 plans: PostgreSQL keeps their generic plans). The two writer "
        "backends carry all of PostgreSQL's ~30% of the load's core. In EXPLAIN ANALYZE a "
        "cancel finds its row in microseconds and spends the rest updating it: never a "
        "heap-only update, since `status` is in indexed predicates, so each cancelled row "
        "goes into five indexes. With `bench.queue_design`'s statements on one connection "
        "(four alternating rounds): PostgreSQL's CPU a cycle was 280, 100 and 85 us at 5, "
        "20 and 50 requests a batch (a fixed ~1.2 ms per enqueue and cancel pair), while "
        "dropping `ix_help_requests_status_queued_at`, dropping the reports' three "
        "indexes or not counting the place ahead stayed within the noise (72-132 us). The "
        "test's batches already hold ~20 requests; bigger ones would mean holding acks "
        "back on purpose.",
        "",
        "A chat message without a `client_id` given one by the store (2026-12-07, aa46708: "
        "so that a write whose answer was lost, run again, stores it once; the benchmark's "
        "chat clients send none, the pages always send one). Four alternating pairs of "
        "`--only chat` runs against e4892c3 on a slow afternoon (the echo at 3,300-5,050 "
        "cycles/s): scaled 2,359, 2,089, 1,952 (a test ran beside it) and 2,795 relayed/s "
        "against 2,495, 1,792, 2,214 and 1,924; embedded 3,015, 3,283, 2,525 and 2,844 "
        "against 2,970, 2,166, 2,846 and 2,842: within the noise. The same afternoon's "
        "`--only request` (a1f9e38, two rounds, the echo at 3,899 and 3,783 cycles/s): "
        "scaled 1,805 and 1,819 acks/s, 0.46x and 0.48x, p99 104.9 and 99.1 ms (2.49x and "
        "2.08x the echo's); embedded 0.68x and 0.79x.",
    ]
    return "\n".join(lines) + "\n"


def pyspy() -> str | None:
    return os.environ.get("HH_BENCH_PYSPY") or shutil.which("py-spy")


PACKAGES = (
    "sqlalchemy",
    "aiosqlite",
    "socketio",
    "engineio",
    "aiohttp",
    "asyncpg",
    "redis",
    "orjson",
    "uvloop",
    "asyncio",
    "broker",
    "web",
    "routing",
    "json",
    "sqlite3",
    "threading",
    "queue",
    "greenlet",
    "logging",
)


def _frame_path(frame: str) -> str:
    """A py-spy frame's file, ``web/sio.py`` of ``f (web/sio.py:12)`` or ``f (web/sio.py)``."""
    m = re.search(r"\((.*?)(?::\d+)?\)$", frame)
    return m.group(1) if m else frame


def _package(frame: str) -> str:
    path = _frame_path(frame)
    parts = re.split(r"[/\\]", path)
    if "site-packages" in parts:  # the installed package, not a subpackage (redis/asyncio)
        top = parts[parts.index("site-packages") + 1]
        return top if top in PACKAGES else "other"
    for part in reversed(parts[:-1]):
        if part in PACKAGES:
            return part
    stem = parts[-1].removesuffix(".py") if parts else path
    return stem if stem in PACKAGES else "other"


OWN_DIRS = ("broker", "routing", "web", "i18n", "bench")


def _ours(frame: str) -> bool:
    """Whether a py-spy frame is the project's code. py-spy prints a file relative to the
    ``sys.path`` entry it was found under (``web/sio.py``), or absolute when none fits."""
    path = _frame_path(frame)
    if ".venv" in path or "site-packages" in path:
        return False
    if path.startswith(str(ROOT) + "/"):
        return True
    return path.split("/", 1)[0] in OWN_DIRS and "/" in path


def print_spy(name: str, path: Path, limit: int = 25) -> None:
    """Summarise py-spy's raw (collapsed) stacks: self time by package and by function,
    and inclusive time of the project's own functions."""
    leaf: dict[str, int] = {}
    pkg: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
        pkg[_package(frames[-1])] = pkg.get(_package(frames[-1]), 0) + n
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            if _ours(f):
                incl[f] = incl.get(f, 0) + n
    if not total:
        print(f"(no samples for {name})")
        return
    print(f"\n==== py-spy of the broker, {name}: {total} samples (active threads) ====")
    print("self time by package:")
    for k, v in sorted(pkg.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("self time by function:")
    for k, v in sorted(leaf.items(), key=lambda kv: -kv[1])[:limit]:
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("inclusive time of the project's functions:")
    for k, v in sorted(incl.items(), key=lambda kv: -kv[1])[:limit]:
        print(f"  {100 * v / total:5.1f}%  {k.replace(str(ROOT) + '/', '')}")


def print_profile(path: Path, limit: int = 30) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)


# -- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument(
        "--scaled",
        action="store_true",
        help="also run on PostgreSQL + Redis (127.0.0.1) as a second column",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--results", type=Path, default=None, help="write to this file instead")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers/load to CPUs")
    parser.add_argument(
        "--profile",
        choices=["request", "accept", "chat"],
        default=None,
        help="run that scenario's broker under cProfile and print the top",
    )
    parser.add_argument(
        "--only",
        choices=["request", "accept", "chat", "memory"],
        default=None,
        help="run only the baseline and this broker scenario (no write)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    raise_nofile()
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hh-bench-broker-"))
    bench = Bench(sizes, tmp, pinned=pinned, profile=args.profile)
    stacks = {"embedded": Stack("embedded", tmp)}
    figures: dict[str, dict[str, Any]] = {}
    try:
        if args.scaled:
            stacks.update(scaled_stack(tmp, bench.load_cpu))
        for stack in stacks.values():
            stack.prepare()
        # Baseline and broker requests alternate, best of `rounds` each, so a burst of
        # other work on the shared machine cannot sink one side only.
        bases: list[dict[str, Any]] = []
        requests: dict[str, list[dict[str, Any]]] = {kind: [] for kind in stacks}
        for r in range(1, sizes.rounds + 1):
            log(f"baseline echo ({sizes.clients} clients), round {r}/{sizes.rounds} ...")
            bases.append(bench.echo())
            log(f"baseline: {compact(bases[-1])}")
            if args.only not in (None, "request"):
                break
            for kind, stack in stacks.items():
                requests[kind].append(bench.stack_figures(stack, ("request",))["request"])
        base = max(bases, key=lambda b: b["per_s"])
        base["rounds"] = [round(b["per_s"]) for b in bases]
        for kind, stack in stacks.items():
            figures[kind] = {}
            if requests[kind]:
                figures[kind]["request"] = max(requests[kind], key=lambda f: f["per_s"])
                figures[kind]["request"]["rounds"] = [round(f["per_s"]) for f in requests[kind]]
            rest = ("accept", "chat", "memory") if args.only is None else (args.only,)
            figures[kind].update(
                bench.stack_figures(stack, tuple(n for n in rest if n != "request"))
            )
    finally:
        for stack in stacks.values():
            stack.cleanup()
        try:
            for name, out, proc in bench.spies:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if out.exists():
                    print_spy(name, out)
            for name, path in bench.profiles.items():
                if path.exists():
                    print(f"\n==== cProfile of the broker, {name} ====")
                    print_profile(path)
        finally:
            if os.environ.get("HH_BENCH_KEEP_TMP"):
                log(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    if args.only:
        return 0
    body = report(
        sizes, base, figures, pinned=pinned, quick=args.quick,
        services=stacks["scaled"].describe() if "scaled" in stacks else "",
    )
    print()
    print(body)
    v = {k: verdicts(base, f) for k, f in figures.items()}
    for kind, checks in v.items():
        log(
            f"{kind}: "
            + ", ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, (_, ok) in checks.items())
        )
    # A profiled run is slower than a real one: its figures never replace the results.
    target = args.results or (None if args.quick or args.no_write or args.profile else RESULTS)
    if target is not None:
        write_section(SECTION, body, target)
        log(f"wrote the {SECTION!r} section of {target}")
    log(f"total {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
