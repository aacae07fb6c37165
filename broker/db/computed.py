"""Expressions of generated (computed, stored) columns, written per dialect.

:class:`DecidedSeconds` is ``help_requests.decided_s`` (migration 0022): the seconds from
joining the queue to the request's first acceptance, or, never accepted, to its end (a
give-up), rounded to the millisecond; ``NULL`` while it waits. The database computes it
on every insert and update of the row, so it is always what the timestamps say; the
staff reports sort it for the wait percentiles instead of computing it per row (a third
of ``waits`` over a year: docs/stats.md, "Performance").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement

#: PostgreSQL: ``date_part`` of the interval (double precision), as the reports computed it.
DECIDED_SECONDS_POSTGRESQL = (
    "round(date_part('epoch', coalesce(first_accepted_at, closed_at) - queued_at) * 1000) "
    "/ 1000"
)
#: SQLite: the timestamps are UTC text; ``julianday`` differences are days.
DECIDED_SECONDS_SQLITE = (
    "round((julianday(coalesce(first_accepted_at, closed_at)) - julianday(queued_at)) "
    "* 86400000.0) / 1000.0"
)


class DecidedSeconds(ColumnElement[float]):
    """The expression of ``help_requests.decided_s``, compiled for each dialect."""

    inherit_cache = True
    type = Float()


@compiles(DecidedSeconds, "postgresql")
def _postgresql(element: DecidedSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    return DECIDED_SECONDS_POSTGRESQL


@compiles(DecidedSeconds)
def _default(element: DecidedSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    return DECIDED_SECONDS_SQLITE
