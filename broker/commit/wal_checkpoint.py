"""Checkpoint a SQLite write-ahead log beside the writer, so a commit never waits on fsync.

In WAL mode with ``synchronous=NORMAL`` a commit only appends pages to the log; it is the
checkpoint that syncs the log, copies its pages into the database file and syncs that. SQLite
runs it inside the commit that takes the log past ``wal_autocheckpoint`` pages, on the
writer's connection: every unit of that batch, and every unit queued behind it, waits for two
fsyncs. Measured on this project's writer (``bench.broker --only request``, embedded, ~245
batches a second): the 4,000-page checkpoint came every ~0.47 s and held its batch 15-24 ms
against a median batch of 0.6 ms, mostly waiting on the disk (a lone checkpoint of ~5,000
pages: 13-21 ms of wall time, 2-6 ms of CPU). Taking them off the commit path took the
request's 99th percentile from 44-47 to 37-40 ms (four alternating runs each; with no
checkpoint at all, 35-40 ms). A cloud volume's fsync is slower still.

:class:`WalCheckpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection and a daemon
thread of its own, :data:`EVERY_S` after the writer last said it committed
(:meth:`~WalCheckpointer.wrote`), so the log is copied back in small steps while the writer
goes on. The writer keeps its own ``wal_autocheckpoint`` as the backstop: when it comes due
there is only the tail written since the last pass to copy (a checkpoint of ~150 pages:
~2 ms), and it is what lets the log start over from its beginning (a pass made while the
writer keeps appending never catches up with it). Nothing blocks here: a PASSIVE checkpoint
takes no lock a writer or reader waits for and gives up on what it cannot copy.

Guarantees: durability is unchanged (a committed transaction is in the log before the
checkpointer can see it; a checkpoint only copies it), and a power loss can lose what was
committed since the log was last synced: while the checkpointer keeps up, that is about
:data:`EVERY_S` and one pass ago, instead of since the writer's last checkpoint. A failing
checkpoint (an unreadable file, a full disk) is logged, at most once a minute, and tried
again after the next commit; it never reaches the writer or its callers. With the
checkpointer gone, the writer checkpoints as it always did.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from broker.db.handoff import start_thread
from broker.log_pace import LogPace

log = logging.getLogger(__name__)

EVERY_S = 0.1  # a pass at most this often, and only after a commit
LOG_EVERY_S = 60.0  # a failing checkpoint is logged at most this often

Passed = tuple[int, int, int]  # PRAGMA wal_checkpoint's (busy, log pages, checkpointed pages)


class WalCheckpointer:
    """Passive checkpoints of one SQLite database file, on a thread of their own.

    :meth:`wrote` (from any thread; costs one ``Event.set``) asks for a pass; the thread
    makes one :data:`EVERY_S` at most, each through :meth:`checkpoint`, which tests call
    directly. :meth:`start` and :meth:`stop` bracket the thread; ``stop`` waits for it."""

    def __init__(
        self, path: str, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.every_s = every_s
        self.passes = 0  # checkpoints that ran (busy or not)
        self.failures = 0
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._log_pace = LogPace(LOG_EVERY_S, clock)

    def wrote(self) -> None:
        """The writer committed: a pass is due."""
        self._wrote.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = start_thread(self._serve, "sqlite-checkpointer")

    def stop(self) -> None:
        """End the thread (after the pass under way, if any) and close its connection."""
        self._stopping.set()
        self._wrote.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self._close()
        self._stopping.clear()  # startable again: a committer's writer restarts on use
        self._wrote.clear()

    def checkpoint(self) -> Passed | None:
        """One passive checkpoint; its ``(busy, log, checkpointed)``, or None if it failed
        (logged at most once a minute)."""
        try:
            if self._conn is None:
                # Used by one thread at a time: the checkpointer's, then :meth:`stop`'s.
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            self.failures += 1
            self._close()
            if self._log_pace.due():
                log.warning(
                    "checkpointing %s failed (%s: %s); the writer checkpoints as before, "
                    "%d failure(s) so far", self.path, type(error).__name__, error, self.failures,
                )
            return None
        self.passes += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _serve(self) -> None:
        while True:
            self._wrote.wait()
            if self._stopping.is_set():
                return
            self._wrote.clear()
            self.checkpoint()
            if self._stopping.wait(self.every_s):
                return

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


__all__ = ["EVERY_S", "WalCheckpointer"]
