"""PostgreSQL's CPU per request cycle: the queue as built, against a queue table of its own.

``python -m bench.queue_design [--cycles N] [--rounds R] [--batch B] [--queued Q]
[--history H] [--no-write] [--results PATH]``

Issue 10's scaled request rate is set by the core that carries the load, PostgreSQL and
Redis (bench/RESULTS.md, "The load's core as the limit"). The one lever left on
PostgreSQL's side was a redesign: a queue table of its own, so that a cancel would be a
heap-only update of ``help_requests`` and a request row would go into fewer indexes. This
benchmark measures that redesign before anyone builds it. It creates two scratch
databases on the PostgreSQL of this machine, each migrated to head with H closed
requests of history and Q requests waiting in one queue:

* **built** (the baseline): the queue is ``help_requests``' own rows, written by the
  writer's fused statements exactly as the broker runs them on PostgreSQL
  (:func:`broker.lifecycle_statements.fused_enqueue` and
  :func:`~broker.lifecycle_statements.fused_close`, a student's cancel).
* **queue table** (a prototype, not the product): a table ``queued (id, queue, rank,
  student)`` holds the waiting requests. Its unique ``student`` is the one-open-request
  rule for waiting requests, and its ``(queue, rank, id)`` index is the queue order.
  ``help_requests`` loses the three indexes that exist for the queue (the two partial
  ones and ``(status, queued_at)``), so that a change of status can be a heap-only update
  (fillfactor 90). An enqueue inserts into both tables and counts the queue ahead, in one
  statement; a cancel deletes the waiting row and updates the request, in one statement.
  (Accepted requests, which the rule also covers, are not modelled: the request scenario
  has none.)

A round runs, per design, N batches on one connection: B requests enqueued in one
transaction (positions counted as the broker counts them), then the same B cancelled in
another, as the writer's batches go under the request benchmark's load. The backend's CPU
time is read from ``/proc`` before and after (so PostgreSQL must run on this machine).
Rounds alternate between the designs, on the same two databases, so dead rows pile up
between autovacuums in both as they would in production. Reports microseconds of
PostgreSQL CPU per request cycle (an enqueue and a cancel) for each design, and the ratio
of the queue table's to the built design's in the same round. Replaces only the
"## Queue design" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement, Executable

from bench.results import RESULTS, publish
from bench.scratch_db import pg_reachable, scratch_postgres
from broker.db.models import help_requests
from broker.lifecycle_statements import QUEUED_COLUMNS, fused_close, fused_enqueue
from broker.migrate import migrate
from broker.settings import Settings
from tests.services import asyncpg_dsn

SECTION = "## Queue design"
QUEUE = "paper:elementary:en:math"
WARMUP = 200  # batches per design before the first measured round

_DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_REQUESTS = cast(sa.Table, help_requests)


def _sql(stmt: Executable) -> str:
    """A statement's text for PostgreSQL, with asyncpg's ``$n`` placeholders."""
    return str(cast(ClauseElement, stmt).compile(dialect=_DIALECT))


BUILT_ENQUEUE = _sql(fused_enqueue(_REQUESTS).stmt)
# a student's cancel, clearing what the broker clears when retention is off
BUILT_CANCEL = _sql(
    fused_close(_REQUESTS, {"topic": None, "first_name": None}, by_student=True).stmt
)

# The prototype's statements take the built ones' parameters in the same order, typed
# as the model types the columns (as the built statements' arrays are).
def _array(column: str, place: int) -> str:
    return f"${place}::{_REQUESTS.c[column].type.compile(dialect=_DIALECT)}[]"


_COLS = ", ".join(QUEUED_COLUMNS)
_ARRAYS = ", ".join(_array(c, 3 + k) for k, c in enumerate(QUEUED_COLUMNS))
TABLE_ENQUEUE = f"""
WITH each AS (SELECT * FROM unnest({_ARRAYS}) WITH ORDINALITY AS given({_COLS}, i)),
q AS (INSERT INTO queued (id, queue, rank, student)
      SELECT id, queue, rank, student FROM each
      ON CONFLICT (student) DO NOTHING RETURNING id, queue, rank),
ins AS (INSERT INTO help_requests ({_COLS}, priority, session_count)
        SELECT {", ".join("each." + c for c in QUEUED_COLUMNS)}, $1::SMALLINT, $2::INTEGER
        FROM each JOIN q ON q.id = each.id RETURNING id),
placed AS (SELECT q.id, q.queue, q.rank, each.i FROM q JOIN each ON each.id = q.id)
SELECT placed.i,
  (SELECT count(*) FROM queued a
   WHERE a.queue = placed.queue AND (a.rank, a.id) < (placed.rank, placed.id))
  + (SELECT count(*) FROM placed mate
     WHERE mate.queue = placed.queue AND mate.i < placed.i
       AND (mate.rank, mate.id) < (placed.rank, placed.id))
  + ${3 + len(QUEUED_COLUMNS)}::INTEGER
