"""Staffing advice and what-if for the staff dashboard: who may ask, what is read, and the
JSON shapes ``/api/capacity/advice`` and ``/api/capacity/what-if`` answer.

Scope (decided here, not at the edge): district staff may ask about every queue; a vendor
manager about their own vendor's queues only (another vendor's is
:class:`~broker.errors.NotAllowed`, never an empty answer); school staff, teachers and
everyone else are refused, because staffing is the district's and the vendors' business,
not a school's (as :func:`broker.capacity.shifts.readable_vendor` decides for shift plans).

Guarantees: read-only (one read of the records and the published plans per call, nothing
written); figures per queue and half-hour of the week in the district's zone, as
:func:`broker.capacity.advice.advise` computes them; cost is tutor-hours per week of the
pattern (a tutor on duty for a half-hour is half a tutor-hour); a bad change is a typed
:class:`~broker.errors.InvalidPayload` naming the entry, and nothing is computed from it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.capacity import shifts
from broker.capacity.advice import Expected, Planner, QueueAdvice, SlotAdvice, Target, advise
from broker.capacity.demand import (
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    Demand,
    Queue,
    observed_demand,
)
from broker.errors import InvalidPayload
from broker.identity import Identity
from routing.catalog import Catalog

#: Most headcount changes one what-if may carry.
MAX_CHANGES = 400
#: Highest headcount a what-if may ask for in one half-hour.
MAX_HEADCOUNT = 500
#: Most chat slots the advice searches (erlang.agents_needed's bound).
MAX_SLOTS = 10_000


class CappedPlanner(Planner):
    """A :class:`Planner` that never fails a whole report over one impossible half-hour:
    when more than :data:`MAX_SLOTS` chat slots would be needed (absurd figures, such as
    sessions the broker closed months later, give handle times of months), the half-hour
    gets the tutors those slots make and is remembered as ``capped``."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.capped: set[tuple[float, float, float | None, int]] = set()

    def tutors_needed(self, rate: float, handle_s: float, patience_s: float | None,
                      capacity: int) -> int:
        try:
            return super().tutors_needed(rate, handle_s, patience_s, capacity)
        except ValueError:
            self.capped.add((rate, handle_s, patience_s, capacity))
            return -(-MAX_SLOTS // capacity)

    def was_capped(self, q: QueueAdvice, s: SlotAdvice) -> bool:
        return (s.rate_per_s, s.mean_handle_s, q.patience_s, q.capacity) in self.capped


def _r(value: float, digits: int = 4) -> float | None:
    """Rounded for JSON; an infinite figure (an overloaded half-hour's wait: more work
    arrives than the tutors can handle, so the line grows without bound) is ``None``."""
    return round(value, digits) if math.isfinite(value) else None


def _expected(e: Expected) -> dict[str, Any]:
    return {"tutors": e.tutors, "service_level": _r(e.service_level),
            "average_wait_s": _r(e.average_wait_s, 1), "abandonment": _r(e.abandonment),
            "tutor_hours": e.tutor_hours}


def _weighted(items: Sequence[tuple[int, Expected]]) -> dict[str, float | None]:
    """Service level, mean wait and abandonment over the week, each half-hour weighted by
    its arrivals in the period (no arrivals: a service level of 1, no wait; an overloaded
    half-hour with arrivals makes the mean wait ``None``, unbounded)."""
    total = sum(n for n, _ in items)
    if total == 0:
        return {"service_level": 1.0, "average_wait_s": 0.0, "abandonment": 0.0}
    return {
        "service_level": _r(sum(n * e.service_level for n, e in items) / total),
        "average_wait_s": _r(sum(n * e.average_wait_s for n, e in items) / total, 1),
        "abandonment": _r(sum(n * e.abandonment for n, e in items) / total),
    }


async def _load(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, start: dt.datetime,
    end: dt.datetime, vendor: str | None, language: str | None,
) -> tuple[Demand, dict[Queue, list[int]]]:
    """The period's demand and the published weekly plans of the queues ``actor`` may see."""
    vendor = shifts.readable_vendor(actor, vendor)
    if vendor is not None and catalog.vendor(vendor) is None:
        shifts.queue_of(catalog, vendor, language or "")  # 404 naming the queue
    demand = await observed_demand(engine, catalog, start, end, vendor=vendor,
                                   language=language)
    plans = await shifts.weekly_headcounts(engine, actor, catalog, vendor)
    return demand, plans


async def advice(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, start: dt.datetime,
    end: dt.datetime, *, vendor: str | None = None, language: str | None = None,
    target: Target | None = None,
) -> dict[str, Any]:
    """Per queue the caller may see and half-hour of the week: arrivals in the period,
    arrivals per hour, handle time (and its ``basis``), tutors ``needed`` for ``target`` with
    what they give, and the published plan's ``scheduled`` headcount with what it gives
    (``null`` when the queue has no published plan)."""
    target = target or Target()
    demand, plans = await _load(engine, actor, catalog, start, end, vendor, language)
    planner = CappedPlanner(target)
    result = advise(demand, target, headcounts=plans, planner=planner)
    return {
        "from": start.isoformat(), "to": end.isoformat(), "timezone": result.timezone,
        "target": {"fraction": target.fraction, "wait_s": target.wait_s},
        "needed_tutor_hours": result.needed_tutor_hours,
        "queues": [_queue_advice(q, q.queue in plans, planner) for q in result.queues],
    }


def _queue_advice(q: QueueAdvice, published: bool, planner: CappedPlanner) -> dict[str, Any]:
    return {
        "vendor": q.vendor, "language": q.language, "sessions_per_tutor": q.capacity,
        "patience_s": None if q.patience_s is None else _r(q.patience_s, 1),
        "published": published,
        "needed_tutor_hours": q.needed_tutor_hours,
        "scheduled_tutor_hours": q.scheduled_tutor_hours if published else None,
        "slots": [
            {"weekday": s.weekday, "slot": s.slot, "arrivals": s.arrivals,
             "arrivals_per_hour": _r(s.rate_per_s * 3600, 3),
             "mean_handle_s": _r(s.mean_handle_s, 1), "basis": s.basis,
             "needed": _expected(s.needed), "capped": planner.was_capped(q, s),
             "scheduled": _expected(s.scheduled) if published and s.scheduled else None}
            for s in q.slots
        ],
    }


# -- what-if ----------------------------------------------------------------------------------
def _bad(message: str, index: int, part: str) -> InvalidPayload:
    return InvalidPayload(message, field="changes", index=index, part=part)


def _int(entry: Mapping[str, Any], key: str, low: int, high: int, index: int) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"changes[{index}].{key} must be a whole number from {low} to {high}",
                   index, key)
    return value


