"""Trends over time: requests, sessions, unmet requests and the 90th-percentile wait per
day or per week, in the district's time zone (staff ask "is it getting better" first).

Same definitions and filters as :mod:`broker.stats` (a request belongs to the bucket of
its ``requested_at``; its sessions and its wait go with it; test traffic is left out).
One pass over the requests (their first acceptance and session count are their own
columns: :mod:`broker.request_rollup`).
On SQLite it is streamed as :func:`broker.stats.waits` reads waits and each request's UTC
hour is moved to its local day (once per distinct hour), so daylight-saving changes land on
the right day; on PostgreSQL the database groups by local day or week itself (each
request placed among the buckets' first instants, local midnights turned into UTC by
``zoneinfo``) and computes each bucket's p90, so one row per bucket comes back.

Guarantees: every bucket of the range is present, in order, with zeros where nothing
happened (so a line chart shows a quiet day as zero, not as a gap); the range is cut into
days up to :data:`DAY_BUCKETS_MAX` days and into ISO weeks (Monday to Sunday) beyond;
``p90_wait_s`` is ``None`` for a bucket with no accepted request; the waits are taken to
the millisecond before the percentile, as the waits report takes them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db.models import help_requests as r
from broker.stats import (
    _PARTITION,
    DISTRICT_TZ,
    UTC,
    Filters,
    _aware,
    _conditions,
    _parse_utc_hour,
    _r,
    _seconds,
    _utc_hour,
    percentile,
    reading,
    to_ms,
)

#: Ranges of at most this many days are drawn per day; longer ones per ISO week.
DAY_BUCKETS_MAX = 62
#: At most this many buckets (about ten years of weeks): a wider range is cut at its end.
MAX_BUCKETS = 520


def _bucket_start(day: dt.date, bucket: str) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) if bucket == "week" else day


@dataclass(slots=True)
class _Tally:
    """What the requests of one hour (or day) add up to."""

    requests: int = 0
    unmet: int = 0
    sessions: int = 0
    waits: list[float] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        self.requests += other.requests
        self.unmet += other.unmet
        self.sessions += other.sessions
        self.waits.extend(other.waits)


async def _per_hour(conn: AsyncConnection, f: Filters) -> dict[Any, _Tally]:
    """Per UTC hour (as :func:`~broker.stats._utc_hour` gives it) of ``requested_at``: the
    requests matching ``f``, the unmet ones, their sessions and the waits of the accepted
    ones. One streamed pass over the requests (their first acceptance and session count
    are their own columns: :mod:`broker.request_rollup`), added up as it is read."""
    dialect = conn.dialect.name
    stmt = sa.select(
        _utc_hour(dialect, r.c.requested_at),
        r.c.status == "unmet",
        _seconds(dialect, r.c.first_accepted_at, r.c.queued_at),
        r.c.session_count,
    ).where(*_conditions(f))
    hours: dict[Any, _Tally] = {}
    result = await conn.stream(stmt)
    async for partition in result.partitions(_PARTITION):
        for hour, unmet, wait, sessions in partition:
            tally = hours.get(hour)
            if tally is None:
                if hour is None:
                    continue
                tally = hours[hour] = _Tally()
            tally.requests += 1
            if unmet:
                tally.unmet += 1
            if sessions:
                tally.sessions += sessions
            if wait is not None:  # to the millisecond, as the waits report counts it
                tally.waits.append(to_ms(float(wait)))
    return hours


#: One bucket's figures: requests, sessions, unmet, accepted, p90 wait (seconds or None).
Point = tuple[int, int, int, int, float | None]


async def _points_streamed(
    conn: AsyncConnection, f: Filters, tz: ZoneInfo, now: dt.datetime
) -> tuple[str, dt.date, dt.date, dict[dt.date, Point]] | None:
    """(bucket, first, end, figures per bucket start) read per UTC hour into Python (SQLite:
    no time zones in SQL); the reference :func:`_points_in_sql` is tested against."""
    hours = await _per_hour(conn, f)
    days: dict[dt.date, _Tally] = defaultdict(_Tally)
    for hour, tally in hours.items():  # a few thousand hours a year, each moved once
        days[_local_day(_parse_utc_hour(hour), tz)].add(tally)
    span = _range(f, tz, now, list(days))
    if span is None:
        return None
    first, end = span
    bucket = _bucket(first, end)
    buckets: dict[dt.date, _Tally] = defaultdict(_Tally)
    for day, tally in days.items():
        buckets[_bucket_start(day, bucket)].add(tally)
    points: dict[dt.date, Point] = {}
    for begins, t in buckets.items():
        values = sorted(t.waits)
        points[begins] = (t.requests, t.sessions, t.unmet, len(values), percentile(values, 90))
    return bucket, first, end, points


async def _points_in_sql(
    conn: AsyncConnection, f: Filters, tz: ZoneInfo, now: dt.datetime
) -> tuple[str, dt.date, dt.date, dict[dt.date, Point]] | None:
    """The result of :func:`_points_streamed`, grouped by PostgreSQL: the range from the
    first and last ``requested_at`` (the index on it), then one pass grouped by local day
    or ISO week, the p90 by ``percentile_cont``: a row per bucket comes back instead of
    one per request. A request's bucket is found by ``width_bucket`` among the buckets'
    first instants, each local midnight turned into UTC here by ``zoneinfo`` (a binary
    search per row: half the cost of ``timezone()`` per row over a year)."""
    low, high = (
        await conn.execute(
            sa.select(sa.func.min(r.c.requested_at), sa.func.max(r.c.requested_at)).where(
                *_conditions(f)
            )
        )
    ).one()
    seen = [_local_day(_aware(x), tz) for x in (low, high) if x is not None]
    span = _range(f, tz, now, seen)
    if span is None:
        return None
    first, end = span
    bucket = _bucket(first, end)
    days = _starts(first, end, bucket)
    days.append(days[-1] + _step(bucket))
    edges = [dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(UTC) for day in days]
    index = sa.func.width_bucket(
        r.c.requested_at, sa.literal(edges, sa.ARRAY(sa.DateTime(timezone=True))),
        type_=sa.Integer,
    ).label("b")
    # the database's own seconds to the first acceptance (``decided_s``, to the
    # millisecond: broker/db/computed.py), not date_part per row
    wait = sa.case((r.c.first_accepted_at.is_not(None), r.c.decided_s))
    stmt = (
        sa.select(
            index,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(r.c.session_count), 0),
            sa.func.count().filter(r.c.status == "unmet"),
            sa.func.count(wait),
            sa.func.percentile_cont(0.9).within_group(wait),
        )
        .where(*_conditions(f))
        .group_by(index)
    )
    points: dict[dt.date, Point] = {}
    for i, n, sessions, unmet, accepted, p90 in (await conn.execute(stmt)).all():
        if not 1 <= i < len(days):  # before the first bucket or after the last
            continue
        points[days[i - 1]] = (
            int(n), int(sessions), int(unmet), int(accepted),
            None if p90 is None else float(p90),
        )
    return bucket, first, end, points


def _bucket(first: dt.date, end: dt.date) -> str:
    return "day" if (end - first).days <= DAY_BUCKETS_MAX else "week"


def _step(bucket: str) -> dt.timedelta:
    return dt.timedelta(days=1 if bucket == "day" else 7)


def _starts(first: dt.date, end: dt.date, bucket: str) -> list[dt.date]:
    """The local dates the buckets of ``[first, end)`` begin on (at most
    :data:`MAX_BUCKETS`)."""
    starts: list[dt.date] = []
    at = _bucket_start(first, bucket)
    while at < end and len(starts) < MAX_BUCKETS:
        starts.append(at)
        at += _step(bucket)
    return starts


def _local_day(when: dt.datetime, tz: ZoneInfo) -> dt.date:
    return when.astimezone(tz).date()


def _range(
    f: Filters, tz: ZoneInfo, now: dt.datetime, seen: list[dt.date]
) -> tuple[dt.date, dt.date] | None:
    """[first, end) local days: the filters' dates, else the days with data (to today)."""
    first = _local_day(f.start, tz) if f.start is not None else (min(seen) if seen else None)
    end: dt.date | None
    if f.end is not None:
        # an end at local midnight excludes that day; any later time includes it
        end_local = f.end.astimezone(tz)
        end = end_local.date() + dt.timedelta(days=0 if end_local.time() == dt.time() else 1)
    elif f.start is not None:  # an open end: up to today
        end = max([*seen, _local_day(now, tz)]) + dt.timedelta(days=1)
    else:
        end = max(seen) + dt.timedelta(days=1) if seen else None
    if first is None or end is None or end <= first:
        return None
    return first, end


