"""Private services and real broker processes for the fault suite.

* :class:`Postgres`: an ``initdb`` cluster in a temporary directory on a free port, stopped
  and started on demand with ``pg_ctl``. initdb refuses to run as root, so as root every
  PostgreSQL command runs as the ``postgres`` user (or ``nobody``) through ``runuser``, and
  that user owns the directory.
* :class:`Redis`: a ``redis-server`` without persistence on a free port: FLUSHALL, restart
  empty (kill -9, then start again on the same port), kill its pub/sub connections.
* :class:`Cluster`: one test's district: a database copied from a migrated template, two
  ``homework-help serve`` processes and a ``homework-help worker`` on those services, each
  with its output in a log file; kill -9 and restart of a process.

Nothing here touches the machine's shared PostgreSQL (5432) and Redis (6379).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from tests.broker.harness import SECRET

if TYPE_CHECKING:
    from tests.tcp_link import Link

HOMEWORK_HELP = Path(sys.executable).with_name("homework-help")
LOG_TAIL_LINES = 120


_ports = random.Random()
_children: list[subprocess.Popen[bytes]] = []  # killed at exit if a teardown never ran


@atexit.register
def _kill_children() -> None:
    for child in _children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the process that started it dies,
    however it dies (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing). Linux ties it to the
    *thread* that started the child: start children from the event loop's thread, never
    from ``asyncio.to_thread`` (whose threads end with each test's loop). Here SIGKILL, so a
    killed pytest leaves no broker or redis-server running (PostgreSQL, detached by
    ``pg_ctl``, outlives a SIGKILL of pytest; a SIGTERM stops it); bench/peak.py's servers
    get SIGTERM."""

    def arm() -> None:
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return arm


def clean_up_on_sigterm() -> None:
    """A SIGTERM to the test process (a CI timeout, ``pkill``) runs the exit handlers (the
    PostgreSQL cluster, which ``pg_ctl`` detached, and the children) before it exits."""

    def handler(signum: int, frame: Any) -> None:
        atexit._run_exitfuncs()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    """A free port below the ephemeral range (32768-60999 on Linux), so that the outgoing
    connections of everything else on the machine cannot take it between now and bind."""
    while True:
        port = _ports.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


_EXCEPTION_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)):", re.M)


class ServiceUnavailable(RuntimeError):
    """A program the suite needs is not installed: the suite skips (fails under CI)."""


def _version(path: str) -> float:
    match = re.search(r"postgresql/(\d+(?:\.\d+)?)/", path + "/")
    return float(match.group(1)) if match else 0.0


