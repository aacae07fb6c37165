"""Trends over time: requests, sessions, unmet requests and the 90th-percentile wait per
day or per week, in the district's time zone (staff ask "is it getting better" first).

Same definitions and filters as :mod:`broker.stats` (a request belongs to the bucket of
its ``requested_at``; its sessions and its wait go with it; test traffic is left out).
The database groups by UTC hour (a few thousand groups a year); Python moves each hour to
its local day, so daylight-saving changes land on the right day. Waits are streamed as
one float per accepted request, as :func:`broker.stats.waits` reads them.

Guarantees: every bucket of the range is present, in order, with zeros where nothing
happened (so a line chart shows a quiet day as zero, not as a gap); the range is cut into
days up to :data:`DAY_BUCKETS_MAX` days and into ISO weeks (Monday to Sunday) beyond;
``p90_wait_s`` is ``None`` for a bucket with no accepted request.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db.models import help_requests as r
from broker.db.models import tutoring_sessions as s
from broker.stats import (
    _PARTITION,
    DISTRICT_TZ,
    UTC,
    Filters,
    _conditions,
    _first_acceptance,
    _parse_utc_hour,
    _r,
    _seconds,
    _utc_hour,
    percentile,
)

#: Ranges of at most this many days are drawn per day; longer ones per ISO week.
DAY_BUCKETS_MAX = 62
#: At most this many buckets (about ten years of weeks): a wider range is cut at its end.
MAX_BUCKETS = 520


def _bucket_start(day: dt.date, bucket: str) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) if bucket == "week" else day


async def _hourly(
    conn: AsyncConnection, column: Any, joined: Any, where: list[Any], extra: Any = None
) -> list[tuple[dt.datetime, int, int]]:
    """(UTC hour, rows, rows where ``extra``) per UTC hour."""
    hour = _utc_hour(conn.dialect.name, column).label("hour")
    flagged = sa.func.count(sa.case((extra, 1))) if extra is not None else sa.literal(0)
    stmt = sa.select(hour, sa.func.count(), flagged).select_from(joined).where(*where)
    rows = (await conn.execute(stmt.group_by(hour))).all()
    return [(_parse_utc_hour(str(h)), int(n), int(f)) for h, n, f in rows if h is not None]


async def _waits_by_hour(conn: AsyncConnection, f: Filters) -> list[tuple[dt.datetime, float]]:
    """(UTC hour of the request, wait in seconds) of every accepted request."""
    dialect = conn.dialect.name
    first = _first_acceptance()
    stmt = (
        sa.select(
            _utc_hour(dialect, r.c.requested_at),
            _seconds(dialect, first.c.first_accepted, r.c.queued_at),
        )
        .select_from(r.join(first, first.c.request_id == r.c.id))
        .where(r.c.queued_at.is_not(None), *_conditions(f))
    )
    out: list[tuple[dt.datetime, float]] = []
    result = await conn.stream(stmt)
    async for partition in result.partitions(_PARTITION):
        out.extend(
            (_parse_utc_hour(str(h)), float(w))
            for h, w in partition
            if h is not None and w is not None
        )
    return out


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
    where = _conditions(f)
    async with engine.connect() as conn:
        requests = await _hourly(conn, r.c.requested_at, r, where, r.c.status == "unmet")
        sessions = await _hourly(conn, r.c.requested_at, s.join(r, r.c.id == s.c.request_id), where)
        waits = await _waits_by_hour(conn, f)
    days: dict[dt.date, Counter[str]] = defaultdict(Counter)
    for when, n, unmet in requests:
        counted = days[_local_day(when, tz)]
        counted["requests"] += n
        counted["unmet"] += unmet
    for when, n, _ in sessions:
        days[_local_day(when, tz)]["sessions"] += n
    wait_days: dict[dt.date, list[float]] = defaultdict(list)
    for when, wait in waits:
        wait_days[_local_day(when, tz)].append(wait)
    span = _range(f, tz, now, [*days, *wait_days])
    if span is None:
        return {"bucket": "day", "timezone": tz.key, "from": None, "to": None, "points": []}
    first, end = span
    bucket = "day" if (end - first).days <= DAY_BUCKETS_MAX else "week"
    step = dt.timedelta(days=1 if bucket == "day" else 7)
    starts: list[dt.date] = []
    at = _bucket_start(first, bucket)
    while at < end and len(starts) < MAX_BUCKETS:
        starts.append(at)
        at += step
    totals: dict[dt.date, Counter[str]] = defaultdict(Counter)
    bucket_waits: dict[dt.date, list[float]] = defaultdict(list)
    for day, counts in days.items():
        totals[_bucket_start(day, bucket)].update(counts)
    for day, values in wait_days.items():
        bucket_waits[_bucket_start(day, bucket)].extend(values)
    points = []
    for begins in starts:
        counts = totals.get(begins, Counter())
        values = sorted(bucket_waits.get(begins, []))
        points.append(
            {
                "start": begins.isoformat(),
                "requests": counts["requests"],
                "sessions": counts["sessions"],
                "unmet": counts["unmet"],
                "accepted": len(values),
                "p90_wait_s": _r(percentile(values, 90)),
            }
        )
    return {
        "bucket": bucket,
        "timezone": tz.key,
        "from": first.isoformat(),
        "to": end.isoformat(),
        "points": points,
    }
