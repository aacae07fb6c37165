"""Erlang C / Erlang A against published worked examples, exact small cases and an oracle.

Published examples (figures as printed there):

* R package *ErlangC* 0.1.0 README (https://rdocumentation.org/packages/ErlangC/versions/0.1.0):
  100 calls per 30 minutes, 180 s handle time, 20 s target, 14 agents -> traffic 10
  erlangs, wait probability 0.1741319, service level 0.88835, average speed of answer
  7.83593701177724 s; ``calculate_agents`` for 80 % in 20 s -> 14 agents.
* PyPI *call-center-tools* 1.0.0 (https://pypi.org/project/call-center-tools/): 1000 calls
  per hour, 120 s handle time, 20 s target, 40 agents -> 33.333 erlangs, waiting
  probability 19.07 %, service level 93.72 %, average speed of answer 3.43 s.

The Erlang A oracle solves the M/M/c+M birth-death chain directly (truncated where the
tail is below e^-60): P(wait) = P(N >= c), E[W] = E[queue]/lam (Little), P(abandon) =
theta * E[queue] / lam; and the service level within t integrates the offered-wait density
numerically. Neither shares code with the incomplete-gamma forms under test.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.capacity.erlang import (
    abandonment_probability,
    agents_needed,
    average_wait_s,
    erlang_b,
    erlang_c_wait_probability,
    service_level,
    tutors_needed,
)

HALF_HOUR = 1800.0


def chain(c: int, lam: float, handle: float, patience: float) -> tuple[float, float, float, float]:
    """``(P(wait), E[W], P(abandon), pi_{c-1})`` of M/M/c+M from the stationary chain."""
    mu, theta = 1 / handle, 1 / patience
    logp = [0.0]
    k = 0
    while True:
        k += 1
        rate = min(k, c) * mu + max(k - c, 0) * theta
        logp.append(logp[-1] + math.log(lam / rate))
        if k > c and logp[-1] < logp[c] - 60 and logp[-1] < max(logp) - 60:
            break
    top = max(logp)
    w = [math.exp(x - top) for x in logp]
    z = sum(w)
    queue = sum((k - c) * w[k] for k in range(c, len(w))) / z
    return sum(w[c:]) / z, queue / lam, theta * queue / lam, w[c - 1] / z


def oracle_service_level(c: int, lam: float, handle: float, patience: float, t: float) -> float:
    """``P(V = 0) + int_0^t v(x) e^(-theta x) dx`` by Simpson's rule on the density."""
    mu, theta = 1 / handle, 1 / patience
    wait, _, _, pi_last = chain(c, lam, handle, patience)
    steps = 20_000

    def f(x: float) -> float:
        return lam * pi_last * math.exp(lam * -math.expm1(-theta * x) / theta - c * mu * x
                                        - theta * x)

    h = t / steps
    total = f(0) + f(t) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
    return 1 - wait + total * h / 3


# -- published worked examples --------------------------------------------------------------
def test_erlangc_r_package_example() -> None:
    lam = 100 / HALF_HOUR
    assert erlang_c_wait_probability(14, lam * 180) == pytest.approx(0.1741319, abs=1e-7)
    assert service_level(14, lam, 180, 20) == pytest.approx(0.88835, abs=1e-5)
    assert average_wait_s(14, lam, 180) == pytest.approx(7.83593701177724, rel=1e-9)
    assert agents_needed(lam, 180, 0.8, 20) == 14
    assert service_level(13, lam, 180, 20) < 0.8  # so 14 is the fewest


def test_call_center_tools_example() -> None:
    lam = 1000 / 3600
    assert erlang_c_wait_probability(40, lam * 120) == pytest.approx(0.1907, abs=5e-5)
    assert service_level(40, lam, 120, 20) == pytest.approx(0.9372, abs=5e-5)
    assert average_wait_s(40, lam, 120) == pytest.approx(3.43, abs=5e-3)


