"""Staffing advice per queue and half-hour of the week, and the what-if engine behind it.

Pure: it turns an observed :class:`~broker.capacity.demand.Demand` (or a single half-hour's
figures) into tutors needed for a service-level target and, for a given headcount, the
expected service level, average wait and give-ups; cost is in tutor-hours (a tutor on
duty for a half-hour is half a tutor-hour). No I/O; :func:`advise` over a year of demand
for every queue takes well under the issue's 2 s (bench/capacity.py).

Inputs per half-hour (see docs/capacity.md for why):

* arrival rate: the half-hour's observed mean rate over the period;
* handle time: the half-hour's own mean when at least ``min_samples`` sessions ended in it,
  else the queue's mean over the whole period, else ``default_handle_s`` (``basis`` says
  which, so a screen can mark thin data);
* patience: the queue's estimate over the whole period (per half-hour it is too noisy);
  none (nobody gave up) or ``use_abandonment=False`` means Erlang C;
* slots: tutors x the vendor's concurrent-session capacity (:func:`erlang.tutors_needed`).

Guarantees: deterministic; memoised per (rate, handle, patience, capacity, target) so
repeated figures cost one computation; a half-hour that never occurred in the period, or
had no arrivals, needs 0 tutors and has a service level of 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from broker.capacity import erlang
from broker.capacity.demand import (
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    Demand,
    Queue,
    QueueDemand,
    SlotDemand,
)
from broker.settings import Settings

HOURS_PER_SLOT = 0.5
#: Handle time assumed for a queue with no ended session in the period (20 minutes).
DEFAULT_HANDLE_S = 1200.0
MIN_SAMPLES = 20
Basis = Literal["slot", "queue", "default"]


@dataclass(frozen=True, slots=True)
class Target:
    """``fraction`` of requests accepted within ``wait_s`` (gave-up requests count against)."""

    fraction: float = 0.8
    wait_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"target fraction must be in (0, 1), got {self.fraction!r}")
        if not 0 <= self.wait_s < math.inf:
            raise ValueError(f"target wait must be >= 0 seconds, got {self.wait_s!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Target:
        """The district's target: ``HH_SERVICE_TARGET`` within ``HH_SERVICE_TARGET_WAIT_S``."""
        return cls(settings.service_target, settings.service_target_wait_s)


@dataclass(frozen=True, slots=True)
class Expected:
    """What a headcount gives in one half-hour: service level, mean wait (s), share giving
    up, and cost in tutor-hours."""

    tutors: int
    service_level: float
    average_wait_s: float
    abandonment: float
    tutor_hours: float


@dataclass(frozen=True, slots=True)
class SlotAdvice:
    """One queue's half-hour of the week: its inputs, the tutors needed and what they give,
    and (when a headcount was given) what that headcount gives."""

    weekday: int
    slot: int
    arrivals: int
    rate_per_s: float
    mean_handle_s: float
    basis: Basis
    needed: Expected
    scheduled: Expected | None


@dataclass(frozen=True, slots=True)
class QueueAdvice:
    vendor: str
    language: str
    capacity: int
    patience_s: float | None
    slots: tuple[SlotAdvice, ...]

    @property
    def queue(self) -> Queue:
        return (self.vendor, self.language)

    @property
    def needed_tutor_hours(self) -> float:
        """Tutor-hours per week the advice asks for."""
        return sum(s.needed.tutor_hours for s in self.slots)

    @property
    def scheduled_tutor_hours(self) -> float | None:
        """Tutor-hours per week of the given headcount, ``None`` without one."""
        if any(s.scheduled is None for s in self.slots):
            return None
        return sum(s.scheduled.tutor_hours for s in self.slots if s.scheduled is not None)


@dataclass(frozen=True, slots=True)
class Advice:
    target: Target
    timezone: str
    queues: tuple[QueueAdvice, ...]

    @property
    def needed_tutor_hours(self) -> float:
        return sum(q.needed_tutor_hours for q in self.queues)


