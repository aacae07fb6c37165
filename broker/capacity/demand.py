"""Observed demand per queue (vendor + language) and half-hour of the week, from the records.

For a period ``[start, end)`` (aware datetimes) this reads ``help_requests`` and
``tutoring_sessions`` and returns, for every queue and each of the week's 336 local
half-hours (the district's time zone, ``catalog.timezone``):

* **arrivals**: requests queued (``queued_at``) in that local half-hour during the period,
  and the **rate** per second: arrivals divided by the seconds that half-hour of the week
  occurred in the period (its *exposure*; a partial first or last half-hour counts its
  overlap, the autumn repeated hour counts twice, the skipped spring hour not at all);
* **handle time**: mean ``ended_at - accepted_at`` of the ended sessions of those requests
  (a requeued request contributes each of its sessions);
* **abandonment**: requests never accepted that gave up (``cancelled``, ``abandoned``,
  ``expired``, as ``broker.stats`` defines it) over accepted plus gave-up;
* **patience**: the censored-exponential estimate, total time in line (the accepted
  requests' waits up to acceptance plus the gave-up requests' times to give up) divided by
  the number who gave up; ``None`` when nobody gave up (infinitely patient as far as seen);
* the queue's **capacity**: concurrent sessions per tutor from the vendor catalog.

Guarantees: read-only; the same figures on SQLite and PostgreSQL (the database groups by
UTC half-hour, Python moves each to local time, so daylight-saving weeks land right);
test traffic, unmet requests (never queued) and sessions without a request (bookings) are
left out. Queues are the catalog's on-demand queues in catalog order, then any other queue
found in the records (a retired vendor) in name order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.constants import DEFAULT_TUTOR_CAPACITY
from broker.db.models import help_requests, tutoring_sessions
from broker.stats import GAVE_UP_STATUSES, _seconds
from routing.catalog import Catalog

UTC = dt.UTC
SLOTS_PER_DAY = 48
SLOTS_PER_WEEK = 7 * SLOTS_PER_DAY
HALF_HOUR = dt.timedelta(minutes=30)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
Queue = tuple[str, str]

r = help_requests
s = tutoring_sessions


@dataclass(slots=True)
class SlotDemand:
    """One queue's demand in one local half-hour of the week (``weekday`` 0 = Monday,
    ``slot`` 0-47 from local midnight), summed over the period."""

    weekday: int
    slot: int
    exposure_s: float = 0.0
    arrivals: int = 0
    accepted: int = 0
    gave_up: int = 0
    line_s: float = 0.0  # accepted waits + gave-up times to give up
    handled: int = 0
    handle_s: float = 0.0

    @property
    def rate_per_s(self) -> float:
        """Mean arrivals per second in this half-hour of the week (0 if never in period)."""
        return self.arrivals / self.exposure_s if self.exposure_s > 0 else 0.0

    @property
    def mean_handle_s(self) -> float | None:
        return self.handle_s / self.handled if self.handled else None

    @property
    def abandonment(self) -> float | None:
        decided = self.accepted + self.gave_up
        return self.gave_up / decided if decided else None

    @property
    def mean_patience_s(self) -> float | None:
        return self.line_s / self.gave_up if self.gave_up else None

    def add(self, other: SlotDemand) -> None:
        self.arrivals += other.arrivals
        self.accepted += other.accepted
        self.gave_up += other.gave_up
        self.line_s += other.line_s
        self.handled += other.handled
        self.handle_s += other.handle_s


@dataclass(slots=True)
class QueueDemand:
    """A queue's 336 half-hours (``slots[weekday * 48 + slot]``) and its period totals."""

    vendor: str
    language: str
    capacity: int
    slots: list[SlotDemand] = field(default_factory=lambda: [
        SlotDemand(i // SLOTS_PER_DAY, i % SLOTS_PER_DAY) for i in range(SLOTS_PER_WEEK)
    ])

    @property
    def queue(self) -> Queue:
        return (self.vendor, self.language)

    def total(self) -> SlotDemand:
        """The whole period in one: its handle time and patience are the queue's means."""
        out = SlotDemand(-1, -1, exposure_s=sum(x.exposure_s for x in self.slots))
        for x in self.slots:
            out.add(x)
        return out

    def at(self, weekday: int, slot: int) -> SlotDemand:
        return self.slots[weekday * SLOTS_PER_DAY + slot]


@dataclass(frozen=True, slots=True)
class Demand:
    """Observed demand over ``[start, end)``, local half-hours in ``timezone``."""

    start: dt.datetime
    end: dt.datetime
    timezone: str
    queues: tuple[QueueDemand, ...]


def week_slot(instant: dt.datetime, tz: ZoneInfo) -> int:
    """The local half-hour of the week ``instant`` falls in: ``weekday * 48 + slot``."""
    local = instant.astimezone(tz)
    return local.weekday() * SLOTS_PER_DAY + local.hour * 2 + local.minute // 30


def _half_hours(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, float]]:
    """UTC half-hour starts overlapping ``[start, end)`` with the seconds of overlap."""
    at = start.astimezone(UTC).replace(second=0, microsecond=0)
    at -= dt.timedelta(minutes=at.minute % 30)
    while at < end:
        overlap = (min(end, at + HALF_HOUR) - max(start, at)).total_seconds()
        if overlap > 0:
            yield at, overlap
        at += HALF_HOUR