# -- exact small cases ----------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.01, 0.3, 0.5, 0.9, 0.999])
def test_one_agent_is_mm1(rho: float) -> None:
    handle = 300.0
    lam = rho / handle
    assert erlang_c_wait_probability(1, rho) == pytest.approx(rho, rel=1e-12)
    assert average_wait_s(1, lam, handle) == pytest.approx(rho * handle / (1 - rho), rel=1e-9)
    t = 45.0
    expected = 1 - rho * math.exp(-(1 - rho) / handle * t)
    assert service_level(1, lam, handle, t) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("load", [0.2, 1.0, 1.5, 1.99])
def test_two_agents_closed_form(load: float) -> None:
    assert erlang_c_wait_probability(2, load) == pytest.approx(load**2 / (2 + load), rel=1e-12)
    assert erlang_b(2, load) == pytest.approx(load**2 / 2 / (1 + load + load**2 / 2), rel=1e-12)


def test_overload_and_empty() -> None:
    assert erlang_c_wait_probability(5, 5.0) == 1.0
    assert service_level(5, 5 / 100, 100, 60) == 0.0
    assert average_wait_s(5, 6 / 100, 100) == math.inf
    assert service_level(0, 0.0, 100, 60) == 1.0
    assert average_wait_s(3, 0.0, 100) == 0.0
    assert agents_needed(0.0, 100, 0.8, 60) == 0
    assert service_level(0, 0.1, 100, 60, patience_s=120) == 0.0
    assert average_wait_s(0, 0.1, 100, patience_s=120) == 120
    assert abandonment_probability(0, 0.1, 100, 120) == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        lambda: service_level(-1, 0.1, 100, 60),
        lambda: service_level(3, -0.1, 100, 60),
        lambda: service_level(3, 0.1, 0, 60),
        lambda: service_level(3, 0.1, 100, -1),
        lambda: service_level(3, 0.1, 100, float("nan")),
        lambda: service_level(3, float("nan"), 100, 60),
        lambda: average_wait_s(3, 0.1, 100, patience_s=float("nan")),
        lambda: service_level(3, 0.1, 100, 60, patience_s=0),
        lambda: agents_needed(0.1, 100, 1.0, 60),
        lambda: agents_needed(0.1, 100, 0.0, 60),
        lambda: agents_needed(100.0, 100, 0.8, 60, max_agents=50),
        lambda: tutors_needed(0.1, 100, 0),
        lambda: erlang_c_wait_probability(3, float("nan")),
    ],
)
def test_bad_input_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


# -- Erlang A against the chain -------------------------------------------------------------
@pytest.mark.parametrize(
    ("c", "lam", "handle", "patience"),
    [
        (1, 0.5, 1.0, 1.0),  # M/M/1+M at rho 0.5
        (3, 5.0, 1.0, 0.5),  # overloaded: rho 1.67, abandonment keeps it stable
        (14, 100 / 1800, 180.0, 60.0),
        (14, 100 / 1800, 180.0, 600.0),
        (14, 100 / 1800, 180.0, 1e6),  # nearly Erlang C, no cancellation
        (60, 70 / 180, 180.0, 240.0),  # 70 erlangs on 60 slots
        (500, 450 / 180, 180.0, 300.0),  # the brief's size: no overflow
    ],
)
def test_erlang_a_matches_the_chain(c: int, lam: float, handle: float, patience: float) -> None:
    wait, mean_wait, abandon, _ = chain(c, lam, handle, patience)
    assert average_wait_s(c, lam, handle, patience_s=patience) == pytest.approx(
        mean_wait, rel=1e-9, abs=1e-12
    )
    assert abandonment_probability(c, lam, handle, patience) == pytest.approx(
        abandon, rel=1e-9, abs=1e-15
    )
    assert service_level(c, lam, handle, 0.0, patience_s=patience) == pytest.approx(
        1 - wait, rel=1e-9
    )
    assert service_level(c, lam, handle, 1e9, patience_s=patience) == pytest.approx(
        1 - abandon, rel=1e-9
    )


@pytest.mark.parametrize(
    ("c", "lam", "handle", "patience", "t"),
    [(1, 0.5, 1.0, 1.0, 0.7), (3, 5.0, 1.0, 0.5, 0.3), (14, 100 / 1800, 180.0, 120.0, 60.0),
     (60, 70 / 180, 180.0, 240.0, 20.0)],
)
def test_erlang_a_service_level_matches_the_density(
    c: int, lam: float, handle: float, patience: float, t: float
) -> None:
    got = service_level(c, lam, handle, t, patience_s=patience)
    assert got == pytest.approx(oracle_service_level(c, lam, handle, patience, t), abs=1e-9)


