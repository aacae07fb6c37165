"""Trends over time: requests, sessions, unmet requests and the 90th-percentile wait per
day or per week, in the district's time zone (staff ask "is it getting better" first).

Same definitions and filters as :mod:`broker.stats` (a request belongs to the bucket of
its ``requested_at``; its sessions and its wait go with it; test traffic is left out).
One pass over the requests (their first acceptance and session count grouped by request),
streamed as :func:`broker.stats.waits` reads waits; each request's UTC hour is moved to
its local day (once per distinct hour), so daylight-saving changes land on the right day.

Guarantees: every bucket of the range is present, in order, with zeros where nothing
happened (so a line chart shows a quiet day as zero, not as a gap); the range is cut into
days up to :data:`DAY_BUCKETS_MAX` days and into ISO weeks (Monday to Sunday) beyond;
``p90_wait_s`` is ``None`` for a bucket with no accepted request.
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
from broker.db.models import tutoring_sessions as s
from broker.stats import (
    _PARTITION,
    DISTRICT_TZ,
    UTC,
    Filters,
    _conditions,
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


async def _per_hour(conn: AsyncConnection, f: Filters) -> dict[str, _Tally]:
    """Per UTC hour (``YYYY-MM-DDTHH``) of ``requested_at``: the requests matching ``f``,
    the unmet ones, their sessions and the waits of the accepted ones. One streamed pass
    over the requests, their first acceptance and their session count (grouped by
    request), added up as it is read."""
    dialect = conn.dialect.name
    per_request = (
        sa.select(
            s.c.request_id,
            sa.func.min(s.c.accepted_at).label("first_accepted"),
            sa.func.count().label("sessions"),
        )
        .group_by(s.c.request_id)
        .subquery("per_request")
    )
    stmt = (
        sa.select(
            _utc_hour(dialect, r.c.requested_at),
            r.c.status == "unmet",
            _seconds(dialect, per_request.c.first_accepted, r.c.queued_at),
            per_request.c.sessions,
        )
        .select_from(r.outerjoin(per_request, per_request.c.request_id == r.c.id))
        .where(*_conditions(f))
    )
    hours: dict[str, _Tally] = {}
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
            if wait is not None:
                tally.waits.append(float(wait))
    return hours


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
    async with engine.connect() as conn:
        hours = await _per_hour(conn, f)
    days: dict[dt.date, _Tally] = defaultdict(_Tally)
    for hour, tally in hours.items():  # a few thousand hours a year, each moved once
        days[_local_day(_parse_utc_hour(str(hour)), tz)].add(tally)
    span = _range(f, tz, now, list(days))
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
    buckets: dict[dt.date, _Tally] = defaultdict(_Tally)
    for day, tally in days.items():
        buckets[_bucket_start(day, bucket)].add(tally)
    points = []
    for begins in starts:
        tally = buckets.get(begins) or _Tally()
        values = sorted(tally.waits)
        points.append(
            {
                "start": begins.isoformat(),
                "requests": tally.requests,
                "sessions": tally.sessions,
                "unmet": tally.unmet,
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
