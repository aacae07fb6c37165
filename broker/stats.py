"""Staff statistics over what the broker records: waits, service level, demand, usage.

Every figure here is computed from ``help_requests`` and ``tutoring_sessions`` with
SQLAlchemy Core, so the same code runs on SQLite and PostgreSQL. The database does the
filtering, joining and grouping; Python does only what SQLite cannot (percentiles, and
converting UTC hour buckets to the district's local time), over already-narrow columns.
On PostgreSQL the percentiles too are the database's (``percentile_cont``: waits, service
level, trends), so a few rows come back instead of one per request; SQLite keeps the
streamed path, and the two give the same figures (``tests/stats/test_stats_backends.py``).
Each report reads in one transaction of :func:`reading`.

Definitions (also in ``docs/stats.md``):

* **Queued request**: a request that was routed to a vendor queue (``queued_at`` set).
  Unmet requests are never queued.
* **Accepted request**: a queued request that has at least one tutoring session. A request
  that was requeued after its first session counts once, at its *first* acceptance.
* **Wait**: for an accepted request, first session's ``accepted_at`` minus the request's
  ``queued_at``, in seconds. Requests still waiting are excluded.
* **Gave up**: a queued request never accepted whose status is ``cancelled`` (the student
  left the line), ``abandoned`` (the student disconnected) or ``expired`` (the broker's
  maximum wait). Its *time to give up* is ``closed_at - queued_at``.
* **Service level at T**: accepted requests whose wait is at most T seconds, divided by
  accepted plus gave-up requests (so every give-up counts against, however early).
  Requests still waiting are in neither count.
* **Unmet**: a request no vendor could serve (status ``unmet``), with its reason.
* **Served by overflow**: a request whose first-choice vendor could not serve it
  (``first_choice_unmet`` set) and which another vendor's queue took instead. It is not
  unmet demand and is reported apart from it.
* **Group usage**: a student belongs to a group (SWD, EL, RFEP) when the group is in the
  ``groups`` snapshot of one of their requests. *Students using* counts distinct students
  with at least one session in the period.

All filters (:class:`Filters`) apply to the *request*: a session is in the period when its
request's ``requested_at`` is. Test traffic (``is_test``) is excluded unless asked for.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db.models import help_requests, roster_counts, schools, tutoring_sessions
from broker.stats_local_time import hour_of_week_counts

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
DISTRICT_TZ = ZoneInfo("America/Los_Angeles")
#: Student groups the district reports on, in its report's order ("All" comes first).
GROUPS: tuple[str, ...] = ("SWD", "EL", "RFEP")
GAVE_UP_STATUSES: tuple[str, ...] = ("abandoned", "cancelled", "expired")
STATUSES: tuple[str, ...] = (
    "requested",
    "unmet",
    "queued",
    "accepted",
    "ended",
    "cancelled",
    "abandoned",
    "expired",
)
#: Wait histogram buckets: ``[from_s, to_s)`` in seconds; the last one is open-ended.
WAIT_BUCKETS: tuple[tuple[str, float, float | None], ...] = (
    ("0-30s", 0.0, 30.0),
    ("30-60s", 30.0, 60.0),
    ("1-2 min", 60.0, 120.0),
    ("2-5 min", 120.0, 300.0),
    ("5-10 min", 300.0, 600.0),
    ("10-20 min", 600.0, 1200.0),
    ("20+ min", 1200.0, None),
)
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
DAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PARTITION = 10_000
#: PostgreSQL's ``work_mem`` for a report's transaction (:func:`reading`).
REPORT_WORK_MEM = "64MB"
#: The reports' ``random_page_cost`` (PostgreSQL): a year's requests and their indexes are
#: in memory, so reading a page out of order costs about what reading the next one does
#: (1.1, the usual setting for SSDs and cached data; the default 4 is for spinning disks).
#: With it the planner walks the index on the student in order to count distinct
#: students, instead of hashing a year of requests: half the time.
REPORT_RANDOM_PAGE_COST = 1.1

r = help_requests
s = tutoring_sessions


@dataclass(frozen=True, slots=True)
class Filters:
    """What to count. ``start``/``end`` bound ``requested_at`` as ``[start, end)`` (aware)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    school_id: str | None = None
    region: str | None = None
    vendor: str | None = None
    language: str | None = None
    grade: int | None = None
    include_test: bool = False

    def with_(self, **changes: Any) -> Filters:
        return replace(self, **changes)


