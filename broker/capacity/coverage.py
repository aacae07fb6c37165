"""Coverage: for every queue (vendor + language) and half-hour of a period, the tutors the
vendor **scheduled** (its shift plan), the tutors **observed** working, the tutors
**needed** for the service target, and that half-hour's demand, waits and give-ups.

Definitions (also in ``docs/capacity.md``, "Shift plans"):

* **Half-hours** are the UTC half-hours of ``[start, end)``; each is shown with its local
  time in the district's zone, so a spring-forward week has 334 of them and a fall-back
  week 338 (:func:`broker.capacity.shifts.expand` gives each its pattern headcount).
* **scheduled**: the queue's plan at that half-hour (exception, else weekly pattern).
* **observed**: the distinct tutors of the queue **on duty** at some moment of the
  half-hour: a span of ``tutor_duty`` (:mod:`broker.duty`: status ``available`` and
  connected to some process, an open span counted until ``now``) overlapping it. Exact
  up to one sweep of the broker (a span is opened or closed by the next sweep after a
  connection comes or goes; a status change is exact); an idle tutor on shift counts.
* **observed_chatting**: the distinct tutors with an on-demand session of the queue open
  during the half-hour (a tutor may have set ``away`` while finishing a session, so this
  is not a subset of ``observed``); what "observed" meant before duty was recorded.
* **arrivals**: requests queued for the queue in the half-hour (test traffic excluded);
  **accepted**, **gave_up** (cancelled, abandoned, expired before any acceptance),
  **wait_mean_s** / **wait_p90_s** of those accepted, **service_level** (accepted within
  the target wait over accepted + gave up, as in :func:`broker.stats.service_level`).
  Requests no vendor could serve belong to no queue (``/api/stats/unmet``).
* **needed**: ``broker.capacity.erlang.tutors_needed`` for that half-hour's arrival rate
  (arrivals / 1800 s), the queue's mean handle time over the period (accept to end), its
  patience over the period (Erlang A, as the advice; Erlang C when nobody gave up) and
  its vendor's concurrent-session capacity; ``None`` when the queue had no ended session
  in the period (no handle time), or when the caller passes no sizing function
  (``needed_method`` is then ``None``).
* **short**: ``needed > scheduled``; **under_delivered**: ``observed < scheduled``.
* **unmet** (once per report, not per queue: no vendor could serve those requests, so
  they belong to no queue): the district's requests with status ``unmet`` (test traffic
  excluded, every language, whatever ``vendor``/``language`` asked) per half-hour they
  were asked in (``requested_at``); ``None`` for a vendor manager, who does not see unmet
  demand in the statistics either.

Who: district staff (every queue) and vendor managers (their vendor's queues only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import csv_export, duty
from broker.capacity import shifts
from broker.capacity.erlang import tutors_needed
from broker.capacity.shifts import HALF_HOUR, Queue
from broker.db.models import help_requests, tutoring_sessions
from broker.errors import InvalidPayload
from broker.identity import Identity
from broker.stats import GAVE_UP_STATUSES, _aware, percentile
from routing.catalog import Catalog

UTC = dt.UTC
MAX_PERIOD = dt.timedelta(days=31)
r = help_requests
s = tutoring_sessions
NeededFn = Callable[..., int]
CSV_COLUMNS = (
    "vendor", "language", "start_utc", "local_day", "local_time", "scheduled", "observed",
    "observed_chatting", "needed", "short", "under_delivered", "arrivals", "accepted", "gave_up",
    "wait_mean_s", "wait_p90_s", "service_level",
)


@dataclass(frozen=True, slots=True)
class Target:
    """The service-level target: ``fraction`` of requests accepted within ``wait_s``."""

    fraction: float = 0.8
    wait_s: float = 60.0


def needed_function() -> NeededFn:
    """The sizing function coverage uses: ``broker.capacity.erlang.tutors_needed``."""
    return tutors_needed


def check_period(start: dt.datetime, end: dt.datetime) -> None:
    if end <= start:
        raise InvalidPayload("'to' must be after 'from'", parameter="to")
    if end - start > MAX_PERIOD:
        raise InvalidPayload("a coverage period is at most 31 days", parameter="to")
    if start.astimezone(UTC).minute % 30 or start.second or start.microsecond:
        raise InvalidPayload("'from' must be on a half-hour", parameter="from")


@dataclass(slots=True)
class _Cell:
    arrivals: int = 0
    accepted: int = 0
    gave_up: int = 0
    within: int = 0


def _index(at: dt.datetime, start: dt.datetime) -> int:
    return int((at - start) // HALF_HOUR)


def _mark(
    cells: list[set[str]], tutor: str, since: dt.datetime, until: dt.datetime,
    start: dt.datetime,
) -> None:
    """Add ``tutor`` to every half-hour (of ``start``'s period, ``len(cells)`` of them)
    that ``[since, until)`` overlaps; an empty span marks none."""
    if until <= since:
        return
    last = -(-(until - start) // HALF_HOUR) - 1  # the half-hour holding until's instant
    for i in range(max(0, _index(since, start)), min(len(cells) - 1, last) + 1):
        cells[i].add(tutor)


async def _on_duty(
    conn: AsyncConnection, wanted: Sequence[Queue], start: dt.datetime, end: dt.datetime,
    now: dt.datetime, n: int,
) -> dict[Queue, list[set[str]]]:
    """Per queue: the tutors on duty in each half-hour (an open span until ``now``)."""
    cells = {q: [set[str]() for _ in range(n)] for q in wanted}
    for vendor, language, tutor, started, ended in await duty.on_duty(
        conn, [v for v, _ in wanted], start, end
    ):
        if (vendor, language) in cells:
            _mark(cells[(vendor, language)], tutor, started, min(ended or now, end), start)
    return cells


async def _chatting(
    conn: AsyncConnection, wanted: Sequence[Queue], start: dt.datetime, end: dt.datetime,
    now: dt.datetime, n: int,
) -> tuple[dict[Queue, list[set[str]]], dict[Queue, float | None]]:
    """Per queue: the tutors with a session open in each half-hour, and the mean handle
    time (s) of the sessions accepted in the period and ended."""
    seen = {q: [set[str]() for _ in range(n)] for q in wanted}
    handled: dict[Queue, list[float]] = {q: [] for q in wanted}
    rows = await conn.execute(
        sa.select(s.c.vendor, s.c.language, s.c.tutor_id, s.c.accepted_at, s.c.ended_at).where(
            s.c.request_id.is_not(None), s.c.accepted_at < end,
            sa.or_(s.c.ended_at.is_(None), s.c.ended_at > start),
            s.c.vendor.in_(sorted({v for v, _ in wanted})),
        )
    )
    for vendor, language, tutor, accepted, ended in rows:
        queue = (vendor, language)
        if queue not in seen:
            continue
        if ended is not None and accepted >= start:
            handled[queue].append((ended - accepted).total_seconds())
        _mark(seen[queue], tutor, accepted, min(ended or now, end), start)
    means = {q: (sum(v) / len(v) if v else None) for q, v in handled.items()}
    return seen, means


async def _demand(
    conn: AsyncConnection, wanted: Sequence[Queue], start: dt.datetime, end: dt.datetime,
    n: int, target: Target,
) -> tuple[dict[Queue, list[_Cell]], dict[Queue, list[list[float]]], dict[Queue, float | None]]:
    """Per queue and half-hour: arrivals and outcomes, and the accepted requests' waits;
    per queue, the patience estimate (time in line of everyone queued, up to acceptance
    or giving up, over the number who gave up; ``None`` when nobody gave up), as
    :mod:`broker.capacity.demand` defines it."""
    cells = {q: [_Cell() for _ in range(n)] for q in wanted}
    waits: dict[Queue, list[list[float]]] = {q: [[] for _ in range(n)] for q in wanted}
    in_line: dict[Queue, float] = dict.fromkeys(wanted, 0.0)
    by_name = {f"{v}:{lang}": (v, lang) for v, lang in wanted}
    first = (
        sa.select(s.c.request_id, sa.func.min(s.c.accepted_at).label("first_accepted"))
        .where(s.c.request_id.is_not(None))
        .group_by(s.c.request_id)
        .subquery("first_acceptance")
    )
    rows = await conn.execute(
        sa.select(r.c.queue, r.c.queued_at, r.c.status, first.c.first_accepted, r.c.closed_at)
        .select_from(r.outerjoin(first, first.c.request_id == r.c.id))
        .where(r.c.queued_at >= start, r.c.queued_at < end, r.c.is_test == sa.false(),
               r.c.queue.in_(sorted(by_name)))
    )
    for name, queued, status, accepted, closed in rows:
        queue = by_name[name]
        i = _index(queued, start)
        cell = cells[queue][i]
        cell.arrivals += 1
        if accepted is not None:
            wait = max(0.0, (_aware(accepted) - queued).total_seconds())
            cell.accepted += 1
            cell.within += wait <= target.wait_s
            waits[queue][i].append(wait)
            in_line[queue] += wait
        elif status in GAVE_UP_STATUSES:
            cell.gave_up += 1
            in_line[queue] += max(0.0, (closed - queued).total_seconds()) if closed else 0.0
    patience = {}
    for queue in wanted:
        gave_up = sum(c.gave_up for c in cells[queue])
        patience[queue] = in_line[queue] / gave_up if gave_up else None
    return cells, waits, patience


async def _unmet(
    conn: AsyncConnection, start: dt.datetime, end: dt.datetime, n: int
) -> list[int]:
    """The district's unmet requests (no vendor could serve them) per half-hour of
    ``[start, end)``, by when they were asked."""
    counts = [0] * n
    rows = await conn.execute(sa.select(r.c.requested_at).where(
        r.c.status == "unmet", r.c.is_test == sa.false(),
        r.c.requested_at >= start, r.c.requested_at < end))
    for (asked,) in rows:
        counts[_index(_aware(asked), start)] += 1
    return counts


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def coverage(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, start: dt.datetime,
    end: dt.datetime, *, vendor: str | None = None, language: str | None = None,
    target: Target | None = None, now: dt.datetime | None = None,
    needed_fn: NeededFn | bool | None = True,
) -> dict[str, Any]:
    """The coverage read model for ``[start, end)`` (UTC, at most 31 days, ``start`` on a
    half-hour); see the module docstring. ``needed_fn=True`` finds ``tutors_needed``."""
    vendor = shifts.readable_vendor(actor, vendor)
    check_period(start, end)
    target = target or Target()
    now = now or dt.datetime.now(UTC)
    tz = catalog.timezone
    wanted = [q for q in shifts.queues(catalog, vendor) if language in (None, q[1])]
    if vendor is not None and language is not None and not wanted:
        shifts.queue_of(catalog, vendor, language)  # 404 for an unknown queue
    fn = needed_function() if needed_fn is True else (needed_fn or None)
    instants = shifts.half_hours(start, end)
    n = len(instants)
    async with engine.connect() as conn:
        plans = await shifts.load_plans(conn, wanted, start, end)
        chatting, handle = await _chatting(conn, wanted, start, end, now, n)
        on_duty = await _on_duty(conn, wanted, start, end, now, n)
        cells, waits, patience = await _demand(conn, wanted, start, end, n, target)
        unmet = (await _unmet(conn, start, end, n)
                 if actor.require_scope().kind == "district" else None)
    out_queues = []
    for queue in wanted:
        capacity = catalog.vendor(queue[0]).capacity  # type: ignore[union-attr]
        scheduled = shifts.expand(plans[queue], tz, instants)
        memo: dict[int, int | None] = {}
        slots = []
        for i, at in enumerate(instants):
            cell = cells[queue][i]
            if cell.arrivals not in memo:
                memo[cell.arrivals] = _needed(fn, cell.arrivals, handle[queue], capacity,
                                              target, patience[queue])
            needed = memo[cell.arrivals]
            ordered = sorted(waits[queue][i])
            decided = cell.accepted + cell.gave_up
            observed = len(on_duty[queue][i])
            slots.append({
                "start": at.isoformat(),
                "local": at.astimezone(tz).isoformat(),
                "scheduled": scheduled[i],
                "observed": observed,
                "observed_chatting": len(chatting[queue][i]),
                "needed": needed,
                "short": needed is not None and needed > scheduled[i],
                "under_delivered": observed < scheduled[i],
                "arrivals": cell.arrivals,
                "accepted": cell.accepted,
                "gave_up": cell.gave_up,
                "wait_mean_s": _r(sum(ordered) / len(ordered)) if ordered else None,
                "wait_p90_s": _r(percentile(ordered, 90)),
                "service_level": _r(cell.within / decided, 4) if decided else None,
            })
        out_queues.append({
            "vendor": queue[0], "language": queue[1], "sessions_per_tutor": capacity,
            "mean_handle_s": _r(handle[queue]), "patience_s": _r(patience[queue]),
            "slots": slots,
            "scheduled_tutor_hours": sum(scheduled) / 2,
            "short_half_hours": sum(1 for x in slots if x["short"]),
        })
    return {
        "timezone": tz.key,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "half_hours": n,
        "target": {"fraction": target.fraction, "wait_s": target.wait_s},
        "needed_method": "erlang.tutors_needed" if fn is not None else None,
        "observed_method": "distinct tutors on duty (available and connected)",
        "queues": out_queues,
        "unmet": None if unmet is None else {"total": sum(unmet), "half_hours": unmet},
    }


def _needed(
    fn: NeededFn | None, arrivals: int, handle_s: float | None, capacity: int, target: Target,
    patience_s: float | None,
) -> int | None:
    if fn is None or handle_s is None:
        return None
    if arrivals == 0:
        return 0
    try:
        return int(fn(arrivals / HALF_HOUR.total_seconds(), max(handle_s, 1.0), capacity,
                      target.fraction, target.wait_s,
                      patience_s=max(patience_s, 1.0) if patience_s is not None else None))
    except ValueError:  # beyond what the model sizes (over 10,000 slots): shown as unknown
        return None


def to_csv(report: dict[str, Any]) -> str:
    """One row per queue and half-hour (local day and time in the district's zone)."""
    rows = []
    for queue in report["queues"]:
        for slot in queue["slots"]:
            local = dt.datetime.fromisoformat(slot["local"])
            rows.append([
                queue["vendor"], queue["language"], slot["start"], local.date().isoformat(),
                f"{local:%H:%M%z}", *(slot[c] for c in CSV_COLUMNS[5:]),
            ])
    return csv_export.to_csv(CSV_COLUMNS, rows)
