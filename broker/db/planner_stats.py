"""Keep PostgreSQL's planner statistics current when autovacuum does not.

The hot statements look a row up by its primary key and guard it with the state a partial
index is built on: a message counts on its session ``WHERE id = :sid AND ended_at IS
NULL``, and ``ix_tutoring_sessions_open_student`` indexes exactly the rows with ``ended_at
IS NULL``. On a table that was never analyzed the planner prices the two indexes alike and
may walk the partial one, every open session, for each message. Measured at the evening
peak (``bench.peak``, 2,300 open sessions): 1.3-1.8 ms of PostgreSQL's CPU per message, 2,070
buffer hits, instead of 0.1 ms and 3 with statistics; the machine's PostgreSQL runs with
``autovacuum = off``, so nothing ever analyzed those tables. The writer's statements are
prepared once per connection, and PostgreSQL keeps a generic plan made while a table was
small: the resend check of each message (``chat_messages`` by session and client id) stayed
a scan of the whole table, 392 pages and 3-9 ms at 20,000 messages, though a unique index
answers it. Only an ``ANALYZE`` (or a schema change) makes those plans again.

:func:`analyze_stale` is the worker's ``planner_statistics`` job (every
:data:`~broker.constants.PLANNER_STATS_EVERY_S`). With autovacuum on (PostgreSQL's
default) it does nothing: autovacuum analyzes a table once ``autovacuum_analyze_threshold
+ autovacuum_analyze_scale_factor * reltuples`` of its rows changed. With autovacuum off it
applies that same rule itself, to the application's tables, with ``ANALYZE`` (which reads a
sample of rows, takes no lock that blocks reads or writes, and is idempotent). Dead rows
are not its business: the hot updates are HOT and prune themselves; an operator who turns
autovacuum off still owes the database its ``VACUUM``. SQLite: nothing (without statistics
its planner takes an equality on a primary key or a unique index to be one row, so these
look-ups stay on their keys).
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.log_pace import LogPace

log = logging.getLogger(__name__)

_SETTINGS = sa.text(
    "SELECT current_setting('autovacuum') = 'on', current_setting('track_counts') = 'on',"
    " current_setting('autovacuum_analyze_threshold')::float,"
    " current_setting('autovacuum_analyze_scale_factor')::float"
)
# Tables of this schema, with what changed since their last analyze and their size as the
# planner knows it (reltuples is -1 until the first ANALYZE).
_TABLES = sa.text(
    "SELECT s.relname, s.n_mod_since_analyze, greatest(c.reltuples, 0)"
    " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema()"
)
# Warn that autovacuum is off once a day at most, per process.
_warn_pace = LogPace(24 * 3600.0)


def stale(
    tables: list[tuple[str, int, float]], threshold: float, scale_factor: float
) -> list[str]:
    """The tables autovacuum would analyze now: changed rows past ``threshold +
    scale_factor * rows``, in name order."""
    return sorted(
        name for name, changed, rows in tables if changed > threshold + scale_factor * rows
    )


async def analyze_stale(
    engine: AsyncEngine, now: dt.datetime | None = None, *, autovacuum: bool | None = None
) -> dict[str, int]:
    """``ANALYZE`` the tables whose statistics autovacuum would have renewed, when it is off;
    return ``{"analyzed": n}`` (and ``"autovacuum": 1`` when it is on and left to it). Each
    table in a transaction of its own, so its lock (which blocks only another ``ANALYZE``,
    a ``VACUUM`` or a migration on it) is held for that table's sample alone.
    ``autovacuum`` overrides the server's setting (tests); ``now`` is the job runner's."""
    if engine.dialect.name != "postgresql":
        return {"analyzed": 0}
    async with engine.connect() as conn:
        running, track_counts, threshold, scale = (await conn.execute(_SETTINGS)).one()
        autovacuum = running if autovacuum is None else autovacuum
        if autovacuum and track_counts:
            return {"analyzed": 0, "autovacuum": 1}
        rows = [(str(n), int(m), float(r)) for n, m, r in await conn.execute(_TABLES)]
    if _warn_pace.due():
        log.warning(
            "PostgreSQL's autovacuum is off (autovacuum=%s, track_counts=%s): the worker "
            "analyzes changed tables itself; dead rows still need a VACUUM",
            "on" if autovacuum else "off", "on" if track_counts else "off",
        )
    # Without track_counts nothing counts the changes: renew every table.
    names = stale(rows, threshold, scale) if track_counts else sorted(n for n, _, _ in rows)
    for name in names:
        async with engine.begin() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            await conn.execute(sa.text(f"ANALYZE {quoted}"))
    if names:
        log.info("analyzed %d tables: %s", len(names), ", ".join(names))
    return {"analyzed": len(names)}