def _conditions(f: Filters) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses on ``help_requests`` for ``f``."""
    where: list[sa.ColumnElement[bool]] = []
    if f.start is not None:
        where.append(r.c.requested_at >= f.start)
    if f.end is not None:
        where.append(r.c.requested_at < f.end)
    if f.school_id is not None:
        where.append(r.c.school_id == f.school_id)
    if f.region is not None:
        where.append(r.c.school_id.in_(sa.select(schools.c.id).where(schools.c.region == f.region)))
    if f.vendor is not None:
        where.append(r.c.vendor == f.vendor)
    if f.language is not None:
        where.append(r.c.language == f.language)
    if f.grade is not None:
        where.append(r.c.grade == f.grade)
    if not f.include_test:
        where.append(r.c.is_test == sa.false())
    return where


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for the reports. On PostgreSQL its transaction has no JIT (compiling a
    year's aggregate took longer than running it), more ``work_mem`` (a year's hash
    aggregates and sorts stay in memory instead of spilling to disk) and the
    :data:`REPORT_RANDOM_PAGE_COST` of cached data; ``SET LOCAL``, so all end with it."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # one round trip; set_config(..., true) is SET LOCAL
            await conn.execute(
                sa.text(
                    "SELECT set_config('jit', 'off', true),"
                    " set_config('work_mem', :work_mem, true),"
                    " set_config('random_page_cost', :page_cost, true)"
                ),
                {"work_mem": REPORT_WORK_MEM, "page_cost": str(REPORT_RANDOM_PAGE_COST)},
            )
        yield conn


# -- portable SQL helpers -----------------------------------------------------------------
def _seconds(dialect: str, later: Any, earlier: Any) -> sa.ColumnElement[float]:
    """``later - earlier`` in (fractional) seconds, as a float, on either database."""
    if dialect == "postgresql":
        # date_part is double precision; extract() is numeric since PostgreSQL 14, and
        # sorting a year of numerics for the percentiles took three times as long (the
        # same value: an interval's microseconds over 10^6, correctly rounded either way)
        return sa.cast(sa.func.date_part("epoch", later - earlier), sa.Float)
    # SQLite stores UTCDateTime as naive UTC text, which julianday() reads.
    return sa.cast((sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0, sa.Float)


def _utc_hour(dialect: str, column: Any) -> sa.ColumnElement[Any]:
    """The UTC hour a timestamp falls in (exact, no rounding), for :func:`_parse_utc_hour`:
    the hours since the Unix epoch on PostgreSQL (``floor(epoch / 3600)``: grouping a
    year by a double took half the time of ``date_trunc`` on the timestamp, and an
    instant's epoch, a whole number of microseconds, is never rounded across an hour's
    boundary at these magnitudes), text ``YYYY-MM-DDTHH`` on SQLite."""
    if dialect == "postgresql":
        return sa.func.floor(sa.func.date_part("epoch", column) / 3600.0)
    return sa.func.strftime("%Y-%m-%dT%H", column)


def _parse_utc_hour(value: Any) -> dt.datetime:
    """The aware UTC hour of a :func:`_utc_hour` value (hours since the epoch, or text)."""
    if isinstance(value, int | float):
        return EPOCH + dt.timedelta(hours=int(value))
    return dt.datetime.strptime(str(value), "%Y-%m-%dT%H").replace(tzinfo=UTC)


#: How much earlier than its request's ``requested_at`` a session's ``accepted_at`` may
#: read (clocks of different processes): :func:`session_bounds` keeps this margin.
CLOCK_MARGIN = dt.timedelta(days=1)


def session_bounds(f: Filters) -> list[sa.ColumnElement[bool]]:
    """Conditions on ``tutoring_sessions`` that keep every session of a request matching
    ``f`` and leave out sessions accepted long before ``f.start`` (their requests cannot
    match), so a range reads its own sessions through the index on ``accepted_at``
    instead of every session. Sessions are still joined to their requests, which decide."""
    if f.start is None:
        return []
    return [s.c.accepted_at >= f.start - CLOCK_MARGIN]


# -- plain statistics ---------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks.

    Same definition as PostgreSQL's ``percentile_cont`` and NumPy's default: rank
    ``(n - 1) * p / 100``, interpolated. ``None`` for no values.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    rank = (n - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def describe(values: Iterable[float]) -> dict[str, Any]:
    """count, mean, p50/p90/p95/p99 and max of wait seconds (rounded to milliseconds)."""
    ordered = sorted(values)
    n = len(ordered)
    out: dict[str, Any] = {
        "count": n,
        "mean_s": _r(sum(ordered) / n) if n else None,
    }
    for p in PERCENTILES:
        out[f"p{p}_s"] = _r(percentile(ordered, p))
    out["max_s"] = _r(ordered[-1]) if n else None
    return out


def histogram(values: Iterable[float]) -> list[dict[str, Any]]:
    """Counts per :data:`WAIT_BUCKETS` bucket (``from_s`` inclusive, ``to_s`` exclusive)."""
    counts = [0] * len(WAIT_BUCKETS)
    for value in values:
        for i, (_label, low, high) in enumerate(WAIT_BUCKETS):
            if value >= low and (high is None or value < high):
                counts[i] += 1
                break
        else:  # a negative wait (clock skew between processes): count it as no wait
            counts[0] += 1
    return _histogram(counts)


def _ranked(counter: Counter[Any]) -> list[dict[str, Any]]:
    """``[{"key", "count"}]``, most first, ties by key (``None`` keys last).

    Keys are compared as what they are: numbers (grades: PK = -2, TK = -1, K = 0, 1-12) as
    numbers, anything else as text, so grade 3 comes before grade 10.
    """

    def order(kv: tuple[Any, int]) -> tuple[int, bool, float, str]:
        key, count = kv
        number = isinstance(key, int | float) and not isinstance(key, bool)
        return (-count, key is None, key if number else 0, "" if number else str(key))

    return [{"key": key, "count": count} for key, count in sorted(counter.items(), key=order)]


# -- queued outcomes (shared by waits and service level) -------------------------------------
@dataclass(slots=True)
class _Spread:
    """What the reports say about one list of seconds (rounded to ms): :func:`describe`'s
    figures, the :data:`WAIT_BUCKETS` counts (accepted requests' waits only; else empty)
    and how many are at most the threshold."""

    described: dict[str, Any]
    buckets: list[int]
    within: int

    @classmethod
    def of(cls, values: list[float], threshold_s: float, buckets: bool = False) -> _Spread:
        return cls(
            describe(values),
            [b["count"] for b in histogram(values)] if buckets else [],
            sum(1 for w in values if w <= threshold_s),
        )


@dataclass(slots=True)
class _Outcomes:
    accepted: _Spread
    gave_up: dict[str, _Spread]
    still_waiting: int


def to_ms(seconds: float) -> float:
    """``seconds`` to the millisecond exactly as ``decided_s`` is (broker/db/computed.py:
    ``round(x * 1000) / 1000``, the product rounded half to even), so figures read from
    the column and figures computed here agree even on a half millisecond."""
    return round(seconds * 1000.0) / 1000.0


def _outcome_rows(dialect: str, f: Filters) -> sa.Select[Any]:
    """(status, wait_s, gave_up_s) of every queued request matching ``f``: the seconds to
    its first acceptance (``None`` if never accepted) and from queued to closed. One
    table: the first acceptance is the request's ``first_accepted_at``
    (:mod:`broker.request_rollup`)."""
    return sa.select(
        r.c.status,
        _seconds(dialect, r.c.first_accepted_at, r.c.queued_at).label("wait_s"),
        _seconds(dialect, r.c.closed_at, r.c.queued_at).label("gave_up_s"),
    ).where(r.c.queued_at.is_not(None), *_conditions(f))


async def _outcomes_streamed(conn: AsyncConnection, f: Filters, threshold_s: float) -> _Outcomes:
    """Every queued request's outcome read into Python, then described (SQLite, which has
    no ``percentile_cont``); the reference :func:`_outcomes_in_sql` is tested against."""
    accepted: list[float] = []
    gave_up: dict[str, list[float]] = {k: [] for k in GAVE_UP_STATUSES}
    still_waiting = 0
    result = await conn.stream(_outcome_rows(conn.dialect.name, f))
    async for partition in result.partitions(_PARTITION):
        for status, wait_s, gave_up_s in partition:
            if wait_s is not None:
                accepted.append(to_ms(float(wait_s)))
            elif status in gave_up:
                gave_up[status].append(to_ms(float(gave_up_s or 0.0)))
            elif status == "queued":
                still_waiting += 1
    return _Outcomes(
        _Spread.of(accepted, threshold_s, buckets=True),
        {k: _Spread.of(v, threshold_s) for k, v in gave_up.items()},
        still_waiting,
    )


async def _outcomes_in_sql(conn: AsyncConnection, f: Filters, threshold_s: float) -> _Outcomes:
    """The figures of :func:`_outcomes_streamed`, aggregated by PostgreSQL in one pass: a
    row per outcome comes back instead of one per request. Each value is rounded to the
    millisecond before it is counted, as there (``decided_s`` is ``round(x * 1000) /
    1000``, to even like Python's ``round``); percentiles are ``percentile_cont``,
    :func:`percentile`'s interpolation."""
    kinds = ("accepted", *GAVE_UP_STATUSES)
    code = sa.case(
        (r.c.first_accepted_at.is_not(None), 0),
        *((r.c.status == name, i) for i, name in enumerate(GAVE_UP_STATUSES, 1)),
        (r.c.status == "queued", len(kinds)),
    ).label("kind")
    # MATERIALIZED: each row's kind computed once and read by both branches; the seconds
    # are the database's own column (``decided_s``: to the first acceptance or the
    # give-up, rounded to the millisecond, broker/db/computed.py), not computed per row
    per = (
        sa.select(code, sa.func.coalesce(r.c.decided_s, 0.0).label("v"))
        .where(r.c.queued_at.is_not(None), *_conditions(f))
        .cte("per")
        .prefix_with("MATERIALIZED")
    )
    v = per.c.v
    # Few aggregates per row (each costs about as much as the scan over a year): the
    # counts, sums, maxima and within-threshold counts per outcome and histogram bucket
    # (a hash of a few dozen cells, summed here), and one branch for the percentiles,
    # each sorting only its own outcome's values.
    bucket = sa.func.width_bucket(
        v, sa.literal([high for _l, _low, high in WAIT_BUCKETS if high], sa.ARRAY(sa.Float))
    )
    fractions = sa.literal([p / 100.0 for p in PERCENTILES], sa.ARRAY(sa.Float))
    none = sa.null().cast(sa.ARRAY(sa.Float))
    cells = sa.select(
        per.c.kind, bucket.label("b"), sa.func.count().label("n"), sa.func.sum(v).label("total"),
        sa.func.max(v).label("top"), sa.func.count().filter(v <= threshold_s).label("within"),
        *(none.label(f"p{i}") for i in range(len(kinds))),
    ).group_by(per.c.kind, bucket)
    spreads_row = sa.select(
        sa.literal(-1), sa.literal(-1), sa.null(), sa.null(), sa.null(), sa.null(),
        *(
            sa.func.percentile_cont(fractions).within_group(v).filter(per.c.kind == i)
            for i in range(len(kinds))
        ),
    )
    count: Counter[int] = Counter()
    total: dict[int, float] = defaultdict(float)
    within: Counter[int] = Counter()
    top: dict[int, float] = {}
    histogram_counts = [0] * len(WAIT_BUCKETS)
    pcts: list[Any] = []
    for kind, b, n, sum_v, max_v, within_n, *kind_pcts in await conn.execute(
        sa.union_all(cells, spreads_row)
    ):
        if kind == -1:
            pcts = kind_pcts
            continue
        count[kind] += int(n)
        if kind == len(kinds):
            continue
        total[kind] += float(sum_v)
        within[kind] += int(within_n)
        top[kind] = max(top.get(kind, float(max_v)), float(max_v))
        if kind == 0:
            histogram_counts[int(b)] += int(n)
    still_waiting = count[len(kinds)]
    spreads: dict[str, _Spread] = {}
    for i, name in enumerate(kinds):
        if not count[i]:
            spreads[name] = _Spread.of([], threshold_s, buckets=name == "accepted")
            continue
        described: dict[str, Any] = {"count": count[i], "mean_s": _r(total[i] / count[i])}
        for p, value in zip(PERCENTILES, pcts[i], strict=True):
            described[f"p{p}_s"] = _r(float(value))
        described["max_s"] = _r(top[i])
        spreads[name] = _Spread(
            described, histogram_counts if name == "accepted" else [], within[i]
        )
    return _Outcomes(
        spreads["accepted"], {k: spreads[k] for k in GAVE_UP_STATUSES}, still_waiting
    )


async def _queued_outcomes(conn: AsyncConnection, f: Filters, threshold_s: float) -> _Outcomes:
    """Accepted requests' waits, give-ups' times and the still waiting, for ``f``: in
    PostgreSQL's SQL there, streamed into Python on SQLite (the same figures)."""
    if conn.dialect.name == "postgresql":
        return await _outcomes_in_sql(conn, f, threshold_s)
    return await _outcomes_streamed(conn, f, threshold_s)


def _histogram(counts: list[int]) -> list[dict[str, Any]]:
    return [
        {"bucket": label, "from_s": low, "to_s": high, "count": counts[i]}
        for i, (label, low, high) in enumerate(WAIT_BUCKETS)
    ]


async def waits(engine: AsyncEngine, f: Filters) -> dict[str, Any]:
    """Wait-time distribution of accepted requests, and times to give up.

    Returns ``count, mean_s, p50_s, p90_s, p95_s, p99_s, max_s, histogram`` for accepted
    requests, ``gave_up`` (per status: the same statistics of the time to give up, without
    histogram; plus ``total``) and ``still_waiting`` (queued now, excluded from the rest).
    """
    async with reading(engine) as conn:
        o = await _queued_outcomes(conn, f, 60.0)
    out = dict(o.accepted.described)
    out["histogram"] = _histogram(o.accepted.buckets)
    gave_up: dict[str, Any] = {status: v.described for status, v in o.gave_up.items()}
    gave_up["total"] = sum(v.described["count"] for v in o.gave_up.values())
    out["gave_up"] = gave_up
    out["still_waiting"] = o.still_waiting
    return out


async def service_level(
    engine: AsyncEngine, f: Filters, threshold_s: float = 60.0
) -> dict[str, Any]:
    """Share of queued requests accepted within ``threshold_s`` seconds (inclusive).

    ``share`` is ``within / (accepted + gave_up)``; ``None`` when nothing was decided.
    """
    async with reading(engine) as conn:
        o = await _queued_outcomes(conn, f, threshold_s)
    accepted = o.accepted.described["count"]
    within = o.accepted.within
    gave_up = sum(v.described["count"] for v in o.gave_up.values())
    gave_up_within = sum(v.within for v in o.gave_up.values())
    decided = accepted + gave_up
    return {
        "threshold_s": threshold_s,
        "within": within,
        "accepted": accepted,
        "accepted_later": accepted - within,
        "gave_up": gave_up,
        "gave_up_within": gave_up_within,
        "denominator": decided,
        "share": _r(within / decided, 4) if decided else None,
        "still_waiting": o.still_waiting,
    }


# -- hour of week ----------------------------------------------------------------------------
async def _per_utc_hour(
    conn: AsyncConnection, column: Any, joined: Any, where: Sequence[Any]
) -> list[tuple[dt.datetime, int]]:
    hour = _utc_hour(conn.dialect.name, column).label("hour")
    stmt = sa.select(hour, sa.func.count()).select_from(joined).where(*where).group_by(hour)
    rows = (await conn.execute(stmt)).all()
    return [(_parse_utc_hour(h), int(n)) for h, n in rows if h is not None]


async def _per_local_hour_of_week(
    conn: AsyncConnection, column: Any, tz: ZoneInfo, joined: Any, where: Sequence[Any]
) -> list[tuple[int, int]]:
    """(hour of the week on ``tz``'s wall clock, 0 = Monday 00:00; count) of ``column``:
    counted per local hour by PostgreSQL (:mod:`broker.stats_local_time`), per UTC hour
    on SQLite and each moved to local time here, so daylight-saving changes land right."""
    if conn.dialect.name == "postgresql":
        rows = await conn.execute(hour_of_week_counts(column, tz, joined, where))
        return [(int(how), int(n)) for how, n in rows if how is not None]
    out = []
    for when, n in await _per_utc_hour(conn, column, joined, where):
        local = when.astimezone(tz)
        out.append((local.weekday() * 24 + local.hour, n))
    return out


async def heatmap(engine: AsyncEngine, f: Filters, tz: ZoneInfo = DISTRICT_TZ) -> dict[str, Any]:
    """Sessions started (accepted) per hour of week, in the district's local time.

    ``cells[d][h]`` counts sessions whose ``accepted_at`` falls on weekday ``d`` (0 =
    Monday) at local hour ``h``. Counted per UTC hour in SQL, then each hour is moved to
    local time (by PostgreSQL itself, from the zone's transitions:
    :func:`_per_local_hour_of_week`), so daylight-saving changes land in the right cell.
    A request's only session starts at its ``first_accepted_at`` (one pass over the
    requests); only the few requests with more than one session (requeued) have their
    sessions read.
    """
    cells = [[0] * 24 for _ in range(7)]
    where = _conditions(f)
    parts: list[tuple[Any, Any, list[Any]]] = [
        (r.c.first_accepted_at, r, [r.c.session_count == 1, *where]),
        (s.c.accepted_at, s.join(r, r.c.id == s.c.request_id), [r.c.session_count > 1, *where]),
    ]
    async with reading(engine) as conn:
        for column, joined, conditions in parts:
            for how, n in await _per_local_hour_of_week(conn, column, tz, joined, conditions):
                cells[how // 24][how % 24] += n
    return {
        "timezone": tz.key,
        "days": list(DAYS),
        "hours": list(range(24)),
        "cells": cells,
        "total": sum(map(sum, cells)),
        "peak": _peak(cells),
    }


def _peak(cells: list[list[int]]) -> dict[str, Any] | None:
    """The busiest cell (the earliest in the week on a tie), or ``None`` if all are empty."""
    best = max(
        ((n, -d, -h) for d, row in enumerate(cells) for h, n in enumerate(row)), default=None
    )
    if best is None or best[0] == 0:
        return None
    n, d, h = best
    return {"day": DAYS[-d], "hour": -h, "sessions": n}


# -- unmet demand ----------------------------------------------------------------------------
async def unmet(engine: AsyncEngine, f: Filters, tz: ZoneInfo = DISTRICT_TZ) -> dict[str, Any]:
    """Unmet requests by reason, language, grade, school and local hour of day; overflow apart.

    ``by_school`` names the school from the directory (``name`` is ``None`` for a school
    the directory does not know). ``overflow`` counts requests served by a vendor other
    than their first choice, by the first choice's reason and language, and how many of
    them were accepted.
    """
    where = [*_conditions(f)]
    unmet_where = [r.c.status == "unmet", *where]
    async with reading(engine) as conn:
        dims: dict[str, Counter[Any]] = {}
        for name, column in (
            ("by_reason", r.c.unmet_reason),
            ("by_language", r.c.language),
            ("by_grade", r.c.grade),
        ):
            rows = await conn.execute(
                sa.select(column, sa.func.count()).where(*unmet_where).group_by(column)
            )
            dims[name] = Counter({key: int(n) for key, n in rows})
        school_rows = (
            await conn.execute(
                sa.select(r.c.school_id, schools.c.name, sa.func.count())
                .select_from(r.outerjoin(schools, schools.c.id == r.c.school_id))
                .where(*unmet_where)
                .group_by(r.c.school_id, schools.c.name)
            )
        ).all()
        by_hour = [0] * 24
        for how, n in await _per_local_hour_of_week(conn, r.c.requested_at, tz, r, unmet_where):
            by_hour[how % 24] += n
        had_session = r.c.session_count > 0
        overflow_rows = (
            await conn.execute(
                sa.select(
                    r.c.first_choice_unmet,
                    r.c.language,
                    r.c.vendor,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.case((had_session, 1), else_=0)), 0),
                )
                .where(r.c.first_choice_unmet.is_not(None), *where)
                .group_by(r.c.first_choice_unmet, r.c.language, r.c.vendor)
            )
        ).all()
    names = {school_id: name for school_id, name, _n in school_rows}
    by_school = _ranked(Counter({school_id: int(n) for school_id, _name, n in school_rows}))
    for item in by_school:
        item["name"] = names.get(item["key"])
    ov_reason: Counter[Any] = Counter()
    ov_language: Counter[Any] = Counter()
    ov_vendor: Counter[Any] = Counter()
    ov_accepted = 0
    for reason, language, vendor, n, accepted in overflow_rows:
        ov_reason[reason] += int(n)
        ov_language[language] += int(n)
        ov_vendor[vendor] += int(n)
        ov_accepted += int(accepted)
    return {
        "total": sum(dims["by_reason"].values()),
        "by_reason": _ranked(dims["by_reason"]),
        "by_language": _ranked(dims["by_language"]),
        "by_grade": _ranked(dims["by_grade"]),
        "by_school": by_school,
        "by_hour": by_hour,
        "timezone": tz.key,
        "overflow": {
            "total": sum(ov_reason.values()),
            "accepted": ov_accepted,
            "by_first_choice_reason": _ranked(ov_reason),
            "by_language": _ranked(ov_language),
            "by_vendor": _ranked(ov_vendor),
        },
    }


