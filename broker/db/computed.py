"""Expressions of generated (computed, stored) columns, written per dialect.

:class:`DecidedSeconds` is ``help_requests.decided_s`` (migration 0022): the seconds from
joining the queue to the request's first acceptance, or, never accepted, to its end (a
give-up), rounded to the millisecond; ``NULL`` while it waits. The database computes it
on every insert and update of the row, so it is always what the timestamps say; the
staff reports sort it for the wait percentiles instead of computing it per row (a third
of ``waits`` over a year: docs/stats.md, "Performance").

:class:`epoch_us` reads a timestamp as integer microseconds, for hot reads of many rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

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


class epoch_us(FunctionElement[int]):
    """A timestamp column as whole microseconds since 1970 (UTC), computed by the database.

    The sweep reads every open session's clocks every couple of seconds; turning thousands
    of timestamps into aware datetimes and then into seconds in Python held the event loop
    for tens of milliseconds each time. Divided by 1e6 in Python, the integer gives exactly
    ``datetime.timestamp()`` of the value read back (both are the correctly rounded
    quotient of the same integer). ``NULL`` stays ``NULL``."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_us"


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"


@compiles(epoch_us)
def _epoch_us_sqlite(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    # UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds from strftime, then the digits.
    column = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
    )
