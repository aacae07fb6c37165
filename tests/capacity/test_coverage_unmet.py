"""Coverage's ``unmet`` figure (issue 15, the dashboard's Staffing heat table): the district's
requests nobody could serve, per UTC half-hour of the period, beside the queues' figures;
on SQLite and PostgreSQL.

The week is the fall-back week Monday 2024-10-28 to Monday 2024-11-04 in
America/Los_Angeles (338 half-hours), so the counts must land by instant, not by wall clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.capacity import coverage, shifts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import help_requests
from broker.identity import Scope, staff_identity
from broker.migrate import migrate
from broker.settings import Settings
from tests.stats.seed import request_row, t

CATALOG = load_catalog()
DISTRICT = staff_identity("d1", Scope.district(), source="test")
PAPER = staff_identity("vm-paper", Scope("vendor", "paper"), source="test")
WEEK = shifts.week_bounds(dt.date(2024, 10, 30), CATALOG.timezone)
NOW = t("2024-11-05 00:00:00")


def _unmet(rid: str, when: str, lang: str = "so", **values: Any) -> dict[str, Any]:
    return request_row(rid, f"s-{rid}", "", "elem", 3, lang, t(when), status="unmet",
                       unmet_reason="language_unsupported", **values)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(Settings(database_url=database_url))
    eng = create_engine(database_url)
    rows = [
        _unmet("u1", "2024-10-28 23:05:00"),             # Monday 16:00 PDT
        _unmet("u2", "2024-10-28 23:29:59", lang="en"),  # the same half-hour, another language
        _unmet("u3", "2024-11-03 08:10:00"),             # Sunday 01:00 PDT (the first one)
        _unmet("u4", "2024-11-03 09:10:00"),             # Sunday 01:00 PST (the repeat)
        _unmet("u5", "2024-10-28 06:59:59"),             # Sunday 23:59 PDT, the week before
        _unmet("u6", "2024-10-28 23:06:00", is_test=True),
        request_row("q1", "s-q1", "", "elem", 3, "en", t("2024-10-28 23:07:00"),
                    vendor="paper", status="cancelled"),
    ]
    async with eng.begin() as conn:
        await conn.execute(help_requests.insert(), rows)
    yield eng
    await eng.dispose()


def _at(report: dict[str, Any], utc: str) -> int:
    start = dt.datetime.fromisoformat(report["from"])
    count: int = report["unmet"]["half_hours"][int((t(utc) - start) // shifts.HALF_HOUR)]
    return count


async def test_unmet_per_half_hour_for_district_staff(engine: AsyncEngine) -> None:
    report = await coverage.coverage(engine, DISTRICT, CATALOG, *WEEK, vendor="paper",
                                     language="es", now=NOW, needed_fn=None)
    unmet = report["unmet"]
    assert len(unmet["half_hours"]) == report["half_hours"] == 338
    assert unmet["total"] == 4  # not the test one, not the week before, every language
    assert _at(report, "2024-10-28 23:00:00") == 2
    assert (_at(report, "2024-11-03 08:00:00"), _at(report, "2024-11-03 09:00:00")) == (1, 1)
    assert unmet["half_hours"][0] == 0  # u5 is 06:59:59 UTC, before the local Monday
    (queue,) = report["queues"]
    assert sum(x["arrivals"] for x in queue["slots"]) == 0  # unmet is no queue's demand


async def test_vendor_managers_do_not_see_unmet(engine: AsyncEngine) -> None:
    report = await coverage.coverage(engine, PAPER, CATALOG, *WEEK, now=NOW, needed_fn=None)
    assert report["unmet"] is None