def test_large_sizes_stay_finite() -> None:
    for c, load in ((500, 450.0), (5000, 4900.0), (500, 600.0)):
        lam = load / 180
        for patience in (None, 30.0, 300.0, 3600.0):
            sl = service_level(c, lam, 180, 60, patience_s=patience)
            w = average_wait_s(c, lam, 180, patience_s=patience)
            assert 0 <= sl <= 1
            assert w >= 0 and (patience is None or math.isfinite(w))


def test_patience_to_infinity_is_erlang_c() -> None:
    lam, handle = 100 / 1800, 180.0
    c_level = service_level(14, lam, handle, 20)
    c_wait = average_wait_s(14, lam, handle)
    gaps = [abs(service_level(14, lam, handle, 20, patience_s=p) - c_level)
            for p in (1e3, 1e4, 1e5, 1e6, 1e7)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-5
    assert average_wait_s(14, lam, handle, patience_s=1e7) == pytest.approx(c_wait, rel=1e-3)
    assert service_level(14, lam, handle, 20, patience_s=math.inf) == c_level


def test_abandonment_lowers_the_staff_needed() -> None:
    lam, handle = 100 / 1800, 180.0
    patient = agents_needed(lam, handle, 0.8, 60)
    assert agents_needed(lam, handle, 0.8, 60, patience_s=1e6) == patient
    assert agents_needed(lam, handle, 0.8, 60, patience_s=120) <= patient


def test_tutors_needed_rounds_slots_up() -> None:
    lam = 100 / HALF_HOUR
    assert tutors_needed(lam, 180, 1, 0.8, 20) == 14
    assert tutors_needed(lam, 180, 2, 0.8, 20) == 7
    assert tutors_needed(lam, 180, 3, 0.8, 20) == 5
    assert tutors_needed(0.0, 180, 3) == 0


# -- properties ------------------------------------------------------------------------------
rates = st.floats(min_value=1e-4, max_value=2.0)
handles = st.floats(min_value=30.0, max_value=3600.0)
patiences = st.one_of(st.none(), st.floats(min_value=5.0, max_value=7200.0))
waits = st.floats(min_value=0.0, max_value=600.0)


@settings(max_examples=60, deadline=None)
@given(rates, handles, patiences, waits, st.integers(min_value=0, max_value=150))
def test_more_agents_never_hurt(
    lam: float, handle: float, patience: float | None, t: float, c: int
) -> None:
    now = service_level(c, lam, handle, t, patience_s=patience)
    more = service_level(c + 1, lam, handle, t, patience_s=patience)
    assert 0 <= now <= more + 1e-12 <= 1 + 1e-12
    assert average_wait_s(c + 1, lam, handle, patience_s=patience) <= (
        average_wait_s(c, lam, handle, patience_s=patience) * (1 + 1e-9) + 1e-12
    )


@settings(max_examples=60, deadline=None)
@given(rates, handles, patiences, waits, st.integers(min_value=1, max_value=150))
def test_longer_target_and_more_patience(
    lam: float, handle: float, patience: float | None, t: float, c: int
) -> None:
    assert service_level(c, lam, handle, t, patience_s=patience) <= service_level(
        c, lam, handle, t + 30, patience_s=patience
    ) + 1e-12
    if patience is not None:  # impatient students leave the line: the others wait less
        assert average_wait_s(c, lam, handle, patience_s=patience) <= average_wait_s(
            c, lam, handle, patience_s=patience * 2
        ) * (1 + 1e-9) + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1e-3, max_value=0.5), handles, patiences,
       st.floats(min_value=0.05, max_value=0.95), waits)
def test_agents_needed_is_the_fewest(
    lam: float, handle: float, patience: float | None, target: float, t: float
) -> None:
    c = agents_needed(lam, handle, target, t, patience_s=patience)
    assert service_level(c, lam, handle, t, patience_s=patience) >= target
    assert c == 0 or service_level(c - 1, lam, handle, t, patience_s=patience) < target
