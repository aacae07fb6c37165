"""The scheduler's HTTP API through aiohttp's test client: typed problem bodies, scopes,
nothing half-written, the parent link and the feed URL."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.identity import Identity, Scope, staff_identity
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import BELLS, OFFER
from web.problems import problem_middleware
from web.scheduler_api import setup_scheduler_api

Client = TestClient[Any, Any]


async def identify(request: web.Request) -> Identity:
    """Fake sign-in: ``X-Who: staff:<scope>[:<id>]`` or ``tutor:<id>``."""
    who = request.headers.get("X-Who", "")
    role, _, rest = who.partition(":")
    if role == "tutor":
        return Identity("tutor", rest, {"vendor": "tutorco"})
    kind, _, ident = rest.partition(":")
    scope = Scope.district() if kind == "district" else Scope.parse(kind, ident)
    return staff_identity(f"u-{kind}-{ident}", scope, source="account")


@pytest.fixture
async def client(ctx: Scheduler, aiohttp_client: Any) -> Client:
    app = web.Application(middlewares=[problem_middleware])
    setup_scheduler_api(app, lambda: ctx, identify)
    return await aiohttp_client(app)


DISTRICT = {"X-Who": "staff:district"}
DESIGNEE = {"X-Who": "staff:school:hs"}


async def call(client: Client, method: str, path: str, who: dict[str, str],
               body: Any = None, data: bytes | None = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, data=data, headers=who)
    if resp.content_type in ("application/json", "application/problem+json"):
        return resp.status, await resp.json()
    return resp.status, await resp.text()


async def prepare(client: Client) -> dict[str, str]:
    status, offer = await call(client, "POST", "/api/scheduler/offers", DISTRICT, OFFER)
    assert status == 201, offer
    status, _ = await call(client, "PUT", "/api/scheduler/schools/hs/bells", DESIGNEE, BELLS)
    assert status == 200
    status, _ = await call(client, "PUT", "/api/scheduler/tutors/t1", DISTRICT, {
        "vendor": "tutorco", "languages": ["en"], "timezone": "America/Los_Angeles"})
    assert status == 200
    status, enrolled = await call(
        client, "POST", f"/api/scheduler/offers/{offer['id']}/enrolments", DESIGNEE,
        {"students": [{"student": "st1", "language": "en"},
                      {"student": "st2", "language": "en"}]})
    assert (status, enrolled["enrolled"]) == (200, ["st1", "st2"])
    status, group = await call(client, "POST", "/api/scheduler/groups", DESIGNEE, {
        "offer": offer["id"], "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st1", "st2"]})
    assert status == 201, group
    return {"offer": offer["id"], "group": group["id"]}


SERIES = {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=36", "first_day": "2026-10-26",
          "minutes": 30}


async def test_designee_books_and_refusals_are_typed(client: Client) -> None:
    ids = await prepare(client)
    status, problem = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                                 {"group": ids["group"], **SERIES, "start": "13:29"})
    assert status == 409
    assert problem["code"] == "before_bell_window" and len(problem["dates"]) == 36
    assert problem["violations"][0]["code"] == "before_bell_window"
    status, week = await call(client, "GET", "/api/scheduler/schools/hs/week?date=2026-11-02",
                              DESIGNEE)
    assert (status, week["occurrences"]) == (200, [])  # nothing half-written
    status, booked = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                                {"group": ids["group"], **SERIES, "start": "15:30"})
    assert (status, booked["occurrences"]) == (201, 36)
    status, week = await call(client, "GET", "/api/scheduler/schools/hs/week?date=2026-11-02",
                              DESIGNEE)
    assert [o["local"][11:16] for o in week["occurrences"]] == ["15:30"] * 3
    first = week["occurrences"][0]["id"]
    status, problem = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                                 {"group": ids["group"], **SERIES, "start": "15:45"})
    assert (status, problem["code"]) == (409, "overlap_tutor")
    status, done = await call(client, "POST", f"/api/scheduler/occurrences/{first}/cancel",
                              DESIGNEE, {"scope": "one", "reason": "assembly"})
    assert (status, done["cancelled"]) == (200, [first])
    status, history = await call(client, "GET", f"/api/scheduler/series/{booked['series']}",
                                 DESIGNEE)
    assert [h["action"] for h in history["history"]] == ["book", "cancel_one"]
    status, groups = await call(
        client, "GET", f"/api/scheduler/schools/hs/groups?offer={ids['offer']}", DESIGNEE)
    assert status == 200 and [g["students"] for g in groups["groups"]] == [["st1", "st2"]]
    status, _ = await call(client, "GET", "/api/scheduler/schools/hs/groups",
                           {"X-Who": "staff:vendor:tutorco"})
    assert status == 403
    status, term = await call(client, "GET", "/api/scheduler/students/st1/schedule", DESIGNEE)
    assert status == 200 and len(term["occurrences"]) == 36
    status, report = await call(
        client, "GET", f"/api/scheduler/reports?school=hs&offer={ids['offer']}"
        "&from=2026-11-02&to=2026-11-08", DESIGNEE)
    assert status == 200 and report["target"]["sessions_per_week"] == 3


async def test_bad_input_and_scopes(client: Client) -> None:
    ids = await prepare(client)
    resp = await client.post("/api/scheduler/series", data=b"{not json",
                             headers={**DESIGNEE, "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["code"] == "invalid_payload"
    assert resp.content_type == "application/problem+json"
    status, problem = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                                 {"group": ids["group"], **SERIES, "start": "25:00"})
    assert (status, problem["code"], problem["field"]) == (400, "invalid_payload", "start")
    status, problem = await call(client, "POST", "/api/scheduler/series",
                                 {"X-Who": "staff:school:ms"},
                                 {"group": ids["group"], **SERIES, "start": "15:30"})
    assert (status, problem["code"]) == (403, "not_allowed")
    status, problem = await call(client, "POST", "/api/scheduler/offers", DESIGNEE, OFFER)
    assert status == 403
    status, problem = await call(client, "GET", "/api/scheduler/students/st1/schedule",
                                 {"X-Who": "staff:vendor:tutorco"})
    assert status == 403
    status, problem = await call(
        client, "POST", "/api/scheduler/schools/hs/calendar/import?format=csv", DISTRICT,
        data=b"date,kind\n2026-13-01,holiday\n")
    assert (status, problem["code"], problem["reason"]) == (400, "calendar_rejected", "bad_date")
    status, cal = await call(client, "GET", "/api/scheduler/schools/hs/calendar", DISTRICT)
    assert cal["days"] == []


async def test_parent_link_and_feed_urls(client: Client) -> None:
    status, offer = await call(client, "POST", "/api/scheduler/offers", DISTRICT, {
        **OFFER, "programme": "home_based", "group_limit": 1, "min_sessions_per_week": 1})
    assert status == 201
    status, link = await call(client, "POST", "/api/scheduler/parent-links", DESIGNEE,
                              {"student": "st1", "offer": offer["id"], "language": "es"})
    assert status == 201
    status, page = await call(client, "GET", f"/api/parent/{link['token']}", {})
    assert status == 200 and page["child"]["given_name"] == "Namest1"
    assert set(page) == {"child", "offers", "language", "slots"}
    status, problem = await call(client, "GET", f"/api/parent/{link['token']}x", {})
    assert (status, problem["code"]) == (403, "link_invalid")
    status, made = await call(client, "POST", "/api/scheduler/feeds", DESIGNEE,
                              {"owner_kind": "student", "owner": "st1"})
    assert status == 201
    resp = await client.get(made["url"])
    assert resp.status == 200 and resp.content_type == "text/calendar"
    assert "BEGIN:VCALENDAR" in await resp.text()
    status, _ = await call(client, "DELETE", "/api/scheduler/feeds/student/st1", DESIGNEE)
    assert status == 200
    assert (await client.get(made["url"])).status == 404


ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:thanksgiving@test\r
DTSTAMP:20260801T000000Z\r
DTSTART;VALUE=DATE:20261126\r
DTEND;VALUE=DATE:20261128\r
SUMMARY:Thanksgiving Break\r
CATEGORIES:Break\r
END:VEVENT\r
END:VCALENDAR\r
"""