def _half_hour_bucket(dialect: str, column: Any) -> sa.ColumnElement[int]:
    """The UTC half-hour a timestamp falls in, as whole half-hours since 1970 (exact)."""
    if dialect == "postgresql":
        epoch = sa.extract("epoch", column)
        return sa.cast(sa.func.floor(epoch / 1800), sa.BigInteger).label("bucket")
    # SQLite stores UTCDateTime as naive UTC text; strftime('%s') reads it as UTC seconds.
    return (sa.cast(sa.func.strftime("%s", column), sa.Integer) // 1800).label("bucket")


def _bucket(bucket: Any) -> dt.datetime:
    return EPOCH + HALF_HOUR * int(bucket)


def _where(start: dt.datetime, end: dt.datetime, vendor: str | None,
           language: str | None) -> list[sa.ColumnElement[bool]]:
    where = [r.c.queued_at >= start, r.c.queued_at < end, r.c.is_test == sa.false(),
             r.c.queue.is_not(None)]
    if vendor is not None:
        where.append(r.c.vendor == vendor)
    if language is not None:
        where.append(r.c.queue.endswith(f":{language}", autoescape=True))
    return where


async def _requests(conn: AsyncConnection, where: list[sa.ColumnElement[bool]]) -> list[Any]:
    dialect = conn.dialect.name
    first = r.c.first_accepted_at  # the request's own column: broker/request_rollup.py
    bucket = _half_hour_bucket(dialect, r.c.queued_at)
    accepted = first.is_not(None)
    gave_up = sa.and_(first.is_(None), r.c.status.in_(GAVE_UP_STATUSES))
    stmt = (
        sa.select(
            r.c.queue, bucket, sa.func.count(),
            sa.func.count(first),
            sa.func.sum(sa.case((gave_up, 1), else_=0)),
            sa.func.sum(sa.case(
                (accepted, _seconds(dialect, first, r.c.queued_at)),
                (sa.and_(gave_up, r.c.closed_at.is_not(None)),
                 _seconds(dialect, r.c.closed_at, r.c.queued_at)),
                else_=0.0,
            )),
        )
        .where(*where)
        .group_by(r.c.queue, bucket)
    )
    return list((await conn.execute(stmt)).all())


async def _handles(conn: AsyncConnection, where: list[sa.ColumnElement[bool]]) -> list[Any]:
    dialect = conn.dialect.name
    bucket = _half_hour_bucket(dialect, r.c.queued_at)
    stmt = (
        sa.select(r.c.queue, bucket, sa.func.count(),
                  sa.func.sum(_seconds(dialect, s.c.ended_at, s.c.accepted_at)))
        .select_from(s.join(r, r.c.id == s.c.request_id))
        .where(*where, s.c.ended_at.is_not(None))
        .group_by(r.c.queue, bucket)
    )
    return list((await conn.execute(stmt)).all())


def _split(queue_name: str) -> Queue:
    vendor, _, language = queue_name.partition(":")
    return vendor, language


async def observed_demand(
    engine: AsyncEngine, catalog: Catalog, start: dt.datetime, end: dt.datetime, *,
    vendor: str | None = None, language: str | None = None,
) -> Demand:
    """Demand per queue and local half-hour of the week over ``[start, end)``.

    Raises :class:`ValueError` for naive or empty periods (the edge turns it into a typed
    error). ``vendor``/``language`` narrow the queues.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    tz = catalog.timezone
    queues: dict[Queue, QueueDemand] = {}
    for v in catalog.on_demand_vendors:
        for lang in v.languages:
            if vendor in (None, v.id) and language in (None, lang):
                queues[(v.id, lang)] = QueueDemand(v.id, lang, v.capacity)

    def of(name: str) -> QueueDemand:
        q = _split(name)
        if q not in queues:
            known = catalog.vendor(q[0])
            queues[q] = QueueDemand(
                q[0], q[1], known.capacity if known is not None else DEFAULT_TUTOR_CAPACITY
            )
        return queues[q]

    where = _where(start, end, vendor, language)
    async with engine.connect() as conn:
        requests = await _requests(conn, where)
        handles = await _handles(conn, where)
    for name, bucket, arrivals, accepted, gave_up, line_s in requests:
        cell = of(name).slots[week_slot(_bucket(bucket), tz)]
        cell.arrivals += int(arrivals)
        cell.accepted += int(accepted)
        cell.gave_up += int(gave_up or 0)
        cell.line_s += max(0.0, float(line_s or 0.0))
    for name, bucket, handled, handle_s in handles:
        cell = of(name).slots[week_slot(_bucket(bucket), tz)]
        cell.handled += int(handled)
        cell.handle_s += max(0.0, float(handle_s or 0.0))
    exposure = [0.0] * SLOTS_PER_WEEK
    for at, seconds in _half_hours(start, end):
        exposure[week_slot(at, tz)] += seconds
    ordered = tuple(queues.values())
    for qd in ordered:
        for i, cell in enumerate(qd.slots):
            cell.exposure_s = exposure[i]
    return Demand(start, end, tz.key, ordered)
