"""PostgreSQL and Redis of a benchmark's own, off the serving core.

``bench.broker --scaled`` pins the serving processes to CPU 0 and its load to CPU 1, so that
a server never has more than the one core the baseline echo gets. PostgreSQL and Redis are
the broker's dependencies, which a district runs on hosts of their own: left to float, the
kernel ran them on the serving core too, between the serving processes' own turns, and woke
them there on every send (py-spy on a scaled serving process: 14-18% of its samples in a
socket send to Redis, descheduled). :class:`OwnServices` starts a PostgreSQL cluster
(``initdb`` on a free port, PostgreSQL's durable defaults: fsync and full-page writes on)
and a ``redis-server`` (no persistence) for one benchmark run and pins both, with every
process PostgreSQL forks later, to the load's CPU. That core then carries the load and
both services: in the scaled request test ~45% load, ~30-40% PostgreSQL and ~10% Redis, so
it is as busy as the serving core (``bench.broker`` reports each share: "the load's core";
bench/RESULTS.md, "The two cores' budget").

Nothing here touches the machine's shared PostgreSQL (5432) and Redis (6379); the fault
suite's :mod:`tests.faults.cluster` does the starting and stopping.
"""

from __future__ import annotations

import contextlib
import os

import psutil

from tests.faults.cluster import Postgres, Redis, ServiceUnavailable

__all__ = ["OwnServices", "ServiceUnavailable"]


class OwnServices:
    """A durable PostgreSQL cluster and a Redis server, started by :meth:`start`, pinned to
    ``cpu`` (None: not pinned), removed by :meth:`destroy`."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self.postgres = Postgres(durable=True)
        self.redis = Redis()

    def start(self) -> OwnServices:
        self.postgres.init()
        self.redis.start()
        self.pin()
        return self

    @property
    def pg_admin(self) -> str:
        return self.postgres.url("postgres")

    def pg_url(self, database: str) -> str:
        return self.postgres.url(database)

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def pids(self) -> list[int]:
        """PostgreSQL's postmaster with every process it has forked, and redis-server."""
        pids: list[int] = []
        for root in self.roots().values():
            with contextlib.suppress(psutil.Error):
                master = psutil.Process(root)
                pids += [master.pid, *(child.pid for child in master.children(recursive=True))]
        return pids

    def roots(self) -> dict[str, int]:
        """Each running service's first process (PostgreSQL's postmaster, which forks a
        backend per connection; redis-server), by name."""
        roots: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError, IndexError):
            pidfile = self.postgres.data / "postmaster.pid"
            roots["PostgreSQL"] = int(pidfile.read_text().split()[0])
        if self.redis.proc is not None:
            roots["Redis"] = self.redis.proc.pid
        return roots

    def pin(self) -> None:
        """Pin the services' processes to :attr:`cpu`. PostgreSQL forks a backend per
        connection from its postmaster, and a fork keeps its parent's CPUs, so the
        connections made later are pinned too."""
        if self.cpu is None or not hasattr(os, "sched_setaffinity"):
            return
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, {self.cpu})

    def destroy(self) -> None:
        self.redis.destroy()
        self.postgres.destroy()
