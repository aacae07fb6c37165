"""Throw-away PostgreSQL databases, recycled within a test process.

A new database per test (``CREATE DATABASE``, this run's schema replayed by
:mod:`tests.schema_cache`, ``DROP DATABASE`` after) cost 0.4-1.2 s of every PostgreSQL
test, a few minutes of CI over the suite. A database a test used is given to a later test
of the same process (an xdist worker) only when it is, to anything a test can see, what a
new database brought to head is; otherwise it is dropped, as before:

* **same schema**: a fingerprint of the catalog (tables, columns and their defaults,
  indexes, constraints, triggers and whether they are enabled, functions, views, types,
  storage options, schemas, extensions) equals that of a database this run brought to
  head from empty (:func:`learn_head`);
* **nobody else on it**: every other connection is terminated first (a test that left an
  engine open leaves nothing behind);
* **no settings of its own**: ``ALTER DATABASE ... RESET ALL``;
* **no data**: every table emptied in one transaction with triggers off (the audit log's
  append-only trigger, foreign keys' order), the rows the migrations write put back and
  every sequence restarted;
* **nothing the planner learnt**: statistics counters reset, the tables' ``pg_statistic``
  rows removed and each relation's size estimates (``pg_class``) put back to what a new
  database at head has, so plans and the ``planner_statistics`` job see a new database.

Dead rows stay on disk; a database is dropped instead after :data:`MAX_USES` tests or
beyond :data:`MAX_BYTES`. A recycled database is at head: :func:`recycled_at_head` lets
:func:`tests.schema_cache.migrate_engine` skip bringing it there. A test marked
``new_database`` gets a new one (its migrations start from nothing). ``HH_TEST_DB_RECYCLE=0``
turns recycling off (every test a new database, as before), to rule it out or compare.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services import PG_ADMIN_URL, asyncpg_dsn, unique

log = logging.getLogger(__name__)

RECYCLE = os.environ.get("HH_TEST_DB_RECYCLE", "1") != "0"
MAX_USES = 40
MAX_BYTES = 64 * 1024 * 1024

_FINGERPRINT = r"""
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) FROM (
  SELECT 'c:' || c.relname || ':' || c.relkind::text || ':' || c.relpersistence::text || ':'
         || coalesce(array_to_string(c.reloptions, ','), '')
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'a:' || a.attrelid::regclass || ':' || a.attname || ':'
         || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull || ':'
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'i:' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'k:' || k.conrelid::regclass || ':' || k.conname || ':' || pg_get_constraintdef(k.oid)
    FROM pg_constraint k WHERE k.connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 't:' || t.tgrelid::regclass || ':' || t.tgname || ':' || t.tgenabled::text || ':'
         || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'p:' || p.oid::regprocedure || ':' || md5(p.prosrc)
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'v:' || c.relname || ':' || pg_get_viewdef(c.oid)
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'y:' || t.typname || ':' || t.typtype::text || ':'
         || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                        FROM pg_enum e WHERE e.enumtypid = t.oid), '')
    FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'n:' || nspname FROM pg_namespace
   WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
  UNION ALL
  SELECT 'e:' || extname FROM pg_extension
) s(x)
"""
_SIZES = """
SELECT relname, relpages, reltuples, relallvisible FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i', 'p', 'm')
"""


@dataclass
class _Head:
    """A database at head as this run's migrations left it."""

    fingerprint: str
    rows: list[str]  # the INSERTs of the migrations' own rows (schema_cache's dump)
    sizes: list[tuple[str, int, float, int]]
    version: str


@dataclass
class _Pool:
    head: _Head | None = None
    free: list[str] = field(default_factory=list)  # recycled, at head, empty
    uses: dict[str, int] = field(default_factory=dict)
    recycled: set[str] = field(default_factory=set)  # handed out at head


_pool = _Pool()


def _admin_dsn() -> str:
    return asyncpg_dsn(PG_ADMIN_URL)