FROM placed
"""
_CANCEL_ARRAYS = ", ".join(
    _array(c, 3 + k) for k, c in enumerate(("id", "status", "closed_at", "close_reason", "student"))
)
TABLE_CANCEL = f"""
WITH each AS (
  SELECT * FROM unnest({_CANCEL_ARRAYS})
  WITH ORDINALITY AS each(rid, new_status, "when", reason, student, i)),
dq AS (DELETE FROM queued USING each
       WHERE queued.id = each.rid AND queued.student = each.student
       RETURNING queued.id, each.i, each.new_status, each."when", each.reason)
UPDATE help_requests SET topic = $1::VARCHAR, first_name = $2::VARCHAR,
  status = dq.new_status, closed_at = dq."when", close_reason = dq.reason
FROM dq WHERE help_requests.id = dq.id
RETURNING dq.i, help_requests.student, help_requests.queue
"""
TABLE_SCHEMA = (
    "DROP INDEX ix_help_requests_queued_rank",
    "DROP INDEX uq_help_requests_open_student",
    "DROP INDEX ix_help_requests_status_queued_at",
    "ALTER TABLE help_requests SET (fillfactor = 90)",
    "CREATE TABLE queued (id VARCHAR(32) PRIMARY KEY, queue VARCHAR(64) NOT NULL,"
    " rank FLOAT NOT NULL, student VARCHAR(64) NOT NULL UNIQUE)",
    "CREATE INDEX ix_queued_rank ON queued (queue, rank, id)",
)
DESIGNS = {
    "built": (BUILT_ENQUEUE, BUILT_CANCEL),
    "queue table": (TABLE_ENQUEUE, TABLE_CANCEL),
}


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process ``pid`` (a PostgreSQL backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def prepare(url: str, design: str, history: int, queued: int) -> None:
    """Migrate, seed ``history`` closed requests and ``queued`` waiting ones, and (for the
    prototype) reshape the schema."""
    await migrate(Settings(database_url=url))
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        common = (
            "school_id, grade, groups, language, subject, requested_at, is_test, vendor,"
            " queue, overflow, queued_at, priority, session_count"
        )
        values = (
            f"'sch-1', 3, '', 'en', 'math', now(), false, 'paper', '{QUEUE}', false, now(), 0, 0"
        )
        await conn.execute(
            f"INSERT INTO help_requests (id, student, status, closed_at, close_reason, rank,"
            f" {common}) SELECT 'h' || g, 'hs' || (g % 5000), 'cancelled', now(), 'student',"
            f" extract(epoch from now()) - 86400, {values}"
            f" FROM generate_series(1, {history}) g"
        )
        await conn.execute(
            f"INSERT INTO help_requests (id, student, status, rank, {common})"
            f" SELECT 'w' || g, 'ws' || g, 'queued', extract(epoch from now()) - 3600 + g,"
            f" {values} FROM generate_series(1, {queued}) g"
        )
        if design == "queue table":
            for ddl in TABLE_SCHEMA:
                await conn.execute(ddl)
            await conn.execute(
                "INSERT INTO queued SELECT id, queue, rank, student FROM help_requests"
                " WHERE status = 'queued'"
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _batch(n: int) -> tuple[list[Any], list[Any]]:
    """One batch's parameters: ``n`` new requests to enqueue, and the same to cancel."""
    now = dt.datetime.now(dt.UTC)
    ids = [uuid.uuid4().hex for _ in range(n)]
    students = [f"bench-s{i}" for i in range(n)]
    t = time.time()
    columns: dict[str, list[Any]] = {
        "id": ids, "student": students, "school_id": ["sch-1"] * n,
        "school_kind": ["elementary"] * n, "grade": [3] * n, "groups": [""] * n,
        "language": ["en"] * n, "subject": ["math"] * n, "requested_at": [now] * n,
        "is_test": [False] * n, "status": ["queued"] * n, "vendor": ["paper"] * n,
        "queue": [QUEUE] * n, "overflow": [False] * n, "first_choice_unmet": [None] * n,
        "queued_at": [now] * n, "rank": [t + i * 1e-6 for i in range(n)],
        "topic": [None] * n, "first_name": [None] * n,
    }
    enqueue = [0, 0, *(columns[c] for c in QUEUED_COLUMNS), 1]
    cancel = [None, None, ids, ["cancelled"] * n, [now] * n, ["student"] * n, students]
    return enqueue, cancel


async def run_design(url: str, design: str, batches: int, size: int, queued: int) -> float:
    """Microseconds of backend CPU per request cycle over ``batches`` batches of ``size``;
    checks that every request was placed behind the ``queued`` waiting ones and then
    cancelled."""
    enqueue_sql, cancel_sql = DESIGNS[design]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        enqueue_stmt = await conn.prepare(enqueue_sql)
        cancel_stmt = await conn.prepare(cancel_sql)
        began = backend_cpu_s(pid)
        for _ in range(batches):
            enqueue, cancel = _batch(size)
            async with conn.transaction():
                placed = await enqueue_stmt.fetch(*enqueue)
            positions = sorted(int(row[1]) for row in placed)
            if positions != list(range(queued + 1, queued + size + 1)):
                raise AssertionError(f"{design}: wrong positions {[tuple(r) for r in placed]}")
            async with conn.transaction():
                closed = await cancel_stmt.fetch(*cancel)
            if len(closed) != size:
                raise AssertionError(f"{design}: {len(closed)} of {size} cancelled")
        spent = backend_cpu_s(pid) - began
    finally:
        await conn.close()
    return 1e6 * spent / (batches * size)


