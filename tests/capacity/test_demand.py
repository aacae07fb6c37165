"""Observed demand per queue and local half-hour, on SQLite and PostgreSQL.

Two weeks around the end of daylight saving (Sunday 2024-11-03, 01:00-02:00 local happens
twice in America/Los_Angeles): Monday 2024-10-28 00:00 PDT to Monday 2024-11-11 00:00 PST.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.capacity.demand import observed_demand, week_slot
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import HelpRequestRow, TutoringSessionRow
from broker.request_rollup import fill_rows
from tests.broker.district import prepare_database
from tests.stats.seed import request_row, sec, session_row, t

CATALOG = load_catalog()
START = t("2024-10-28 07:00:00")  # Monday 00:00 PDT
END = t("2024-11-11 08:00:00")  # Monday 00:00 PST
MON_1700 = (0, 34)
MON_1730 = (0, 35)
SUN_0100 = (6, 2)
WED_1200 = (2, 24)


def _accepted(rid: str, lang: str, vendor: str, queued: str, wait: float, minutes: float,
              **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    q = t(queued)
    row = request_row(rid, f"s{rid}", "", "hs", 9, lang, q, vendor=vendor, status="ended",
                      accepted_at=q + sec(wait), closed_at=q + sec(wait + minutes * 60),
                      **values)
    return row, session_row(f"S{rid}", row, "p1", q + sec(wait), q + sec(wait + minutes * 60))


def _waiting(
    rid: str, queued: str, status: str, after: float | None, **values: Any
) -> dict[str, Any]:
    q = t(queued)
    closed = q + sec(after) if after is not None else None
    return request_row(rid, f"s{rid}", "", "hs", 9, "en", q, vendor="paper", status=status,
                       closed_at=closed, close_reason=status if closed else None, **values)


async def _seed(engine: AsyncEngine) -> None:
    pairs = [
        _accepted("m1", "en", "paper", "2024-10-29 00:05:00", 30, 20),  # Mon 17:05 PDT
        _accepted("m2", "en", "paper", "2024-11-05 01:10:00", 50, 10),  # Mon 17:10 PST
        _accepted("d1", "en", "paper", "2024-11-03 08:15:00", 10, 30),  # Sun 01:15 PDT
        _accepted("d2", "en", "paper", "2024-11-03 09:15:00", 10, 30),  # Sun 01:15 PST
        _accepted("x1", "en", "paper", "2024-11-05 01:12:00", 5, 5, is_test=True),
        _accepted("o1", "en", "paper", "2024-10-28 06:59:00", 5, 5),  # before the period
    ]
    reqs = [row for row, _ in pairs]
    sess = [one for _, one in pairs]
    reqs += [
        _waiting("g1", "2024-11-05 01:20:00", "abandoned", 70),  # Mon 17:20 PST
        _waiting("g2", "2024-11-05 01:40:00", "cancelled", 90),  # Mon 17:40 PST
        _waiting("w1", "2024-11-05 01:25:00", "queued", None),  # still waiting
        request_row("u1", "su1", "", "hs", 9, "en", t("2024-11-05 01:25:00"), status="unmet",
                    unmet_reason="closed"),
    ]
    # Wed 12:00 PDT, tutorcom:es: a first tutor left after 2 min, a second one took 28 min.
    q = t("2024-10-30 19:00:00")
    row = request_row("r1", "sr1", "", "hs", 9, "es", q, vendor="tutorcom", status="ended",
                      accepted_at=q + sec(200), closed_at=q + sec(200 + 1680))
    reqs.append(row)
    sess.append(session_row("Sr1a", row, "t1", q + sec(30), q + sec(150), "requeued"))
    sess.append(session_row("Sr1b", row, "t2", q + sec(200), q + sec(200 + 1680)))
    fill_rows(reqs, sess)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(HelpRequestRow), reqs)
        await conn.execute(sa.insert(TutoringSessionRow), sess)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url)
    eng = create_engine(database_url)
    try:
        await _seed(eng)
        yield eng
    finally:
        await eng.dispose()


async def test_demand_per_local_half_hour(engine: AsyncEngine) -> None:
    demand = await observed_demand(engine, CATALOG, START, END)
    assert demand.timezone == "America/Los_Angeles"
    assert [qd.queue for qd in demand.queues] == [
        ("paper", "en"), ("paper", "es"), ("paper", "zh"), ("paper", "fr"),
        ("tutorcom", "en"), ("tutorcom", "es"),
    ]
    assert {qd.capacity for qd in demand.queues} == {2}
    paper_en, tutor_es = demand.queues[0], demand.queues[5]

    five = paper_en.at(*MON_1700)
    assert (five.arrivals, five.accepted, five.gave_up) == (4, 2, 1)  # m1, m2, g1, w1
    assert five.exposure_s == 2 * 1800
    assert five.rate_per_s == pytest.approx(4 / 3600)
    assert five.mean_handle_s == pytest.approx(900)  # 20 and 10 minutes
    assert five.abandonment == pytest.approx(1 / 3)
    assert five.mean_patience_s == pytest.approx(30 + 50 + 70)

    half_past = paper_en.at(*MON_1730)
    assert (half_past.arrivals, half_past.gave_up) == (1, 1)
    assert half_past.mean_patience_s == pytest.approx(90)
    assert half_past.mean_handle_s is None

    # The repeated hour: both 01:15s land in Sunday 01:00, which the period held 3 times.
    night = paper_en.at(*SUN_0100)
    assert night.exposure_s == 3 * 1800
    assert (night.arrivals, night.handled) == (2, 2)
    assert night.rate_per_s == pytest.approx(2 / 5400)

    requeued = tutor_es.at(*WED_1200)
    assert (requeued.arrivals, requeued.accepted, requeued.handled) == (1, 1, 2)
    assert requeued.mean_handle_s == pytest.approx((120 + 1680) / 2)
    assert requeued.mean_patience_s is None  # nobody gave up: patient as far as seen

    total = paper_en.total()
    assert total.exposure_s == 14 * 86400 + 3600
    assert (total.arrivals, total.accepted, total.gave_up) == (7, 4, 2)
    assert total.mean_patience_s == pytest.approx((30 + 50 + 10 + 10 + 70 + 90) / 2)
    assert sum(qd.total().arrivals for qd in demand.queues) == 8  # no test, unmet or outside

    # narrowed to a vendor or a language; bad periods refused
    only = await observed_demand(engine, CATALOG, START, END, vendor="tutorcom")
    assert [qd.queue for qd in only.queues] == [("tutorcom", "en"), ("tutorcom", "es")]
    spanish = await observed_demand(engine, CATALOG, START, END, language="es")
    assert [qd.queue for qd in spanish.queues] == [("paper", "es"), ("tutorcom", "es")]
    assert spanish.queues[1].total().arrivals == 1
    with pytest.raises(ValueError):
        await observed_demand(engine, CATALOG, END, START)
    with pytest.raises(ValueError):
        await observed_demand(engine, CATALOG, START.replace(tzinfo=None), END)


def test_week_slot_in_local_time() -> None:
    tz = CATALOG.timezone
    assert week_slot(t("2024-10-29 00:05:00"), tz) == 0 * 48 + 34  # Mon 17:05 PDT
    assert week_slot(t("2024-11-05 01:40:00"), tz) == 0 * 48 + 35  # Mon 17:40 PST
    assert week_slot(dt.datetime(2024, 11, 3, 9, 59, tzinfo=dt.UTC), tz) == 6 * 48 + 3
