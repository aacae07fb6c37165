"""Coverage (issue 15): scheduled against observed and needed tutors per queue and
half-hour, in a fall-back week, and the ``/api/capacity/*`` routes; on SQLite and PostgreSQL.

The week is Monday 2024-10-28 to Monday 2024-11-04 in America/Los_Angeles (338
half-hours: 01:00 and 01:30 happen twice on Sunday 2024-11-03). Monday 16:00 PDT is
23:00 UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.capacity import coverage, shifts
from broker.catalog_source import load_catalog
from broker.db.duty_models import tutor_duty
from broker.db.engine import create_engine
from broker.db.models import help_requests, tutoring_sessions
from broker.errors import NotAllowed
from broker.identity import Identity, Scope, staff_identity
from broker.migrate import migrate
from broker.request_rollup import fill_rows
from broker.settings import Settings
from tests.stats.seed import request_row, sec, session_row, t
from web.capacity_api import setup_capacity_api
from web.problems import problem_middleware

CATALOG = load_catalog()
LA = CATALOG.timezone
DISTRICT = staff_identity("d1", Scope.district(), source="test")
PAPER = staff_identity("vm-paper", Scope("vendor", "paper"), source="test")
NOW = t("2024-10-29 00:00:00")
WEEK = shifts.week_bounds(dt.date(2024, 10, 30), LA)
PLAN = {"weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": 2},
                   {"day": "sun", "start": "01:00", "end": "02:00", "headcount": 1}]}


async def _seed(eng: AsyncEngine) -> None:
    def req(rid: str, when: str, vendor: str = "paper", **values: Any) -> dict[str, Any]:
        return request_row(rid, f"s-{rid}", "", "elem", 3, "en", t(when), vendor=vendor,
                           **values)

    r1 = req("r1", "2024-10-28 23:05:00", status="ended")
    r2 = req("r2", "2024-10-28 23:10:00", status="ended")
    r3 = req("r3", "2024-10-28 23:15:00", status="abandoned", closed_at=t("2024-10-28 23:20:00"))
    r4 = req("r4", "2024-10-28 23:40:00", status="accepted")
    r5 = req("r5", "2024-11-03 09:00:00", status="ended")
    test = req("x1", "2024-10-28 23:06:00", status="abandoned", is_test=True)
    other = req("x2", "2024-10-28 23:07:00", vendor="tutorcom", status="cancelled")
    sessions = [
        session_row("e1", r1, "p1", r1["queued_at"] + sec(30), t("2024-10-28 23:45:00")),
        session_row("e2", r2, "p2", r2["queued_at"] + sec(120), t("2024-10-28 23:20:00")),
        session_row("e4", r4, "p1", r4["queued_at"] + sec(60), None),
        session_row("e5", r5, "p3", r5["queued_at"] + sec(10), t("2024-11-03 09:20:10")),
    ]
    def on_duty(tutor: str, since: str, until: str | None) -> dict[str, Any]:
        return {"tutor_id": tutor, "vendor": "paper", "language": "en",
                "started_at": t(since), "ended_at": t(until) if until else None}

    duty = [  # p4 is on duty and never chats; p5's span is still open at NOW
        on_duty("p1", "2024-10-28 22:50:00", "2024-10-28 23:50:00"),
        on_duty("p2", "2024-10-28 23:00:00", "2024-10-28 23:25:00"),
        on_duty("p5", "2024-10-28 23:55:00", None),
        on_duty("p4", "2024-11-03 08:10:00", "2024-11-03 08:20:00"),
        on_duty("p3", "2024-11-03 09:00:00", "2024-11-03 09:20:10"),
    ]
    fill_rows([r1, r2, r3, r4, r5, test, other], sessions)
    async with eng.begin() as conn:
        await conn.execute(help_requests.insert(), [r1, r2, r3, r4, r5, test, other])
        await conn.execute(tutoring_sessions.insert(), sessions)
        await conn.execute(tutor_duty.insert(), duty)
    await shifts.replace_plans(eng, PAPER, CATALOG,
                               {("paper", "en"): shifts.parse_plan(PLAN, LA)}, "test")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(Settings(database_url=database_url))
    eng = create_engine(database_url)
    await _seed(eng)
    yield eng
    await eng.dispose()


def _slot(report: dict[str, Any], utc: str) -> dict[str, Any]:
    (queue,) = report["queues"]
    at = t(utc).isoformat()
    return next(x for x in queue["slots"] if x["start"] == at)


async def test_coverage_of_a_fall_back_week(engine: AsyncEngine) -> None:
    report = await coverage.coverage(engine, PAPER, CATALOG, *WEEK, language="en", now=NOW)
    assert report["half_hours"] == 7 * 48 + 2
    (queue,) = report["queues"]
    assert (queue["vendor"], queue["language"], queue["sessions_per_tutor"]) == ("paper", "en", 2)
    # handle times of sessions accepted in the week and ended: 2370 s, 480 s, 1200 s
    assert queue["mean_handle_s"] == 1350.0
    # time in line: waits 30 + 120 + 60 + 10 s and r3's 300 s before giving up, 1 gave up
    assert queue["patience_s"] == 520.0
    assert queue["scheduled_tutor_hours"] == 4 * 2 / 2 + 4 / 2  # Monday 2 h x 2, Sunday 4 x 30 min
    first = _slot(report, "2024-10-28 23:00:00")
    assert first["local"] == "2024-10-28T16:00:00-07:00"
    assert {k: first[k] for k in ("scheduled", "observed", "observed_chatting", "arrivals",
                                  "accepted", "gave_up", "wait_mean_s", "wait_p90_s",
                                  "service_level")} == {
        "scheduled": 2, "observed": 2, "observed_chatting": 2, "arrivals": 3, "accepted": 2,
        "gave_up": 1, "wait_mean_s": 75.0, "wait_p90_s": 111.0, "service_level": 0.3333}
    second = _slot(report, "2024-10-28 23:30:00")  # p1 until 23:50, p5 from 23:55 (open)
    assert (second["observed"], second["observed_chatting"], second["arrivals"],
            second["under_delivered"]) == (2, 1, 1, False)
    midnight = _slot(report, "2024-10-29 00:00:00")  # the open ones: until now
    assert (midnight["observed"], midnight["observed_chatting"]) == (0, 0)
    pdt, pst = _slot(report, "2024-11-03 08:00:00"), _slot(report, "2024-11-03 09:00:00")
    assert (pdt["local"], pst["local"]) == ("2024-11-03T01:00:00-07:00",
                                            "2024-11-03T01:00:00-08:00")
    # p4: on duty, idle (no session): observed, not chatting
    assert (pdt["scheduled"], pdt["observed"], pdt["observed_chatting"]) == (1, 1, 0)
    assert (pst["scheduled"], pst["observed"], pst["arrivals"]) == (1, 1, 1)
    after = _slot(report, "2024-11-03 09:30:00")  # ended 09:20:10
    assert (after["observed"], after["observed_chatting"]) == (0, 0)
    fn = coverage.needed_function()
    if fn is None:
        assert report["needed_method"] is None and first["needed"] is None
    else:
        assert first["needed"] == fn(3 / 1800, 1350.0, 2, 0.8, 60.0, patience_s=520.0) >= 1
        assert first["short"] == (first["needed"] > 2)
        assert _slot(report, "2024-10-29 03:00:00")["needed"] == 0  # no arrivals
    assert sum(x["arrivals"] for x in queue["slots"]) == 5  # no test traffic, no tutorcom


async def test_coverage_scope(engine: AsyncEngine) -> None:
    mine = await coverage.coverage(engine, PAPER, CATALOG, *WEEK, now=NOW, needed_fn=None)
    assert [q["language"] for q in mine["queues"]] == ["en", "es", "zh", "fr"]
    every = await coverage.coverage(engine, DISTRICT, CATALOG, *WEEK, now=NOW, needed_fn=None)
    assert {q["vendor"] for q in every["queues"]} == {"paper", "tutorcom"}
    tutorcom_en = next(q for q in every["queues"] if q["vendor"] == "tutorcom"
                       and q["language"] == "en")
    assert sum(x["gave_up"] for x in tutorcom_en["slots"]) == 1
    with pytest.raises(NotAllowed):
        await coverage.coverage(engine, PAPER, CATALOG, *WEEK, vendor="tutorcom")
    with pytest.raises(NotAllowed):
        school = staff_identity("s", Scope("school", "hs"), source="test")
        await coverage.coverage(engine, school, CATALOG, *WEEK)


# -- HTTP ----------------------------------------------------------------------------------
def identify(request: web.Request) -> Identity | None:
    """Fake sign-in: ``X-Who: district`` or ``X-Who: vendor:<id>`` or ``school:<id>``."""
    who = request.headers.get("X-Who")
    if not who:
        return None
    kind, _, ident = who.partition(":")
    return staff_identity("u-" + who, Scope.parse(kind, ident or None), source="test")


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[problem_middleware])
    setup_capacity_api(app, lambda: engine, lambda: CATALOG, identify, lambda: NOW)
    return await aiohttp_client(app)


async def _call(client: TestClient[Any, Any], method: str, path: str, who: str | None,
                body: Any = None, **params: str) -> tuple[int, Any]:
    headers = {"X-Who": who} if who else {}
    resp = await client.request(method, f"/api/capacity/{path}", json=body, params=params,
                                headers=headers)
    if resp.content_type.endswith("json"):
        return resp.status, await resp.json()
    return resp.status, await resp.text()


async def test_http_plans_and_coverage(client: TestClient[Any, Any]) -> None:
    plan = {"weekly": [{"day": "fri", "start": "15:00", "end": "17:30", "headcount": 1}],
            "exceptions": [{"date": "2024-11-01", "start": "15:00", "end": "16:00",
                            "headcount": 3, "note": "exam week"}]}
    status, body = await _call(client, "PUT", "plans/paper/zh", "vendor:paper", plan)
    assert status == 200 and body["weekly"] == plan["weekly"] and body["updated_by"]
    assert body["exceptions"][0]["starts_at"] == "2024-11-01T22:00:00+00:00"
    status, body = await _call(client, "GET", "plans/paper/zh", "district")
    assert status == 200 and body["exceptions"][0]["note"] == "exam week"
    refusals = [
        ("PUT", "plans/paper/zh", "vendor:tutorcom", plan, 403, "not_allowed"),
        ("PUT", "plans/paper/zh", None, plan, 401, "unauthenticated"),
        ("PUT", "plans/paper/zh", "school:hs", plan, 403, "not_allowed"),
        ("PUT", "plans/paper/ko", "vendor:paper", plan, 404, "not_found"),
        ("PUT", "plans/paper/zh", "vendor:paper",
         {"weekly": [{"day": "fri", "start": "15:10", "end": "16:00", "headcount": 1}]},
         400, "invalid_payload"),
        ("PUT", "plans/paper/zh", "vendor:paper",
         {"weekly": [{"day": "fri", "start": "15:00", "end": "16:00", "headcount": -2}]},
         400, "invalid_payload"),
        ("GET", "plans?vendor=tutorcom", "vendor:paper", None, 403, "not_allowed"),
        ("GET", "coverage?week=2024-13-01", "district", None, 400, "invalid_payload"),
        ("GET", "coverage?from=2024-10-01&to=2024-12-01", "district", None, 400,
         "invalid_payload"),
        ("GET", "coverage?colour=red", "district", None, 400, "invalid_payload"),
        ("GET", "coverage?target=1.5", "district", None, 400, "invalid_payload"),
    ]
    for method, path, who, sent, want, code in refusals:
        status, body = await _call(client, method, path, who, sent)
        assert (status, body["code"]) == (want, code), (method, path, who, body)
    status, body = await _call(client, "GET", "plans/paper/zh", "vendor:paper")
    assert body["weekly"] == plan["weekly"]  # the refused writes changed nothing
    csv_plans = ("vendor,language,day,date,start,end,headcount,note\n"
                 "paper,fr,sat,,10:00,12:00,1,\n")
    resp = await client.post("/api/capacity/plans/import?format=csv", data=csv_plans,
                             headers={"X-Who": "vendor:paper"})
    assert resp.status == 200 and (await resp.json())["queues"] == ["paper:fr"]
    mixed = csv_plans.replace("10:00", "09:00") + "tutorcom,en,sat,,10:00,12:00,9,\n"
    resp = await client.post("/api/capacity/plans/import?format=csv", data=mixed,
                             headers={"X-Who": "vendor:paper"})
    assert resp.status == 403  # another vendor's queue in the file: nothing written
    status, listed = await _call(client, "GET", "plans", "vendor:paper")
    assert [p["published"] for p in listed["plans"]] == [True, False, True, True]
    assert listed["plans"][3]["weekly_tutor_hours"] == 2.0  # still 10:00-12:00
    status, report = await _call(client, "GET", "coverage", "vendor:paper",
                                 week="2024-10-30", language="zh", t="120", target="0.9")
    assert status == 200 and report["target"] == {"fraction": 0.9, "wait_s": 120.0}
    friday = next(x for x in report["queues"][0]["slots"]
                  if x["local"] == "2024-11-01T15:00:00-07:00")
    assert friday["scheduled"] == 3  # the exception replaces the pattern's 1
    status, text = await _call(client, "GET", "coverage", "vendor:paper", week="2024-10-30",
                               format="csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert status == 200 and rows[0] == list(coverage.CSV_COLUMNS)
    assert len(rows) == 1 + 4 * 338
    mon = next(r for r in rows if r[:3] == ["paper", "en", "2024-10-28T23:00:00+00:00"])
    assert mon[3:8] == ["2024-10-28", "16:00-0700", "2", "2", "2"]
    assert mon[11:14] == ["3", "2", "1"]