async def bench(
    urls: dict[str, str], cycles: int, rounds: int, size: int, queued: int, history: int
) -> dict[str, Any]:
    for design, url in urls.items():
        await prepare(url, design, history, queued)
        await run_design(url, design, WARMUP, size, queued)
    per_round: list[dict[str, float]] = []
    for k in range(rounds):
        order = list(urls) if k % 2 == 0 else list(reversed(urls))
        figures = {d: await run_design(urls[d], d, cycles // size, size, queued) for d in order}
        print(
            f"round {k + 1}: " + ", ".join(f"{d} {us:.1f} us" for d, us in figures.items()),
            flush=True,
        )
        per_round.append(figures)
    conn = await asyncpg.connect(asyncpg_dsn(urls["queue table"]))
    try:
        server = await conn.fetchval(
            "SELECT 'PostgreSQL ' || current_setting('server_version') || ' (fsync '"
            " || current_setting('fsync') || ', synchronous_commit '"
            " || current_setting('synchronous_commit') || ')'"
        )
        dead, vacuums = await conn.fetchrow(
            "SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables"
            " WHERE relname = 'queued'"
        )
    finally:
        await conn.close()
    return {"rounds": per_round, "server": server, "queued_dead": dead, "queued_vacuums": vacuums}


def _ratio(figures: dict[str, float]) -> float:
    """The prototype's CPU per cycle against the built design's (inf if the built design's
    was too small for the clock's ticks: a run far too short)."""
    built = figures["built"]
    return figures["queue table"] / built if built > 0 else float("inf")


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _markdown(
    result: dict[str, Any], cycles: int, size: int, queued: int, history: int
) -> str:
    rounds: Sequence[dict[str, float]] = result["rounds"]
    built = [r["built"] for r in rounds]
    table = [r["queue table"] for r in rounds]
    ratios = [_ratio(r) for r in rounds]
    lines = [
        SECTION,
        "",
        f"`python -m bench.queue_design` ({dt.date.today().isoformat()}, Python"
        f" {platform.python_version()}, {result['server']} on this machine):"
        f" {len(rounds)} alternating rounds of {cycles:,} request cycles per design, in"
        f" batches of {size} (an enqueue transaction, then a cancel transaction), with"
        f" {queued} requests waiting ahead and {history:,} closed requests of history."
        " PostgreSQL's CPU per request cycle (the backend's, from /proc), and the"
        " prototype's against the queue as built in the same round.",
        "",
        "| round | built (baseline) | queue table (prototype) | ratio |",
        "|---|---|---|---|",
    ]
    for k, (r, ratio) in enumerate(zip(rounds, ratios, strict=True), start=1):
        lines.append(
            f"| {k} | {r['built']:.1f} us | {r['queue table']:.1f} us | {ratio:.2f}x |"
        )
    lines += [
        f"| median | {statistics.median(built):.1f} us | {statistics.median(table):.1f} us |"
        f" {statistics.median(ratios):.2f}x |",
        "",
        "The prototype saves index entries (no partial indexes on `help_requests`; a"
        " status change can be a heap-only update) but writes a second table: an extra"
        " row inserted per request and deleted per cancel, and a small table whose dead"
        " rows and index entries the queue count walks until autovacuum reaches it (at the"
        f" end: {result['queued_dead']:,} dead rows in `queued`, autovacuumed"
        f" {_times(result['queued_vacuums'])} after the set-up's VACUUM). A ratio above 1"
        " means the redesign would cost PostgreSQL more per request, not less.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_design")
    parser.add_argument("--cycles", type=int, default=24_000, help="request cycles a round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=20, help="requests per transaction")
    parser.add_argument("--queued", type=int, default=100, help="requests waiting ahead")
    parser.add_argument("--history", type=int, default=200_000, help="closed requests")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not pg_reachable():
        print("PostgreSQL is not reachable (DATABASE_URL or 127.0.0.1:5432)", file=sys.stderr)
        return 2
    stamp = int(time.time())
    with (
        scratch_postgres(f"hh_bench_queue_built_{stamp}") as built,
        scratch_postgres(f"hh_bench_queue_table_{stamp}") as table,
    ):
        result = asyncio.run(
            bench({"built": built, "queue table": table}, args.cycles, args.rounds,
                  args.batch, args.queued, args.history)
        )
    text = _markdown(result, args.cycles, args.batch, args.queued, args.history)
    return publish(SECTION, text, write=not args.no_write, path=args.results)


if __name__ == "__main__":
    raise SystemExit(main())