class Planner:
    """The memoised engine: tutors needed and what a headcount gives, per half-hour.

    One planner may serve many calls (a what-if screen changing one figure at a time);
    its memo only grows with distinct inputs.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._needed: dict[tuple[float, float, float | None, int], int] = {}
        self._expected: dict[tuple[float, float, float | None, int, int], Expected] = {}

    def tutors_needed(self, rate: float, handle_s: float, patience_s: float | None,
                      capacity: int) -> int:
        key = (rate, handle_s, patience_s, capacity)
        found = self._needed.get(key)
        if found is None:
            found = erlang.tutors_needed(
                rate, handle_s, capacity, self.target.fraction, self.target.wait_s,
                patience_s=patience_s,
            )
            self._needed[key] = found
        return found

    def expected(self, tutors: int, rate: float, handle_s: float, patience_s: float | None,
                 capacity: int) -> Expected:
        """What ``tutors`` (each holding ``capacity`` chats) give for one half-hour."""
        if tutors < 0:
            raise ValueError(f"a headcount cannot be negative, got {tutors!r}")
        key = (rate, handle_s, patience_s, capacity, tutors)
        found = self._expected.get(key)
        if found is None:
            agents = tutors * capacity
            found = Expected(
                tutors,
                erlang.service_level(agents, rate, handle_s, self.target.wait_s,
                                     patience_s=patience_s),
                erlang.average_wait_s(agents, rate, handle_s, patience_s=patience_s),
                erlang.abandonment_probability(agents, rate, handle_s, patience_s),
                tutors * HOURS_PER_SLOT,
            )
            self._expected[key] = found
        return found


def _handle(cell: SlotDemand, queue_mean: float | None, min_samples: int,
            default_handle_s: float) -> tuple[float, Basis]:
    """The handle time a half-hour's advice uses, and where it comes from."""
    if cell.handled >= min_samples and cell.mean_handle_s:
        return cell.mean_handle_s, "slot"
    if queue_mean:
        return queue_mean, "queue"
    return default_handle_s, "default"


def advise_queue(
    qd: QueueDemand, planner: Planner, *, headcount: Sequence[int] | None = None,
    use_abandonment: bool = True, min_samples: int = MIN_SAMPLES,
    default_handle_s: float = DEFAULT_HANDLE_S,
) -> QueueAdvice:
    """Advice for one queue's 336 half-hours; ``headcount[weekday * 48 + slot]`` if given."""
    if headcount is not None and len(headcount) != SLOTS_PER_WEEK:
        raise ValueError(f"a headcount has {SLOTS_PER_WEEK} half-hours, got {len(headcount)}")
    total = qd.total()
    patience = total.mean_patience_s if use_abandonment else None
    queue_handle = total.mean_handle_s
    slots = []
    for i, cell in enumerate(qd.slots):
        handle, basis = _handle(cell, queue_handle, min_samples, default_handle_s)
        rate = cell.rate_per_s
        tutors = planner.tutors_needed(rate, handle, patience, qd.capacity)
        needed = planner.expected(tutors, rate, handle, patience, qd.capacity)
        scheduled = (
            planner.expected(headcount[i], rate, handle, patience, qd.capacity)
            if headcount is not None else None
        )
        slots.append(SlotAdvice(i // SLOTS_PER_DAY, i % SLOTS_PER_DAY, cell.arrivals, rate,
                                handle, basis, needed, scheduled))
    return QueueAdvice(qd.vendor, qd.language, qd.capacity, patience, tuple(slots))


def advise(
    demand: Demand, target: Target | None = None, *,
    headcounts: Mapping[Queue, Sequence[int]] | None = None, use_abandonment: bool = True,
    min_samples: int = MIN_SAMPLES, default_handle_s: float = DEFAULT_HANDLE_S,
    planner: Planner | None = None,
) -> Advice:
    """Advice for every queue of ``demand``; ``headcounts`` gives a queue's scheduled
    tutors per half-hour of the week (a what-if: change one and call again with the same
    ``planner``)."""
    target = target or (planner.target if planner is not None else Target())
    if planner is None or planner.target != target:
        planner = Planner(target)
    queues = tuple(
        advise_queue(
            qd, planner, headcount=(headcounts or {}).get(qd.queue),
            use_abandonment=use_abandonment, min_samples=min_samples,
            default_handle_s=default_handle_s,
        )
        for qd in demand.queues
    )
    return Advice(target, demand.timezone, queues)
