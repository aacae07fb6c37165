"""Combine databases of the same schema: SQLite files into one, or a database into another.

Used by the replay (``homework-help simulate``), which replays a long period as segments
in parallel processes, each into its own SQLite file, and then needs the whole period in
one database for the staff reports, and by the capacity benchmark, which times those
reports over the same rows on PostgreSQL.

Guarantees:

* Both functions copy every table the destination has (``alembic_version`` and SQLite's
  own tables excepted), parents before children, so foreign keys hold at every step.
* A row whose primary key the destination already holds is kept as the destination has
  it (first writer wins): the synthetic schools every segment writes, a simulated tutor's
  state. In :func:`merge_sqlite`, tables keyed by an autoincremented integer get their
  rows appended with new keys (no row is lost to a clash of counters; nothing refers to
  those keys). :func:`copy_database` keeps every key and moves PostgreSQL's counters past
  the copied ones.
* :func:`merge_sqlite` runs in one transaction per source file: a file is merged whole or
  not at all. :func:`copy_database` commits per chunk; run it into an empty database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

SKIPPED = ("alembic_version",)
CHUNK = 5_000


def _ordered(names: Iterable[str]) -> list[str]:
    """``names`` with the product's tables in foreign-key order first."""
    from broker.db import models

    known = [t.name for t in models.metadata.sorted_tables]
    wanted = set(names)
    return [n for n in known if n in wanted] + sorted(wanted.difference(known))


def _columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    """The table's columns, leaving out an integer primary key SQLite numbers itself."""
    info = db.execute(f'PRAGMA {schema}.table_info("{table}")').fetchall()
    pks = [row for row in info if row[5]]
    auto = len(pks) == 1 and str(pks[0][2]).upper() == "INTEGER"
    return [row[1] for row in info if not (auto and row[5])]


def merge_sqlite(target: Path, sources: Sequence[Path]) -> dict[str, int]:
    """Copy every row of each of ``sources`` into ``target`` (all migrated to the same
    revision); return the rows added per table."""
    added: dict[str, int] = {}
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=OFF")
        tables = _ordered(
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not name.startswith("sqlite_") and name not in SKIPPED
        )
        for source in sources:
            db.execute("ATTACH DATABASE ? AS src", (str(source),))
            try:
                db.execute("BEGIN")
                for table in tables:
                    columns = _columns(db, "main", table)
                    names = ", ".join(f'"{c}"' for c in columns)
                    before = db.total_changes
                    db.execute(f'INSERT OR IGNORE INTO main."{table}" ({names}) '
                               f'SELECT {names} FROM src."{table}"')
                    added[table] = added.get(table, 0) + db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                db.execute("DETACH DATABASE src")
    finally:
        db.close()
    return added


async def copy_database(source: AsyncEngine, target: AsyncEngine) -> dict[str, int]:
    """Copy every row of ``source`` into ``target`` (both migrated to the same revision;
    the target empty). Return the rows copied per table."""
    copied: dict[str, int] = {}
    src_meta, dst_meta = sa.MetaData(), sa.MetaData()
    async with source.connect() as conn:
        await conn.run_sync(src_meta.reflect)
    async with target.connect() as conn:
        await conn.run_sync(dst_meta.reflect)
    for name in _ordered(n for n in dst_meta.tables if n not in SKIPPED):
        if name not in src_meta.tables:
            continue
        src, dst = src_meta.tables[name], dst_meta.tables[name]
        # a generated column is the target database's to compute
        columns = [
            c.name for c in dst.columns if c.name in src.columns and c.computed is None
        ]
        copied[name] = 0
        async with source.connect() as reader:
            result = await reader.stream(sa.select(*(src.c[c] for c in columns)))
            async for chunk in result.mappings().partitions(CHUNK):
                async with target.begin() as writer:
                    await writer.execute(dst.insert(), [dict(row) for row in chunk])
                copied[name] += len(chunk)
    if target.dialect.name == "postgresql":  # keep the counters past the copied keys
        async with target.begin() as conn:
            for table in dst_meta.tables.values():
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, sa.Integer) and pk[0].autoincrement:
                    await conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                        f"COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"
                    ))
    return copied


__all__ = ["copy_database", "merge_sqlite"]
