"""The hot queue statements state the partial indexes' predicates themselves
(:func:`broker.db.models.is_queued`, :func:`~broker.db.models.is_open_request`), so each
database can use those indexes whatever the bound values:

* SQLite counts a request's place from the queue index alone, without reading a table row
  (a bound ``status = ?`` is checked against each row: twice the time);
* PostgreSQL's generic plan of the prepared statement (what a long-lived connection runs
  after five executions) can still use the partial indexes; with ``status = $1`` it cannot
  prove the index's predicate and must use another index.

Each test fails on statements that bind the status as a parameter."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa

from broker.db import create_engine
from broker.lifecycle_store import LifecycleStore
from tests.broker.conftest import prepare_database

VALUES = {"queue": "paper:en", "rank": 1.0, "rid": "r-1", "student": "s-1", "limit": 5}


def _args(compiled: Any) -> list[Any]:
    """A value per positional parameter: from VALUES, else a LIMIT's 1 or a string."""
    out: list[Any] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        default = bind.value if isinstance(bind.value, int) else "x"
        out.append(VALUES.get(bind.key, default))
    return out


@contextlib.asynccontextmanager
async def store_and_driver(url: str) -> AsyncIterator[tuple[LifecycleStore, Any]]:
    """The store's statements on a migrated database, and a driver connection to it."""
    await prepare_database(url)
    engine = create_engine(url)
    store = LifecycleStore(engine)
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            yield store, raw
    finally:
        await store.close()
        await engine.dispose()


async def test_sqlite_counts_a_place_from_the_queue_index_alone(sqlite_url: str) -> None:
    async with store_and_driver(sqlite_url) as (store, raw):
        dialect = store.engine.dialect
        [(table_root,)] = await raw.execute_fetchall(
            "SELECT rootpage FROM sqlite_master WHERE name = 'help_requests'"
        )

        async def table_reads(stmt: sa.Executable) -> tuple[list[tuple[Any, ...]], str]:
            """The statement's reads of a column of the table itself, and its plan."""
            compiled = stmt.compile(dialect=dialect)
            sql, args = compiled.string, _args(compiled)
            program = await raw.execute_fetchall("EXPLAIN " + sql, args)
            table_cursors = {
                row[2] for row in program if row[1] == "OpenRead" and row[3] == table_root
            }
            reads = [tuple(row) for row in program
                     if row[1] == "Column" and row[2] in table_cursors]
            plan = " ".join(row[3] for row in await raw.execute_fetchall(
                "EXPLAIN QUERY PLAN " + sql, args))
            return reads, plan

        reads, plan = await table_reads(store._position)
        assert "ix_help_requests_queued_rank" in plan, plan
        # the index's entries are counted without seeking their rows (a bound status
        # would be read from each row: a Column of the table's cursor)
        assert reads == [], reads
        _, plan = await table_reads(store._open_request_of)
        assert "uq_help_requests_open_student" in plan, plan


async def test_postgres_generic_plans_use_the_partial_indexes(postgres_url: str) -> None:
    async with store_and_driver(postgres_url) as (store, raw):
        dialect = store.engine.dialect
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute("SET enable_seqscan = off")  # an empty table: still show the index

        async def generic_plan(name: str, stmt: sa.Executable) -> str:
            compiled = stmt.compile(dialect=dialect)
            await raw.execute(f"PREPARE {name} AS {compiled.string}")
            literals = ", ".join(
                repr(v) if isinstance(v, (int, float)) else f"'{v}'" for v in _args(compiled)
            )
            rows = await raw.fetch(f"EXPLAIN EXECUTE {name}({literals})")
            return "\n".join(row[0] for row in rows)

        plan = await generic_plan("place", store._position)
        assert "ix_help_requests_queued_rank" in plan, plan
        plan = await generic_plan("open_of", store._open_request_of)
        assert "uq_help_requests_open_student" in plan, plan
        plan = await generic_plan("head", store._queue_head)
        assert "ix_help_requests_queued_rank" in plan, plan


async def test_postgres_looks_up_connecting_students_by_index_without_statistics(
    postgres_url: str,
) -> None:
    """Every connecting student's open request is looked up (:meth:`LifecycleStore.
    open_request_of`, many at once). On a table never analysed (autovacuum off, or not yet
    run: a fresh deploy), the generic plan of ``student IN (...) AND status IN (...)``
    read every open request and filtered them by student; each lookup must stay an index
    condition on the student."""
    async with store_and_driver(postgres_url) as (store, raw):
        dialect = store.engine.dialect
        await raw.execute(
            "INSERT INTO help_requests (id, student, language, subject, status, requested_at)"
            " SELECT 'r' || g, 's-' || g, 'English', 'Math',"
            " CASE WHEN g <= 1000 THEN 'accepted' ELSE 'ended' END, now()"
            " FROM generate_series(1, 3000) g"
        )
        analysed = await raw.fetchval(
            "SELECT coalesce(last_analyze, last_autoanalyze) FROM pg_stat_user_tables"
            " WHERE relname = 'help_requests'"
        )
        assert analysed is None  # the case this is about
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        for name, stmt in (("one", store._open_request_of), ("many", store._open_requests_of)):
            compiled = stmt.compile(dialect=dialect)
            await raw.execute(f"PREPARE {name} AS {compiled.string}")
            students = ", ".join(  # students s-0, s-7, ...; a LIMIT's own value
                repr(bind.value) if isinstance(bind.value, int) else f"'s-{7 * k}'"
                for k, bind in enumerate(compiled.binds[n] for n in compiled.positiontup)
            )
            plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN EXECUTE {name}({students})"))
            assert "uq_help_requests_open_student" in plan, plan
            assert "Index Cond: ((student)::text" in plan, plan