async def test_an_ics_calendar_cancels_booked_sessions(client: Client) -> None:
    ids = await prepare(client)
    status, _ = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                           {"group": ids["group"], **SERIES, "start": "15:30"})
    assert status == 201
    status, done = await call(
        client, "POST", "/api/scheduler/schools/hs/calendar/import?format=ics", DESIGNEE,
        data=ICS)
    assert status == 200, done
    assert done["days"] == 2 and len(done["cancelled_occurrences"]) == 1  # Thu 26 Nov
    status, week = await call(client, "GET", "/api/scheduler/schools/hs/week?date=2026-11-23",
                              DESIGNEE)
    cancelled = [o for o in week["occurrences"] if o["status"] == "cancelled"]
    assert [o["local"][:10] for o in cancelled] == ["2026-11-26"]
    assert cancelled[0]["cancel_reason"] in ("break", "holiday")
    big = b"date,kind\n" + b"2026-11-30,holiday\n" * 120_000
    status, problem = await call(
        client, "POST", "/api/scheduler/schools/hs/calendar/import?format=csv", DESIGNEE,
        data=big)
    assert (status, problem["code"]) == (400, "invalid_payload")


async def test_a_tutor_sees_their_sessions_and_joins(client: Client, clock: Any) -> None:
    from datetime import UTC, datetime

    ids = await prepare(client)
    await call(client, "POST", "/api/scheduler/series", DESIGNEE,
               {"group": ids["group"], **SERIES, "start": "15:30"})
    clock.at = datetime(2026, 10, 26, 22, 0, tzinfo=UTC)  # 15:00 local, 30 min before
    status, mine = await call(client, "GET", "/api/scheduler/me/upcoming", {"X-Who": "tutor:t1"})
    assert status == 200 and mine["occurrences"][0]["starts_in_s"] == 1800
    assert mine["occurrences"][0]["students"] == ["st1", "st2"]
    first = mine["occurrences"][0]["id"]
    clock.at = datetime(2026, 10, 26, 22, 33, tzinfo=UTC)
    status, joined = await call(client, "POST", f"/api/scheduler/occurrences/{first}/join",
                                {"X-Who": "tutor:t1"})
    assert (status, joined["status"]) == (200, "present")
    status, problem = await call(client, "POST", f"/api/scheduler/occurrences/{first}/join",
                                 {"X-Who": "tutor:t9"})
    assert (status, problem["code"]) == (403, "not_allowed")
    status, problem = await call(client, "GET", "/api/scheduler/me/upcoming", DESIGNEE)
    assert status == 403


