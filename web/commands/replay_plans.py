"""Who is on shift during a replay (:mod:`web.commands.replay`): headcount per queue.

Three plans, each answering, for a queue and an instant, how many simulated tutors are on
duty and what the advice expects of that headcount (the service level Erlang C gives for
it on that week's demand; ``None`` when there is nothing to compare with):

* :class:`AdvisedPlan`: the staffing advice for each local week's own synthetic demand (a
  perfect forecast, so the replay checks the queueing model and nothing else);
* :class:`PublishedPlan`: vendors' shift plans (the published ones in a database, or a
  CSV/JSON file in the import format), dated exceptions included; its expected level is
  the advice's figure for the weekly pattern's headcount on the same demand;
* :class:`FlatPlan`: the same headcount everywhere.

Pure apart from reading: deterministic for the same year and plans.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from broker.capacity.demand import Queue, week_slot
from broker.capacity.shifts import Plan as ShiftPlan


class Plan:
    """Who is on shift: tutors per queue at an instant, and what the advice expects of
    them (the service level for that half-hour; ``None`` without advice)."""

    label = "plan"

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        raise NotImplementedError

    def expected(self, q: Queue, at: dt.datetime) -> float | None:
        return None


class _Weekly(Plan):
    """The advice for each local week of the synthetic year, computed once per week."""

    def __init__(self, year: Any, catalog: Any, target: Any) -> None:
        self.year, self.catalog, self.target = year, catalog, target
        self.weeks: dict[dt.date, dict[Queue, Any]] = {}

    def headcounts(self, monday: dt.date) -> dict[Queue, list[int]] | None:
        """The week's scheduled headcount per queue and slot of the week, or ``None`` to
        take the advice's own."""
        return None

    def _slot(self, q: Queue, at: dt.datetime) -> Any:
        from broker.capacity.advice import advise
        from broker.capacity.synthetic import synthetic_demand

        tz = self.catalog.timezone
        local = at.astimezone(tz).date()
        monday = local - dt.timedelta(days=local.weekday())
        if monday not in self.weeks:
            start, end, arrivals = self.year.week(monday)
            demand = synthetic_demand(arrivals, start, end, self.catalog)
            advice = advise(demand, self.target, use_abandonment=False,
                            headcounts=self.headcounts(monday))
            self.weeks[monday] = {qa.queue: qa for qa in advice.queues}
        found = self.weeks[monday].get(q)
        return found.slots[week_slot(at, tz)] if found is not None else None


class AdvisedPlan(_Weekly):
    """The advice for each local week's own demand (Erlang C on the offered load, as
    :func:`broker.capacity.synthetic.synthetic_demand` gives it), per queue and half-hour:
    a perfect forecast, so the replay checks the queueing model and nothing else."""

    label = "advice (Erlang C on each week's own demand)"

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        slot = self._slot(q, at)
        return int(slot.needed.tutors) if slot is not None else 0

    def expected(self, q: Queue, at: dt.datetime) -> float | None:
        slot = self._slot(q, at)
        return float(slot.needed.service_level) if slot is not None else None


class PublishedPlan(_Weekly):
    """Vendors' shift plans: the headcount of each half-hour (a dated exception, else the
    weekly pattern), as :meth:`broker.capacity.shifts.Plan.headcount_at` reads it, so
    daylight-saving weeks and exceptions are followed exactly. A queue without a plan has
    nobody on shift. The expected level is the advice's for the weekly pattern's headcount
    (exceptions are not in it) on the week's synthetic demand."""

    def __init__(self, plans: dict[Queue, ShiftPlan], tz: ZoneInfo, year: Any, catalog: Any,
                 target: Any, source: str) -> None:
        super().__init__(year, catalog, target)
        self.plans, self.tz = plans, tz
        self.label = f"published shift plans ({source})"

    def headcounts(self, monday: dt.date) -> dict[Queue, list[int]] | None:
        return {q: [n for day in plan.weekly for n in day] for q, plan in self.plans.items()}

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        plan = self.plans.get(q)
        return plan.headcount_at(at, self.tz) if plan is not None else 0

    def expected(self, q: Queue, at: dt.datetime) -> float | None:
        slot = self._slot(q, at)
        if slot is None or slot.scheduled is None:
            return None
        return float(slot.scheduled.service_level)


class FlatPlan(Plan):
    """The same headcount in every queue, all the time."""

    def __init__(self, tutors: int) -> None:
        self.headcount = tutors
        self.label = f"flat {tutors} per queue"

    def tutors(self, q: Queue, at: dt.datetime) -> int:
        return self.headcount


@dataclass(frozen=True)
class PlanSpec:
    """Which plan a replay follows, as plain data (a replay split over processes sends it
    to each): ``kind`` is ``advice``, ``flat`` (``tutors`` each) or ``published``
    (``plans`` per queue, read from ``source``)."""

    kind: str = "advice"
    tutors: int = 0
    plans: dict[Queue, ShiftPlan] | None = None
    source: str = ""

    def build(self, year: Any, catalog: Any, target: Any) -> Plan:
        if self.kind == "flat":
            return FlatPlan(self.tutors)
        if self.kind == "published":
            return PublishedPlan(self.plans or {}, catalog.timezone, year, catalog, target,
                                 self.source)
        return AdvisedPlan(year, catalog, target)


__all__ = ["AdvisedPlan", "FlatPlan", "Plan", "PlanSpec", "PublishedPlan"]