async def trends(
    engine: AsyncEngine, f: Filters, tz: ZoneInfo = DISTRICT_TZ, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Requests, sessions, unmet requests, accepted requests and p90 wait per day or week.

    ``{"bucket": "day"|"week", "timezone", "from", "to", "points": [{"start", "requests",
    "sessions", "unmet", "accepted", "p90_wait_s"}]}``: ``from``/``to`` are local dates
    (``to`` exclusive), each point's ``start`` the local date its day or week (Monday)
    begins. Without dates, the range runs over the days with data (with only ``from``,
    up to today).
    """
    now = now or dt.datetime.now(UTC)
    async with reading(engine) as conn:
        if conn.dialect.name == "postgresql":
            found = await _points_in_sql(conn, f, tz, now)
        else:
            found = await _points_streamed(conn, f, tz, now)
    if found is None:
        return {"bucket": "day", "timezone": tz.key, "from": None, "to": None, "points": []}
    bucket, first, end, figures = found
    points = []
    for begins in _starts(first, end, bucket):
        requests, sessions, unmet, accepted, p90 = figures.get(begins, (0, 0, 0, 0, None))
        points.append(
            {
                "start": begins.isoformat(),
                "requests": requests,
                "sessions": sessions,
                "unmet": unmet,
                "accepted": accepted,
                "p90_wait_s": _r(p90),
            }
        )
    return {
        "bucket": bucket,
        "timezone": tz.key,
        "from": first.isoformat(),
        "to": end.isoformat(),
        "points": points,
    }
