"""Staffing advice and the what-if engine over hand-made demand (pure: no database)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from broker.capacity import advice as advice_mod
from broker.capacity import erlang
from broker.capacity.advice import Planner, Target, advise
from broker.capacity.demand import SLOTS_PER_WEEK, Demand, QueueDemand
from broker.settings import Settings

WEEK = (dt.datetime(2024, 1, 8, 8, tzinfo=dt.UTC), dt.datetime(2024, 1, 15, 8, tzinfo=dt.UTC))
MON_1700 = 34


def queue(vendor: str = "paper", language: str = "en", capacity: int = 1) -> QueueDemand:
    qd = QueueDemand(vendor, language, capacity)
    for cell in qd.slots:
        cell.exposure_s = 1800.0
    return qd


def demand(*queues: QueueDemand) -> Demand:
    return Demand(WEEK[0], WEEK[1], "America/Los_Angeles", queues)


def busy(qd: QueueDemand, i: int, arrivals: int, handled: int, handle_s: float,
         gave_up: int = 0, line_s: float = 0.0) -> None:
    cell = qd.slots[i]
    cell.arrivals, cell.accepted, cell.handled = arrivals, arrivals - gave_up, handled
    cell.handle_s, cell.gave_up, cell.line_s = handled * handle_s, gave_up, line_s


def test_published_example_in_tutors() -> None:
    """100 arrivals in the half-hour, 180 s handle, 80 % in 20 s: 14 slots (the ErlangC R
    package's worked example, see test_erlang.py): 14 one-chat tutors, 7 two-chat tutors."""
    solo, pair = queue(capacity=1), queue("tutorcom", capacity=2)
    for qd in (solo, pair):
        busy(qd, MON_1700, 100, 100, 180.0)
    result = advise(demand(solo, pair), Target(0.8, 20.0))
    one, two = (q.slots[MON_1700] for q in result.queues)
    assert (one.needed.tutors, two.needed.tutors) == (14, 7)
    assert one.needed.service_level == pytest.approx(0.88835, abs=1e-5)
    assert one.needed.average_wait_s == pytest.approx(7.8359, abs=1e-4)
    assert (one.basis, one.rate_per_s, one.mean_handle_s) == ("slot", 100 / 1800, 180.0)
    assert result.queues[0].needed_tutor_hours == 7.0  # 14 tutors for half an hour
    assert result.needed_tutor_hours == 7.0 + 3.5
    quiet = result.queues[0].slots[0]
    assert (quiet.needed.tutors, quiet.needed.service_level, quiet.needed.tutor_hours) == (0, 1, 0)


def test_handle_time_falls_back_to_the_queue_then_the_default() -> None:
    qd = queue()
    busy(qd, MON_1700, 40, 40, 300.0)
    busy(qd, MON_1700 + 1, 5, 5, 900.0)  # 5 sessions: too few for its own mean
    empty = queue("paper", "fr")
    busy(empty, MON_1700, 3, 0, 0.0)  # arrivals but no ended session in the period
    result = advise(demand(qd, empty))
    own, thin = result.queues[0].slots[MON_1700], result.queues[0].slots[MON_1700 + 1]
    assert (own.basis, own.mean_handle_s) == ("slot", 300.0)
    assert thin.basis == "queue"
    assert thin.mean_handle_s == pytest.approx((40 * 300 + 5 * 900) / 45)
    fr = result.queues[1].slots[MON_1700]
    assert (fr.basis, fr.mean_handle_s) == ("default", advice_mod.DEFAULT_HANDLE_S)


def test_what_if_headcount_and_cost() -> None:
    qd = queue(capacity=2)
    busy(qd, MON_1700, 60, 60, 600.0)
    needed = advise(demand(qd)).queues[0].slots[MON_1700].needed.tutors
    plan = [0] * SLOTS_PER_WEEK
    plan[MON_1700] = needed - 2
    plan[MON_1700 + 1] = 3  # on duty with nobody coming: costs, serves nobody
    result = advise(demand(qd), headcounts={("paper", "en"): plan}).queues[0]
    short = result.slots[MON_1700].scheduled
    assert short is not None and short.tutors == needed - 2
    expected = erlang.service_level(2 * (needed - 2), 60 / 1800, 600.0, 60.0)
    assert short.service_level == pytest.approx(expected)
    assert short.service_level < 0.8 <= result.slots[MON_1700].needed.service_level
    assert short.average_wait_s > result.slots[MON_1700].needed.average_wait_s
    assert result.scheduled_tutor_hours == (needed - 2 + 3) * 0.5
    assert advise(demand(qd)).queues[0].scheduled_tutor_hours is None


def test_abandonment_uses_the_queue_patience() -> None:
    qd = queue(capacity=1)
    busy(qd, MON_1700, 100, 90, 180.0, gave_up=10, line_s=10 * 120.0)  # patience 2 min
    with_a = advise(demand(qd), Target(0.8, 20.0)).queues[0]
    without = advise(demand(qd), Target(0.8, 20.0), use_abandonment=False).queues[0]
    assert with_a.patience_s == pytest.approx(120.0) and without.patience_s is None
    a, c = with_a.slots[MON_1700], without.slots[MON_1700]
    assert a.needed.tutors <= c.needed.tutors
    assert a.needed.abandonment > 0 and c.needed.abandonment == 0
    assert a.needed.service_level >= 0.8 and c.needed.service_level >= 0.8


def test_memo_computes_each_distinct_figure_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = erlang.tutors_needed

    def counting(rate: float, *args: object, **kw: object) -> int:
        calls.append(rate)
        return real(rate, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(erlang, "tutors_needed", counting)
    qd = queue()
    for i in range(SLOTS_PER_WEEK):
        busy(qd, i, 12, 12, 300.0)
    planner = Planner(Target())
    advise(demand(qd, queue("paper", "es")), planner=planner)
    assert len(calls) == 2  # the busy rate and the empty queue's 0
    advise(demand(qd), planner=planner)  # a what-if reusing the planner: nothing new
    assert len(calls) == 2


def test_targets_and_bad_input() -> None:
    settings = Settings.from_env({"HH_SERVICE_TARGET": "0.9", "HH_SERVICE_TARGET_WAIT_S": "30"})
    assert Target.from_settings(settings) == Target(0.9, 30.0)
    assert Target.from_settings(Settings()) == Target(0.8, 60.0)
    for fraction, wait in ((1.0, 60.0), (0.0, 60.0), (0.8, -1.0), (0.8, math.inf)):
        with pytest.raises(ValueError):
            Target(fraction, wait)
    qd = queue()
    with pytest.raises(ValueError):
        advise(demand(qd), headcounts={("paper", "en"): [1, 2, 3]})
    with pytest.raises(ValueError):
        advise(demand(qd), headcounts={("paper", "en"): [-1] * SLOTS_PER_WEEK})