# -- usage by student group ------------------------------------------------------------------
def _flags(groups: str | None) -> set[str]:
    return {g.strip().upper() for g in (groups or "").split(",") if g.strip()}


async def enrolled_by_group(conn: AsyncConnection, f: Filters) -> dict[str, int]:
    """Rostered students per group (``All`` included), restricted by school/region/grade:
    read from the roster's counts per school, grade and groups (:mod:`broker.roster_counts`),
    which each roster import rewrites with the roster."""
    st = roster_counts
    where: list[sa.ColumnElement[bool]] = []
    if f.school_id is not None:
        where.append(st.c.school_id == f.school_id)
    if f.region is not None:
        where.append(
            st.c.school_id.in_(sa.select(schools.c.id).where(schools.c.region == f.region))
        )
    if f.grade is not None:
        where.append(st.c.grade == f.grade)
    rows = await conn.execute(
        sa.select(st.c.groups, sa.func.sum(st.c.students)).where(*where).group_by(st.c.groups)
    )
    counts = dict.fromkeys(("All", *GROUPS), 0)
    for groups, n in rows:
        counts["All"] += int(n)
        for flag in _flags(groups) & set(GROUPS):
            counts[flag] += int(n)
    return counts


async def _usage_by_group(
    conn: AsyncConnection, f: Filters
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(students using, students requesting, sessions) per group for ``f``.

    A student counts in a group when any of their requests carried it, and a session in
    a group when its request did. The database adds up the students whose requests all
    carry the same groups (nearly all: one hash over the requests, then one row per
    groups value); the few whose groups changed within the period come back one row per
    (student, groups) and are counted here as distinct students, so nobody is counted
    twice. (A window over the students to find them instead sorted every student: half
    the report's time over a year.)
    """
    groups = sa.func.coalesce(r.c.groups, "")
    per = (
        sa.select(
            r.c.student,
            sa.func.min(groups).label("lo"),
            sa.func.max(groups).label("hi"),
            sa.func.sum(r.c.session_count).label("n"),
        )
        .where(*_conditions(f))
        .group_by(r.c.student)
        .cte("per")
        .prefix_with("MATERIALIZED")
    )
    alike = (
        sa.select(
            per.c.lo, sa.null().label("student"), sa.func.count(),
            sa.func.count().filter(per.c.n > 0), sa.func.sum(per.c.n),
        )
        .where(per.c.lo == per.c.hi)
        .group_by(per.c.lo)
    )
    changed = (
        sa.select(
            groups, r.c.student, sa.literal(1), sa.literal(0), sa.func.sum(r.c.session_count)
        )
        .join_from(r, per, sa.and_(per.c.student == r.c.student, per.c.lo != per.c.hi))
        .where(*_conditions(f))
        .group_by(r.c.student, groups)
    )
    using: Counter[str] = Counter()
    requesting: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    changed_using: dict[str, set[str]] = defaultdict(set)
    changed_requesting: dict[str, set[str]] = defaultdict(set)
    for groups, student, students, served, n in await conn.execute(sa.union_all(alike, changed)):
        for group in ("All", *(_flags(groups) & set(GROUPS))):
            sessions[group] += int(n or 0)
            if student is None:
                requesting[group] += int(students)
                using[group] += int(served)
                continue
            changed_requesting[group].add(student)
            if n:
                changed_using[group].add(student)
    for group, who in changed_requesting.items():
        requesting[group] += len(who)
    for group, who in changed_using.items():
        using[group] += len(who)
    return using, requesting, sessions


async def group_usage(engine: AsyncEngine, f: Filters) -> dict[str, Any]:
    """Students using homework help and their sessions, per group, against enrolment.

    Per group (``All``, SWD, EL, RFEP): ``students_using`` (distinct students with a
    session), ``sessions``, ``sessions_per_student``, ``students_requesting`` (distinct
    students with any request, met or not), and ``enrolled`` / ``pct_of_enrolled`` from the
    ``students`` roster (``None`` when the roster is empty). Enrolment is today's roster,
    narrowed by school, region and grade only.
    """
    async with reading(engine) as conn:
        students_using, requesting, sessions = await _usage_by_group(conn, f)
        enrolled = await enrolled_by_group(conn, f)
    rows = []
    for group in ("All", *GROUPS):
        using = students_using[group]
        roster = enrolled[group] if enrolled["All"] else None
        rows.append(
            {
                "group": group,
                "enrolled": roster,
                "students_using": using,
                "pct_of_enrolled": _r(100.0 * using / roster, 2) if roster else None,
                "sessions": sessions[group],
                "sessions_per_student": _r(sessions[group] / using, 2) if using else None,
                "students_requesting": requesting[group],
            }
        )
    return {"groups": rows}


# -- vendor capacity -------------------------------------------------------------------------
async def vendor_capacity(
    engine: AsyncEngine, f: Filters, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Per vendor: sessions, tutor-hours in session, distinct tutors, average concurrency.

    ``tutor_hours`` (and ``tutor_minutes``) sums ``ended_at - accepted_at`` of ended
    sessions (open sessions are counted in ``sessions`` but not in hours).
    ``avg_concurrent`` is tutor-hours divided by the period's hours: the mean number of
    sessions in progress at any moment. The period is ``[start, end)`` of the filters, an
    open end clipped to ``now``; without dates, from the first acceptance to the last end
    in the data.
    """
    now = now or dt.datetime.now(UTC)
    async with reading(engine) as conn:
        secs = _seconds(conn.dialect.name, s.c.ended_at, s.c.accepted_at)
        # joined, not sessions_of(): measured 3x slower here on a freshly loaded year
        joined = s.join(r, r.c.id == s.c.request_id)
        where = [*_conditions(f), *session_bounds(f)]
        if conn.dialect.name == "postgresql":
            # per vendor and tutor first (hashed, a few hundred rows), then per vendor: the
            # distinct tutors are that first grouping's rows, no count(DISTINCT) sort
            per_tutor = (
                sa.select(
                    s.c.vendor,
                    sa.func.count().label("n"),
                    sa.func.count(s.c.ended_at).label("ended"),
                    sa.func.sum(secs).label("seconds"),
                    sa.func.min(s.c.accepted_at).label("first"),
                    sa.func.max(sa.func.coalesce(s.c.ended_at, s.c.accepted_at)).label("last"),
                )
                .select_from(joined)
                .where(*where)
                .group_by(s.c.vendor, s.c.tutor_id)
                .subquery("per_tutor")
            )
            stmt = sa.select(
                per_tutor.c.vendor,
                sa.func.sum(per_tutor.c.n),
                sa.func.sum(per_tutor.c.ended),
                sa.func.coalesce(sa.func.sum(per_tutor.c.seconds), 0.0),
                sa.func.count(),
                sa.func.min(per_tutor.c.first),
                sa.func.max(per_tutor.c.last),
            ).group_by(per_tutor.c.vendor)
        else:  # SQLite groups by sorting: one grouping is cheaper there
            stmt = (
                sa.select(
                    s.c.vendor,
                    sa.func.count(),
                    sa.func.count(s.c.ended_at),
                    sa.func.coalesce(sa.func.sum(secs), 0.0),
                    sa.func.count(sa.distinct(s.c.tutor_id)),
                    sa.func.min(s.c.accepted_at),
                    sa.func.max(sa.func.coalesce(s.c.ended_at, s.c.accepted_at)),
                )
                .select_from(joined)
                .where(*where)
                .group_by(s.c.vendor)
            )
        rows = (await conn.execute(stmt)).all()
    first = min((_aware(row[5]) for row in rows if row[5] is not None), default=None)
    last = max((_aware(row[6]) for row in rows if row[6] is not None), default=None)
    start = f.start or first
    end = min(f.end, now) if f.end is not None else (last if f.start is None else now)
    hours = (end - start).total_seconds() / 3600.0 if start and end and end > start else 0.0
    vendors = []
    for vendor, n, ended_n, seconds, tutors, _first, _last in sorted(rows, key=lambda x: x[0]):
        ended = int(ended_n)  # sums of counts: numeric on PostgreSQL
        tutor_hours = float(seconds or 0.0) / 3600.0
        vendors.append(
            {
                "vendor": vendor,
                "sessions": int(n),
                "ended_sessions": int(ended),
                "tutor_hours": _r(tutor_hours, 2),
                # minutes too: a day of short chats is 0.00 hours at two decimals
                "tutor_minutes": _r(tutor_hours * 60.0, 2),
                "distinct_tutors": int(tutors),
                "avg_session_min": _r(tutor_hours * 60.0 / ended, 2) if ended else None,
                "avg_concurrent": _r(tutor_hours / hours, 3) if hours else None,
            }
        )
    return {
        "period": {
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
            "hours": _r(hours, 2),
        },
        "vendors": vendors,
    }


def _aware(value: Any) -> dt.datetime:
    """Aggregates (min/max) may come back as text on SQLite, without the column type."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _students_and_sessions(dialect: str, where: Sequence[Any]) -> sa.Select[Any]:
    """(distinct students, of them with a session, sessions) of the requests under
    ``where``, in one pass over the requests. PostgreSQL groups by student (hashed)
    rather than ``count(DISTINCT)`` (a sort: twice as long over a year); SQLite's
    ``count(DISTINCT)`` (an index of the values) is its faster one."""
    if dialect == "postgresql":
        per_student = (
            sa.select(sa.func.sum(r.c.session_count).label("n"))
            .where(*where)
            .group_by(r.c.student)
            .subquery("per_student")
        )
        n = per_student.c.n
        return sa.select(
            sa.func.count(), sa.func.count().filter(n > 0), sa.func.coalesce(sa.func.sum(n), 0)
        )
    served = sa.case((r.c.session_count > 0, r.c.student))
    return sa.select(
        sa.func.count(sa.distinct(r.c.student)),
        sa.func.count(sa.distinct(served)),
        sa.func.coalesce(sa.func.sum(r.c.session_count), 0),
    ).where(*where)


# -- summary -------------------------------------------------------------------------------------
async def summary(engine: AsyncEngine, f: Filters) -> dict[str, Any]:
    """Totals over the period.

    ``requests`` (all), ``by_status`` (current status of each), ``unmet``, ``queued``
    (ever queued), ``accepted`` (queued and given at least one session), ``gave_up`` and
    ``still_waiting`` (queued, never accepted: as :func:`waits` and :func:`service_level`
    count them, so ``accepted + gave_up + still_waiting == queued``), ``waiting_now`` (in
    a queue now, including a request requeued after its tutor left, which is also
    accepted), ``in_session_now``, ``overflowed``, ``sessions``, ``unique_students``
    (distinct students with a request), ``students_served`` (with a session) and
    ``sessions_per_student`` (sessions / students served: the district's "averaging N
    sessions each").
    """
    where = _conditions(f)
    has_session = r.c.session_count > 0
    async with reading(engine) as conn:
        by_status_rows = await conn.execute(
            sa.select(
                r.c.status,
                sa.func.count(),
                sa.func.count(r.c.queued_at),
                sa.func.count(r.c.first_choice_unmet),
                sa.func.sum(sa.case((has_session, 1), else_=0)),
            )
            .where(*where)
            .group_by(r.c.status)
        )
        by_status: Counter[str] = Counter()
        queued = overflowed = accepted = gave_up = still_waiting = 0
        for status, n, q, o, a_n in by_status_rows:
            a = int(a_n or 0)
            by_status[str(status)] += int(n)
            queued += int(q)
            overflowed += int(o)
            accepted += a
            # Less the requests a tutor accepted before they were requeued: those count as
            # accepted, whatever happened to them after.
            if status in GAVE_UP_STATUSES:
                gave_up += int(q) - a
            elif status == "queued":
                still_waiting += int(q) - a
        students_row = (
            await conn.execute(_students_and_sessions(conn.dialect.name, where))
        ).one()
    unique_students, served, sessions = (int(v) for v in students_row)
    return {
        "requests": sum(by_status.values()),
        "by_status": {status: by_status.get(status, 0) for status in STATUSES},
        "unmet": by_status.get("unmet", 0),
        "queued": queued,
        "accepted": accepted,
        "gave_up": gave_up,
        "still_waiting": still_waiting,
        "waiting_now": by_status.get("queued", 0),
        "in_session_now": by_status.get("accepted", 0),
        "overflowed": overflowed,
        "sessions": sessions,
        "unique_students": unique_students,
        "students_served": served,
        "sessions_per_student": _r(sessions / served, 2) if served else None,
    }