def find_pg_bin() -> Path:
    """The directory holding initdb and pg_ctl: ``HH_FAULTS_PG_BIN``, the newest
    /usr/lib/postgresql/*/bin, or wherever ``initdb`` is on PATH."""
    candidates = [os.environ.get("HH_FAULTS_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise ServiceUnavailable(
        "initdb/pg_ctl not found in HH_FAULTS_PG_BIN, /usr/lib/postgresql/*/bin or PATH "
        "(apt-get install postgresql)"
    )


def _run(argv: list[str], what: str, timeout: float = 60) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n"
            f"{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])


def _child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (from /proc: PostgreSQL's backends)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = Path(stat).read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            if int(text[text.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(text.split()[0]))
    return found


class Postgres:
    """A PostgreSQL cluster of our own, in a temporary directory.

    ``durable=False`` (the fault suite) runs without fsync, which loses nothing when only
    PostgreSQL crashes; ``durable=True`` (the benchmarks) keeps PostgreSQL's defaults, so a
    commit costs what it costs in production."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin = find_pg_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hh-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_user = self._as_user()
        self.up = False
        atexit.register(self.destroy)  # idempotent; the session fixture calls it first

    def _as_user(self) -> list[str]:
        """initdb and postgres refuse root: run them as an unprivileged user who owns root."""
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise ServiceUnavailable("running as root without runuser: cannot start initdb")
        for name in ("postgres", "nobody"):
            try:
                user = pwd.getpwnam(name)
            except KeyError:
                continue
            os.chown(self.root, user.pw_uid, user.pw_gid)
            return [runuser, "-u", name, "--"]
        raise ServiceUnavailable(
            "running as root and no 'postgres' or 'nobody' user to run initdb as; "
            "run the suite as a non-root user"
        )

    def init(self) -> Postgres:
        _run(
            [
                *self.as_user,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        for attempt in range(3):
            try:
                self.start()
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = free_port()  # taken since it was picked: try another
        return self

    def _ctl(self, *args: str) -> None:
        try:
            _run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args], "pg_ctl")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\npostgres.log:\n{tail(self.log, 30)}") from None

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            # fsync off: a crash of postgres (not of the machine) loses nothing with it;
            # synchronous_commit stays on, so an acknowledged commit survives `immediate`.
            + ("" if self.durable else " -c fsync=off -c full_page_writes=off")
            + " -c max_connections=300"
            # a lock waited for past deadlock_timeout is logged: a failed scenario's report
            # shows it (Cluster.logs), as it showed the cycle between two processes'
            # batches that broker/commit/postgres.py now bounds
            " -c log_lock_waits=on"
        )
        self._ctl("-l", str(self.log), "-w", "-t", "30", "-o", options, "start")
        self.up = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` (an operator's stop) or ``immediate`` (a crash)."""
        self._ctl("-m", mode, "-w", "-t", "30", "stop")
        self.up = False

    async def outage(self, seconds: float, mode: str = "fast") -> None:
        """Stop PostgreSQL, keep it stopped ``seconds``, start it again."""
        await asyncio.to_thread(self.stop, mode)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.start)

    async def freeze(self, seconds: float) -> None:
        """Stop every PostgreSQL process (SIGSTOP) for ``seconds``, then let them go on
        (SIGCONT): connections stay open and nothing answers, as over a black-holed network
        or a server stuck on its disk."""
        master = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        pids = [master, *_child_pids(master)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    async def read_only(self, seconds: float) -> None:
        """Take no writes for ``seconds`` (``default_transaction_read_only`` for every session,
        the open ones included, through the configuration file and a reload), as a standby
        or a primary demoted in a failover answers: SQLSTATE 25006 for every write."""

        async def set_to(value: str) -> None:
            conn = await asyncpg.connect(self.url("postgres"))
            try:
                await conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
                await conn.execute("SELECT pg_reload_conf()")
            finally:
                await conn.close()

        await set_to("on")
        try:
            await asyncio.sleep(seconds)
        finally:
            await set_to("off")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def dump(self, database: str, table: str, path: Path) -> None:
        """``table`` as CSV in ``path`` (psql, so that it works outside any event loop)."""
        sql = f"COPY (SELECT * FROM {table}) TO STDOUT WITH CSV HEADER"
        with open(path, "wb") as out:
            subprocess.run(
                [str(self.bin / "psql"), "-X", "-q", "-c", sql, self.url(database)],
                stdout=out,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )

    async def create_database(self, name: str, template: str | None = None) -> str:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            suffix = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.data.exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    """A redis-server of our own: no persistence, so a restart comes back empty."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server)")
        self.exe = exe
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hh-faults-redis-"))
        self.log = self.root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        """Start redis-server and wait for its PONG, here (the fixture's thread)."""
        self._spawn()
        return self._wait_ready()

    async def launch(self) -> Redis:
        """Start redis-server from the event loop's thread and wait for it in a worker
        thread. Not ``to_thread(start)``: PR_SET_PDEATHSIG (:func:`die_with_parent`) is
        tied to the thread that started the child, and the loop's worker threads end with
        the test, so a Redis started from one died a moment after the test that started
        it, and the next test's FLUSHALL was refused (seen once under load)."""
        self._spawn()
        return await asyncio.to_thread(self._wait_ready)

    def _spawn(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--maxclients",
                    "10000",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        _children.append(self.proc)

    def _wait_ready(self) -> Redis:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{tail(self.log)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING within 10 s:\n{tail(self.log)}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    async def restart_empty(self, down_s: float = 0.0) -> None:
        """kill -9, stay down ``down_s``, start again on the same port with no data."""
        self.kill()
        await asyncio.sleep(down_s)
        await self.launch()

    async def freeze(self, seconds: float) -> None:
        """Stop redis-server (SIGSTOP) for ``seconds``, then let it go on: connections stay
        open and nothing answers, as over a black-holed network."""
        assert self.proc is not None
        pid = self.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    async def command(self, *args: str) -> Any:
        client = aioredis.Redis(host="127.0.0.1", port=self.port)
        try:
            return await client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    async def flushall(self) -> None:
        await self.command("FLUSHALL")

    async def kill_pubsub(self) -> int:
        """Close every pub/sub connection (what a network blip does to them)."""
        return int(await self.command("CLIENT", "KILL", "TYPE", "pubsub"))

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Process:
    """One ``homework-help`` process (a server gets ``--port``); its output goes to ``log``,
    appended across restarts."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], log: Path, port: int | None
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.up = False  # started and (for a server) answering /healthz
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def launch(self) -> None:
        """Start and wait until ready; a port taken meanwhile is swapped for another."""
        for attempt in range(3):
            self.start()
            try:
                return await self.ready()
            except RuntimeError:
                if attempt == 2 or "address already in use" not in tail(self.log, 5):
                    raise
                self.port = free_port()

    def start(self) -> None:
        self.starts += 1
        out: IO[bytes]
        with open(self.log, "ab") as out:
            out.write(f"===== {self.name} start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            port = ["--port", str(self.port)] if self.port is not None else []
            self.proc = subprocess.Popen(
                [*self.argv, *port],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        _children.append(self.proc)

    async def ready(self, timeout: float = 30) -> None:
        if self.port is None:
            self.up = True
            return
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited while starting:\n{tail(self.log)}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(
                        f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as resp:
                        if resp.status == 200 and (await resp.json()).get("ok"):
                            self.up = True
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} not healthy within {timeout} s:\n{tail(self.log)}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        self.up = False
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 10) -> float:
        """SIGTERM, then SIGKILL after ``timeout``: how long it took to exit (inf if killed)."""
        self.up = False
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
            return float("inf")
        return time.monotonic() - started

    def tracebacks(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
        except FileNotFoundError:
            return 0

    def exceptions(self) -> Counter[str]:
        """The exception types in the log's tracebacks (each link of a chain counts)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return Counter()
        return Counter(m.group(1) for m in _EXCEPTION_LINE.finditer(text))


class Cluster:
    """Two ``serve`` processes and a ``worker`` on a private PostgreSQL and Redis."""

    def __init__(
        self,
        pg: Postgres,
        redis: Redis,
        database: str,
        root: Path,
        grace_s: float = 2.0,
        env: Mapping[str, str] | None = None,
        servers: int = 2,
    ) -> None:
        self.pg = pg
        self.redis = redis
        self.root = root
        self.database = database
        self.grace_s = grace_s
        self.dsn = pg.url(database)
        base = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "REDIS_URL": redis.url,
            "HH_SECRET_KEY": SECRET,
            "HH_PSEUDONYM_SECRET": SECRET,
            "HH_GRACE_SECONDS": str(grace_s),
            "HH_DEMO": "0",
            "HH_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.servers = [
            Process(
                f"serve-{i}",
                [str(HOMEWORK_HELP), "serve"],
                base,
                root / f"serve-{i}.log",
                port,
            )
            for i, port in enumerate(free_port() for _ in range(servers))
        ]
        self.redis_links: dict[int, Link] = {}  # set by the start_cluster fixture
        self.db_links: dict[int, Link] = {}  # set by the start_cluster fixture
        self.worker = Process(
            "worker", [str(HOMEWORK_HELP), "worker"], base, root / "worker.log", None
        )

    @property
    def processes(self) -> list[Process]:
        return [*self.servers, self.worker]

    @property
    def sweep_s(self) -> float:
        """The broker's sweep interval for this grace period (Broker.sweep_interval)."""
        return max(0.05, min(2.0, self.grace_s / 4))

    async def start(self) -> Cluster:
        """Start the servers, and once they answer the worker (which nothing waits for:
        starting it alongside only slows the servers down on two cores)."""
        await asyncio.gather(*(s.launch() for s in self.servers))
        self.worker.start()
        return self

    def url(self, index: int) -> str:
        return self.servers[index].url

    def pick(self, home: int, avoid: int | None = None) -> int:
        """The server a (re)connecting client reaches: its home if that is up, else the next
        one up (what a load balancer with health checks does)."""
        n = len(self.servers)
        order = [(home + k) % n for k in range(n)]
        for index in order:
            if index != avoid and self.servers[index].up:
                return index
        return home

    async def kill9(self, index: int) -> None:
        await asyncio.to_thread(self.servers[index].kill9)

    async def terminate(self, index: int, timeout: float = 15) -> float:
        """SIGTERM (a deploy): seconds until the process exited, inf if it had to be killed."""
        return await asyncio.to_thread(self.servers[index].stop, timeout)

    async def restart(self, index: int) -> None:
        await self.servers[index].launch()

    async def stop(self, timeout: float = 3) -> None:
        """Tear down: SIGTERM, SIGKILL after ``timeout`` (the SIGTERM scenario is where a
        graceful stop is judged; here it would only slow the suite down)."""
        await asyncio.gather(*(asyncio.to_thread(p.stop, timeout) for p in self.processes))

    def tracebacks(self) -> dict[str, int]:
        return {p.name: p.tracebacks() for p in self.processes}

    def log_of(self, name: str) -> Path:
        return next(p.log for p in self.processes if p.name == name)

    def exceptions(self) -> Counter[str]:
        return sum((p.exceptions() for p in self.processes), Counter())

    def logs(self) -> str:
        parts = []
        for p in self.processes:
            parts.append(f"----- {p.name} ({p.tracebacks()} tracebacks; {p.log}) -----")
            parts.append(tail(p.log))
        waits = [
            line for line in tail(self.pg.log, 10_000).splitlines()
            if "deadlock" in line or "lock timeout" in line or "still waiting" in line
        ]
        parts.append(f"----- lock waits in {self.pg.log} (every test's database) -----")
        parts.append("\n".join(waits[-LOG_TAIL_LINES:]) or "(none)")
        return "\n".join(parts)