def _dsn(name: str) -> str:
    return _admin_dsn().rsplit("/", 1)[0] + f"/{name}"


def url_of(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the tests' server."""
    return "postgresql+asyncpg://" + _dsn(name).split("://", 1)[1]


async def learn_head(conn: Any, script: str) -> None:
    """Remember what a database at head is, from ``conn`` (asyncpg) on one that
    :mod:`tests.schema_cache` has just brought there from empty with ``script``. Once per
    process; until then nothing is recycled."""
    if _pool.head is not None:
        return
    _pool.head = _Head(
        fingerprint=str(await conn.fetchval(_FINGERPRINT)),
        rows=[line for line in script.splitlines() if line.startswith("INSERT INTO ")],
        sizes=[(r[0], r[1], r[2], r[3]) for r in await conn.fetch(_SIZES)],
        version=str(await conn.fetchval("SELECT version_num FROM alembic_version")),
    )


async def recycled_at_head(engine: AsyncEngine) -> bool:
    """Whether ``engine``'s database was handed out recycled to the test running now and
    is still at this run's head revision (no connection is opened for any other)."""
    name = engine.url.database
    if name not in _pool.recycled or _pool.head is None:
        return False
    async with engine.connect() as conn:
        version = (await conn.exec_driver_sql(
            "SELECT version_num FROM alembic_version LIMIT 1")).scalar()
    return bool(version == _pool.head.version)


async def take(*, new: bool = False) -> str:
    """A database for one test: a recycled one unless ``new``, else a new empty one."""
    import asyncpg

    if _pool.free and not new:
        name = _pool.free.pop()
        _pool.recycled.add(name)
        return name
    name = unique("hh_test")
    admin = await asyncpg.connect(_admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _pool.uses[name] = 0
    return name


async def give_back(name: str) -> None:
    """After its test: keep ``name`` for another if it can be made new again, else drop."""
    _pool.recycled.discard(name)
    _pool.uses[name] = _pool.uses.get(name, 0) + 1
    try:
        if await _recycle(name):
            _pool.free.append(name)
            return
    except Exception:
        log.warning("could not recycle test database %s; dropping it", name, exc_info=True)
    await _drop(name)


def keeps_any() -> bool:
    return bool(_pool.free)


async def drop_all() -> None:
    """At the end of the process: drop what is kept."""
    while _pool.free:
        await _drop(_pool.free.pop())


async def _drop(name: str) -> None:
    import asyncpg

    _pool.uses.pop(name, None)
    admin = await asyncpg.connect(_admin_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _recycle(name: str) -> bool:
    import asyncpg

    head = _pool.head
    if not RECYCLE or head is None or _pool.uses.get(name, 0) >= MAX_USES:
        return False
    admin = await asyncpg.connect(_admin_dsn())
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        await admin.execute(f'ALTER DATABASE "{name}" RESET ALL')
    finally:
        await admin.close()
    conn = await asyncpg.connect(_dsn(name))
    try:
        if await conn.fetchval("SELECT pg_database_size(current_database())") > MAX_BYTES:
            return False
        if await conn.fetchval(_FINGERPRINT) != head.fingerprint:
            return False
        tables = [r[0] for r in await conn.fetch(
            "SELECT quote_ident(relname) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")]
        sequences = [r[0] for r in await conn.fetch(
            "SELECT quote_ident(relname) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind = 'S'")]
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(";\n".join([
                *(f"DELETE FROM public.{t}" for t in tables),
                *(f"ALTER SEQUENCE public.{s} RESTART" for s in sequences),
                *(row.rstrip(";") for row in head.rows),
            ]))
            await conn.execute(
                "DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace)")
            await conn.executemany(
                "UPDATE pg_class SET relpages = $2, reltuples = $3, relallvisible = $4 "
                "WHERE relnamespace = 'public'::regnamespace AND relname = $1", head.sizes)
        await conn.execute("SELECT pg_stat_reset()")
    finally:
        await conn.close()
    return True