async def test_report_csv_and_link_revocation(client: Client) -> None:
    ids = await prepare(client)
    await call(client, "POST", "/api/scheduler/series", DESIGNEE,
               {"group": ids["group"], **SERIES, "start": "15:30"})
    resp = await client.get(
        f"/api/scheduler/reports?school=hs&offer={ids['offer']}&from=2026-10-26"
        "&to=2026-11-08&format=csv", headers=DESIGNEE)
    assert resp.status == 200 and resp.content_type == "text/csv"
    lines = (await resp.text()).splitlines()
    assert lines[0] == "student,week,sessions,minutes,target_sessions,target_minutes,on_target"
    assert len(lines) == 1 + 2 * 2  # two students, two weeks
    status, offer = await call(client, "POST", "/api/scheduler/offers", DISTRICT, {
        **OFFER, "programme": "home_based", "group_limit": 1, "min_sessions_per_week": 1})
    status, link = await call(client, "POST", "/api/scheduler/parent-links", DESIGNEE,
                              {"student": "st1", "offer": offer["id"], "language": "en"})
    status, done = await call(client, "DELETE", "/api/scheduler/parent-links/st1", DESIGNEE)
    assert (status, done["revoked"]) == (200, 1)
    status, problem = await call(client, "GET", f"/api/parent/{link['token']}", {})
    assert (status, problem["code"]) == (410, "link_expired")
