"""``/api/capacity/advice`` and ``/api/capacity/what-if`` (issue 15) over HTTP, on SQLite
and PostgreSQL: figures agree with :func:`broker.capacity.advice.advise`, the published
plan is the what-if's start, and scope is enforced (district: all; vendor manager: own
vendor's, 403 for another; school staff: 403).

Three Mondays of demand for paper:en at 16:00-16:30 in America/Los_Angeles (23:00 UTC,
daylight time throughout): four requests each, each handled for 20 minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.capacity import shifts, views
from broker.capacity.advice import Target, advise
from broker.capacity.demand import observed_demand
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import help_requests, tutoring_sessions
from broker.identity import Scope, staff_identity
from broker.migrate import migrate
from broker.request_rollup import fill_rows
from broker.settings import Settings
from tests.capacity.test_shifts_coverage import identify  # X-Who: district, vendor:<id>
from tests.stats.seed import request_row, sec, session_row, t
from web.capacity_advice_api import setup_capacity_advice_api
from web.problems import problem_middleware

CATALOG = load_catalog()
LA = CATALOG.timezone
PAPER = staff_identity("vm-paper", Scope("vendor", "paper"), source="test")
NOW = t("2024-10-30 12:00:00")
MONDAYS = ("2024-10-07", "2024-10-14", "2024-10-21")
PERIOD = {"from": "2024-10-07", "to": "2024-10-28"}
MONDAY_1600 = 0 * 48 + 32
PLAN = {"weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": 1}]}


def demand_rows() -> list[tuple[Any, list[dict[str, Any]]]]:
    """The three Mondays' requests and sessions, as (table, rows); the browser test too."""
    reqs, sessions = [], []
    for day in MONDAYS:
        for k in range(4):
            queued = t(f"{day} 23:0{k}:00")
            row = request_row(f"r{day}{k}", f"s{k}", "", "elem", 3, "en", queued,
                              vendor="paper", status="ended")
            reqs.append(row)
            sessions.append(session_row(f"e{day}{k}", row, f"p{k}", queued + sec(20),
                                        queued + sec(20 + 1200)))
    fill_rows(reqs, sessions)
    return [(help_requests, reqs), (tutoring_sessions, sessions)]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The three Mondays' records and paper:en's published plan (Mondays 16:00-18:00, 1)."""
    await migrate(Settings(database_url=database_url))
    eng = create_engine(database_url)
    try:
        async with eng.begin() as conn:
            for table, batch in demand_rows():
                await conn.execute(table.insert(), batch)
        plan = shifts.parse_plan(PLAN, LA)
        await shifts.replace_plans(eng, PAPER, CATALOG, {("paper", "en"): plan}, "test")
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[problem_middleware])
    setup_capacity_advice_api(app, lambda: engine, lambda: CATALOG, identify, lambda: NOW)
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


async def _get(client: TestClient[Any, Any], who: str | None, **params: str) -> tuple[int, Any]:
    resp = await client.get("/api/capacity/advice", params=params,
                            headers={"X-Who": who} if who else {})
    if resp.status == 200:
        assert resp.headers["Cache-Control"] == "no-store"
    return resp.status, await resp.json()


async def _what_if(client: TestClient[Any, Any], who: str, body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/capacity/what-if", json=body, headers={"X-Who": who})
    return resp.status, await resp.json()


def _queue(report: dict[str, Any], vendor: str, language: str) -> dict[str, Any]:
    return next(q for q in report["queues"]
                if (q["vendor"], q["language"]) == (vendor, language))


async def test_advice_matches_the_engine(client: TestClient[Any, Any],
                                         engine: AsyncEngine) -> None:
    status, body = await _get(client, "district", target="0.9", target_wait_s="30", **PERIOD)
    assert status == 200, body
    assert body["timezone"] == "America/Los_Angeles"
    assert body["target"] == {"fraction": 0.9, "wait_s": 30.0}
    assert {q["vendor"] for q in body["queues"]} == {"paper", "tutorcom"}
    paper_en = _queue(body, "paper", "en")
    assert paper_en["published"] and paper_en["scheduled_tutor_hours"] == 2.0
    cell = paper_en["slots"][MONDAY_1600]
    assert (cell["weekday"], cell["slot"], cell["arrivals"]) == (0, 32, 12)
    assert cell["arrivals_per_hour"] == 8.0  # 12 over three half-hours
    assert cell["mean_handle_s"] == 1200.0
    start = t("2024-10-07 07:00:00")
    demand = await observed_demand(engine, CATALOG, start, t("2024-10-28 07:00:00"),
                                   vendor="paper", language="en")
    (expected,) = advise(demand, Target(0.9, 30.0)).queues
    assert cell["needed"]["tutors"] == expected.slots[MONDAY_1600].needed.tutors >= 2
    assert cell["scheduled"]["tutors"] == 1
    assert cell["scheduled"]["service_level"] < cell["needed"]["service_level"]
    assert paper_en["slots"][MONDAY_1600 + 4]["scheduled"]["tutors"] == 0
    assert _queue(body, "paper", "es")["slots"][0]["scheduled"] is None  # no plan


async def test_advice_scope_and_bad_input(client: TestClient[Any, Any]) -> None:
    status, mine = await _get(client, "vendor:paper", **PERIOD)
    assert status == 200 and {q["vendor"] for q in mine["queues"]} == {"paper"}
    refused = [
        ("vendor:paper", {"vendor": "tutorcom"}, 403, "not_allowed"),
        ("school:hs", {}, 403, "not_allowed"),
        (None, {}, 401, "unauthenticated"),
        ("district", {"target": "1.5"}, 400, "invalid_payload"),
        ("district", {"target_wait_s": "soon"}, 400, "invalid_payload"),
        ("district", {"from": "2024-10-07"}, 400, "invalid_payload"),
        ("district", {"from": "2024-10-07", "to": "2026-10-07"}, 400, "invalid_payload"),
        ("district", {"colour": "red"}, 400, "invalid_payload"),
        ("district", {"vendor": "nobody"}, 404, "not_found"),
    ]
    for who, params, code, error in refused:
        status, body = await _get(client, who, **params)
        assert (status, body["code"]) == (code, error), (who, params, body)
    status, body = await _get(client, "district", target="x")
    assert body["parameter"] == "target"


async def test_what_if(client: TestClient[Any, Any]) -> None:
    base_body = {**PERIOD, "vendor": "paper", "language": "en"}
    status, base = await _what_if(client, "district", base_body)
    assert status == 200, base
    (queue,) = base["queues"]
    assert queue["from_plan"] and queue["tutor_hours"] == 2.0 == base["total"]["tutor_hours"]
    assert queue["slots"][MONDAY_1600]["tutors"] == 1
    one_more = {**base_body, "changes": [
        {"vendor": "paper", "language": "en", "weekday": 0, "slot": 32, "delta": 1}]}
    status, more = await _what_if(client, "vendor:paper", one_more)
    assert status == 200, more
    (changed,) = more["queues"]
    assert changed["slots"][MONDAY_1600]["tutors"] == 2
    assert changed["tutor_hours"] == 2.5
    assert changed["service_level"] > queue["service_level"]
    # 1 tutor (2 chats) under 2.7 erlangs, nobody gave up: the line grows without bound
    assert queue["average_wait_s"] is None and queue["slots"][MONDAY_1600]["average_wait_s"] is None
    assert changed["average_wait_s"] is not None
    everywhere = {**base_body, "target": 0.5, "changes": [
        {"vendor": "paper", "language": "en", "headcount": 3}]}
    status, flat = await _what_if(client, "district", everywhere)
    assert flat["total"]["tutor_hours"] == 3 * 336 / 2 and flat["target"]["fraction"] == 0.5
    refused = [
        ("vendor:paper", {**PERIOD, "changes": [
            {"vendor": "tutorcom", "language": "en", "delta": 1}]}, 403),
        ("school:hs", base_body, 403),
        ("district", {**PERIOD, "changes": [{"vendor": "paper", "language": "en"}]}, 400),
        ("district", {**PERIOD, "changes": [
            {"vendor": "paper", "language": "en", "slot": 48, "delta": 1}]}, 400),
        ("district", {**base_body, "changes": [
            {"vendor": "tutorcom", "language": "en", "delta": 1}]}, 400),
        ("district", {**PERIOD, "changes": "more"}, 400),
        ("district", ["not", "an", "object"], 400),
    ]
    for who, body, code in refused:
        status, problem = await _what_if(client, who, body)
        assert status == code, (who, body, problem)


def test_an_impossible_half_hour_is_capped_not_an_error() -> None:
    """Sessions closed months late make handle times of months: the advice says "at least
    the search's bound" for that half-hour instead of failing the whole report."""
    planner = views.CappedPlanner(Target())
    assert planner.tutors_needed(1 / 1800, 2.3e7, None, 2) == views.MAX_SLOTS // 2
    assert planner.tutors_needed(8 / 3600, 1200.0, None, 2) == 3
    assert len(planner.capped) == 1
