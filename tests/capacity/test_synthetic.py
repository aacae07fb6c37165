"""The synthetic 2023-24 year: totals, the group table, peaks, breaks, determinism."""

from __future__ import annotations

import collections
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from broker.capacity import synthetic
from broker.capacity.advice import advise
from broker.catalog_source import load_catalog

TZ = ZoneInfo(synthetic.TIMEZONE)
# The district's table (../shared/domain.md): students and % of enrolled per group.
DISTRICT = {"All": (25_623, 6.26), "SWD": (2_839, 4.66), "EL": (2_888, 3.91),
            "RFEP": (7_978, 7.5)}


@pytest.fixture(scope="module")
def year() -> synthetic.Year:
    return synthetic.generate(seed=7)


def test_totals_and_group_table_within_one_percent(year: synthetic.Year) -> None:
    table = synthetic.usage_table(year.arrivals)
    assert abs(table["All"]["sessions"] - 103_315) <= 1033
    for group, (students, pct) in DISTRICT.items():
        assert abs(table[group]["students"] - students) <= 0.01 * students, group
        assert abs(table[group]["pct_enrolled"] - pct) <= 0.01 * pct, group
    assert all(a.student.groups.isdisjoint({"EL"}) or "RFEP" not in a.student.groups
               for a in year.arrivals)
    assert min(collections.Counter(a.student.id for a in year.arrivals).values()) >= 1


def test_arrivals_sorted_within_year_and_well_formed(year: synthetic.Year) -> None:
    ats = [a.at for a in year.arrivals]
    assert ats == sorted(ats)
    start = dt.datetime(2023, 7, 1, tzinfo=TZ)
    end = dt.datetime(2024, 7, 1, tzinfo=TZ)
    assert start <= ats[0] and ats[-1] < end
    assert all(a.at.tzinfo is dt.UTC for a in year.arrivals[:100])
    handles = sorted(a.handle_s for a in year.arrivals)
    assert 800 < handles[len(handles) // 2] < 1000  # median ~15 min
    catalog = load_catalog()
    assert all(catalog.has_subject(a.subject) for a in year.arrivals)
    assert set(a.language for a in year.arrivals) <= set(catalog.district_languages)


def test_peaks_weekdays_breaks_and_summer(year: synthetic.Year) -> None:
    hours = collections.Counter(a.at.astimezone(TZ).hour for a in year.arrivals)
    assert hours.most_common(1)[0][0] in (18, 19, 20)
    assert hours[19] > 10 * hours[3]
    days = collections.Counter(a.at.astimezone(TZ).date() for a in year.arrivals)

    def mean(first: dt.date, last: dt.date, weekday: int | None = None) -> float:
        span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        span = [d for d in span if weekday is None or d.weekday() == weekday]
        return sum(days[d] for d in span) / len(span)

    term = mean(dt.date(2024, 1, 22), dt.date(2024, 3, 15))
    assert mean(dt.date(2024, 1, 22), dt.date(2024, 3, 15), 0) > 2 * mean(
        dt.date(2024, 1, 22), dt.date(2024, 3, 15), 5)  # Monday over Saturday
    assert mean(dt.date(2023, 12, 18), dt.date(2024, 1, 5)) < 0.5 * term  # winter break
    assert mean(dt.date(2024, 3, 25), dt.date(2024, 3, 29)) < 0.5 * term  # spring break
    assert mean(dt.date(2023, 7, 1), dt.date(2023, 8, 13)) < 0.25 * term  # summer
    assert mean(dt.date(2023, 7, 1), dt.date(2023, 8, 13)) > 0  # open 24/7, all year


def test_deterministic_by_seed() -> None:
    small = synthetic.Shape(sessions=900, students=200,
                            group_users=(("SWD", 20), ("EL", 25), ("RFEP", 60)))
    a = synthetic.generate(seed=1, shape=small)
    assert a.arrivals == synthetic.generate(seed=1, shape=small).arrivals
    assert a.arrivals != synthetic.generate(seed=2, shape=small).arrivals
    assert len(a.arrivals) == 900 and len({x.student.id for x in a.arrivals}) == 200
    with pytest.raises(ValueError):
        synthetic.Shape(sessions=10, students=20)


def test_week_demand_feeds_the_advice(year: synthetic.Year) -> None:
    catalog = load_catalog()
    start, end, week = year.week(dt.date(2024, 2, 5))
    assert week and all(start <= a.at < end for a in week)
    demand = synthetic.synthetic_demand(week, start, end, catalog)
    routed = sum(q.total().arrivals for q in demand.queues)
    unmet = sum(1 for a in week if synthetic.queue_of(a, catalog) is None)
    assert routed + unmet == len(week) and unmet > 0
    assert sum(demand.queues[0].slots[i].exposure_s for i in range(336)) == 7 * 86400
    advice = advise(demand)
    tutorcom_en = next(q for q in advice.queues if q.queue == ("tutorcom", "en"))
    evening = tutorcom_en.slots[0 * 48 + 39].needed.tutors  # Monday 19:30 local
    night = tutorcom_en.slots[0 * 48 + 7].needed.tutors  # Monday 03:30 local
    assert evening > night >= 0 and evening >= 2
