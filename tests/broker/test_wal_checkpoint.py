"""The SQLite writer's checkpoints beside it (broker/commit/wal_checkpoint.py)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

import broker.commit.sqlite
from broker.commit import SqliteCommitter, committer_for
from broker.commit.wal_checkpoint import WalCheckpointer
from broker.db.engine import create_engine
from tests.broker.conftest import prepare_database
from tests.broker.test_group_commit import SCHOOLS, school


def wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies pages back
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return conn


def write(conn: sqlite3.Connection, n: int) -> None:
    for i in range(n):
        conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}" * 20,))


def test_a_pass_copies_every_committed_page_back(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    writer = wal_database(path)
    write(writer, 200)
    checkpointer = WalCheckpointer(str(path))
    try:
        busy, logged, copied = checkpointer.checkpoint() or (1, 0, -1)
        assert busy == 0 and logged > 0 and copied == logged
        write(writer, 10)  # the log, wholly copied back, started over; the next pass copies it
        busy, logged_after, copied_after = checkpointer.checkpoint() or (1, 0, -1)
        assert busy == 0 and copied_after == logged_after
        assert 0 < logged_after < logged
        assert checkpointer.passes == 2 and checkpointer.failures == 0
        # Every row is in the database file itself: a copy of it without its log has them.
        shutil.copyfile(path, tmp_path / "copy.db")
    finally:
        checkpointer.stop()
        writer.close()
    reader = sqlite3.connect(tmp_path / "copy.db")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (210,)
    reader.close()


def test_the_thread_passes_after_a_write_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    writer = wal_database(path)
    checkpointer = WalCheckpointer(str(path), every_s=0.0)
    passed = threading.Event()
    checkpoint = checkpointer.checkpoint

    def noted() -> tuple[int, int, int] | None:
        result = checkpoint()
        passed.set()
        return result

    checkpointer.checkpoint = noted  # type: ignore[method-assign]
    checkpointer.start()
    try:
        assert not passed.wait(0.05)  # nothing written, nothing to do
        write(writer, 50)
        checkpointer.wrote()
        assert passed.wait(10)
    finally:
        checkpointer.stop()
        writer.close()
    assert checkpointer.passes >= 1 and checkpointer._thread is None


def test_a_failing_checkpoint_is_logged_once_and_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    checkpointer = WalCheckpointer(str(tmp_path / "missing" / "t.db"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="broker.commit.wal_checkpoint"):
        assert checkpointer.checkpoint() is None
        assert checkpointer.checkpoint() is None
        now[0] = 61.0
        assert checkpointer.checkpoint() is None
    assert checkpointer.failures == 3 and checkpointer.passes == 0
    lines = [r for r in caplog.records if "checkpointing" in r.getMessage()]
    assert len(lines) == 2  # the first, then the next one a minute later
    checkpointer.stop()


async def test_the_writer_tells_its_checkpointer_of_each_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's own checkpoint is pushed out of reach: any page copied back was the
    # checkpointer's doing.
    monkeypatch.setattr(broker.commit.sqlite, "WAL_AUTOCHECKPOINT_PAGES", 10**6)
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh.db'}"
    await prepare_database(url)
    engine = create_engine(url)
    writer = committer_for(engine)
    assert isinstance(writer, SqliteCommitter)
    told = threading.Event()
    monkeypatch.setattr(writer.checkpointer, "wrote", told.set)
    try:
        assert await writer.write([(SCHOOLS.insert(), school("w"))]) == [1]
        assert told.is_set()
        busy, logged, copied = writer.checkpointer.checkpoint() or (1, 0, -1)
        assert busy == 0 and copied == logged > 0
    finally:
        await writer.close()
        await engine.dispose()
    assert writer.checkpointer._thread is None
