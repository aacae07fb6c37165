"""Counts per local hour of the week computed by PostgreSQL, without ``timezone()``.

A time zone's UTC offset changes only at its transitions (twice a year where daylight
saving is kept). :func:`offsets` finds them once per zone in Python (``zoneinfo``, the
same rules the rest of the broker uses). :func:`hour_of_week_counts` groups the rows per
unit of UTC time (an hour for the United States' zones: :func:`unit_seconds`), then moves
only those groups to the local clock by the offset in force, found by ``width_bucket``
among the transitions, and adds them up per hour of the week: 168 rows come back instead
of one per UTC hour to be moved to local time in Python (the heatmap over a year spent
a third of its time doing that).

Guarantee: for every instant from 1990 to 2100 the hour of the week equals
``instant.astimezone(tz)``'s (the tests compare them across the zone's transitions);
outside that window the nearest window edge's offset is used.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import Grouping

UTC = dt.UTC
FIRST_YEAR = 1990
LAST_YEAR = 2100
#: 1970-01-01 was a Thursday: day 0 since the epoch is weekday 3 (Monday = 0).
EPOCH_WEEKDAY = 3


def _offset(tz: ZoneInfo, at: dt.datetime) -> int:
    delta = at.astimezone(tz).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


@functools.lru_cache(maxsize=16)
def offsets(tz: ZoneInfo) -> tuple[tuple[dt.datetime, ...], tuple[int, ...]]:
    """(transition instants, offsets): ``offsets[0]`` is in force before the first
    instant, ``offsets[i]`` from ``instants[i - 1]`` on; offsets in seconds east of UTC.
    Transitions are found to the minute (every zone's are on whole minutes since 1990)."""
    instants: list[dt.datetime] = []
    at = dt.datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = dt.datetime(LAST_YEAR, 1, 1, tzinfo=UTC)
    current = _offset(tz, at)
    found = [current]
    day = dt.timedelta(days=1)
    while at < end:
        following = _offset(tz, at + day)
        if following != current:
            low, high = 0, 24 * 60  # minutes into the day: offset(low) old, (high) new
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(tz, at + dt.timedelta(minutes=middle)) == current:
                    low = middle
                else:
                    high = middle
            instants.append(at + dt.timedelta(minutes=high))
            found.append(following)
            current = following
        at += day
    return tuple(instants), tuple(found)


def unit_seconds(tz: ZoneInfo) -> int:
    """The largest whole part of an hour that every offset and transition of ``tz`` is a
    multiple of (3600 for the United States' zones, 1800 for India's): instants grouped
    into units this long never straddle a change of offset or of local hour."""
    instants, in_force = offsets(tz)
    return math.gcd(3600, *in_force, *(int(i.timestamp()) for i in instants))


def hour_of_week_counts(
    column: sa.ColumnElement[dt.datetime],
    tz: ZoneInfo,
    joined: sa.FromClause,
    where: Sequence[sa.ColumnElement[bool]],
) -> sa.Select[Any]:
    """``(hour_of_week, count)`` of the rows of ``joined`` matching ``where`` by
    ``column`` on ``tz``'s wall clock, hour 0 = Monday 00:00-01:00 (PostgreSQL).

    The rows are counted per :func:`unit_seconds` of UTC time first (one cheap grouping
    over every row); only those few thousand groups are moved to local time, each by the
    offset in force from ``width_bucket`` among the zone's transitions (in units)."""
    unit = unit_seconds(tz)
    instants, in_force = offsets(tz)
    units = sa.cast(sa.func.floor(sa.func.date_part("epoch", column) / float(unit)), sa.BigInteger)
    inner = (
        sa.select(units.label("u"), sa.func.count().label("n"))
        .select_from(joined)
        .where(*where)
        .group_by(sa.literal_column("u"))
        .subquery("per_unit")
    )
    u = inner.c.u
    if instants:
        edges = [int(i.timestamp()) // unit for i in instants]
        index = sa.func.width_bucket(
            u, sa.literal(edges, sa.ARRAY(sa.BigInteger)), type_=sa.Integer
        )
        # parenthesised, as PostgreSQL wants a cast array before its subscript
        shift: Any = Grouping(sa.literal([o // unit for o in in_force], sa.ARRAY(sa.Integer)))[
            index + 1
        ]
    else:
        shift = in_force[0] // unit
    local_hours = (u + shift) * unit // 3600
    how = sa.cast((local_hours + EPOCH_WEEKDAY * 24) % (7 * 24), sa.Integer).label("how")
    columns: list[Any] = [how, sa.func.sum(inner.c.n)]
    stmt: sa.Select[Any] = sa.select(*columns).group_by(sa.literal_column("how"))
    return stmt
