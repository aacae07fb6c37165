"""Merging replayed SQLite files, and copying a database into PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from broker.db.engine import create_engine
from broker.db.merge import copy_database, merge_sqlite
from broker.db.models import audit_log, schools
from broker.migrate import migrate
from broker.settings import Settings

AT = dt.datetime(2024, 2, 5, 18, tzinfo=dt.UTC)


async def _filled(path: Path, actor: str) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(Settings(database_url=url))
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(schools.insert(), [
                {"id": "s1", "name": f"School one ({actor})", "region": "East",
                 "low_grade": 0, "high_grade": 5, "kind": "elementary"},
                {"id": f"s-{actor}", "name": actor, "region": "West", "low_grade": 6,
                 "high_grade": 8, "kind": "middle"}])
            await conn.execute(audit_log.insert(), [
                {"at": AT, "actor": actor, "actor_role": "district", "action": "x",
                 "subject": None, "endpoint": "/", "detail": str(i)} for i in range(3)])
    finally:
        await engine.dispose()


async def test_merge_keeps_first_rows_and_appends_numbered_ones(tmp_path: Path) -> None:
    a, b, target = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "t.db"
    await _filled(a, "alice")
    await _filled(b, "bob")
    await migrate(Settings(database_url=f"sqlite+aiosqlite:///{target}"))
    added = merge_sqlite(target, [a, b])
    assert added["schools"] == 3 and added["audit_log"] == 6
    with sqlite3.connect(target) as db:
        names = dict(db.execute("SELECT id, name FROM schools").fetchall())
        ids = [r[0] for r in db.execute("SELECT id FROM audit_log ORDER BY id")]
        actors = [r[0] for r in db.execute("SELECT actor FROM audit_log ORDER BY id")]
    assert names == {"s1": "School one (alice)", "s-alice": "alice", "s-bob": "bob"}
    assert len(set(ids)) == 6 and actors == ["alice"] * 3 + ["bob"] * 3


async def test_copy_into_postgres_keeps_rows_and_counters(
    tmp_path: Path, postgres_url: str
) -> None:
    source_path = tmp_path / "a.db"
    await _filled(source_path, "alice")
    await migrate(Settings(database_url=postgres_url))
    source = create_engine(f"sqlite+aiosqlite:///{source_path}")
    target = create_engine(postgres_url)
    try:
        copied = await copy_database(source, target)
        assert copied["schools"] == 2 and copied["audit_log"] == 3
        async with target.begin() as conn:  # the counter is past the copied ids
            await conn.execute(audit_log.insert().values(
                at=AT, actor="carol", actor_role="district", action="x", endpoint="/"))
            rows = (await conn.execute(sa.select(audit_log.c.id, audit_log.c.actor))).all()
    finally:
        await source.dispose()
        await target.dispose()
    assert sorted(actor for _, actor in rows) == ["alice"] * 3 + ["carol"]
    assert len({i for i, _ in rows}) == 4