def parse_changes(body: object, actor: Identity, catalog: Catalog) -> list[dict[str, Any]]:
    """The what-if's headcount changes, checked: each ``{vendor, language, weekday?, slot?,
    delta | headcount}``; no ``weekday`` means every day, no ``slot`` every half-hour.
    A queue the caller may not see is refused (403) before anything is read."""
    if body is None:
        return []
    if not isinstance(body, list) or len(body) > MAX_CHANGES:
        raise InvalidPayload(f"'changes' must be a list of at most {MAX_CHANGES} entries",
                             field="changes")
    out = []
    for i, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise _bad(f"changes[{i}] must be an object", i, "entry")
        vendor, language = entry.get("vendor"), entry.get("language")
        if not isinstance(vendor, str) or not isinstance(language, str):
            raise _bad(f"changes[{i}] must name a vendor and a language", i, "queue")
        shifts.readable_vendor(actor, vendor)
        queue = shifts.queue_of(catalog, vendor, language)
        delta = _int(entry, "delta", -MAX_HEADCOUNT, MAX_HEADCOUNT, i)
        absolute = _int(entry, "headcount", 0, MAX_HEADCOUNT, i)
        if (delta is None) == (absolute is None):
            raise _bad(f"changes[{i}] needs exactly one of 'delta' and 'headcount'", i, "delta")
        out.append({"queue": queue, "weekday": _int(entry, "weekday", 0, 6, i),
                    "slot": _int(entry, "slot", 0, SLOTS_PER_DAY - 1, i),
                    "delta": delta, "headcount": absolute})
    return out


def _apply(base: list[int], change: Mapping[str, Any]) -> None:
    for i in range(SLOTS_PER_WEEK):
        if change["weekday"] not in (None, i // SLOTS_PER_DAY):
            continue
        if change["slot"] not in (None, i % SLOTS_PER_DAY):
            continue
        if change["headcount"] is not None:
            base[i] = change["headcount"]
        else:
            base[i] = max(0, min(MAX_HEADCOUNT, base[i] + change["delta"]))


async def what_if(
    engine: AsyncEngine, actor: Identity, catalog: Catalog, start: dt.datetime,
    end: dt.datetime, *, vendor: str | None = None, language: str | None = None,
    target: Target | None = None, changes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """What a headcount gives over the period's demand, per queue and in total.

    Each queue starts from its published weekly plan, or (no plan) from the tutors the
    advice asks for at ``target``; ``changes`` (from :func:`parse_changes`) apply in order.
    Per queue: the weekly service level, mean wait and abandonment (each half-hour
    weighted by its arrivals), tutor-hours per week, and per half-hour the headcount and
    its service level and mean wait."""
    target = target or Target()
    planner = CappedPlanner(target)
    demand, plans = await _load(engine, actor, catalog, start, end, vendor, language)
    needed = advise(demand, target, planner=planner)
    bases = {q.queue: list(plans.get(q.queue) or [s.needed.tutors for s in q.slots])
             for q in needed.queues}
    for change in changes:
        if change["queue"] not in bases:
            raise InvalidPayload(f"{':'.join(change['queue'])} is outside the asked queues",
                                 field="changes", part="queue")
        _apply(bases[change["queue"]], change)
    result = advise(demand, target, headcounts=bases, planner=planner)
    queues = []
    every: list[tuple[int, Expected]] = []
    for q in result.queues:
        pairs = [(s.arrivals, s.scheduled) for s in q.slots if s.scheduled is not None]
        every.extend(pairs)
        queues.append({
            "vendor": q.vendor, "language": q.language, "from_plan": q.queue in plans,
            "tutor_hours": q.scheduled_tutor_hours, "needed_tutor_hours": q.needed_tutor_hours,
            **_weighted(pairs),
            "slots": [{"weekday": s.weekday, "slot": s.slot, "tutors": e.tutors,
                       "service_level": _r(e.service_level),
                       "average_wait_s": _r(e.average_wait_s, 1)}
                      for s in q.slots if (e := s.scheduled) is not None],
        })
    return {
        "from": start.isoformat(), "to": end.isoformat(), "timezone": result.timezone,
        "target": {"fraction": target.fraction, "wait_s": target.wait_s},
        "queues": queues,
        "total": {"tutor_hours": sum(e.tutor_hours for _, e in every),
                  "needed_tutor_hours": result.needed_tutor_hours, **_weighted(every)},
    }
