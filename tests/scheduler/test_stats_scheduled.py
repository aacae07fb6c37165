"""``GET /api/stats/scheduled`` over HTTP on both databases: the booked programmes' dosage
against target, attendance, no-shows by side and groups below target, per school, offer and
week, with the statistics' scopes (another school's staff refused or shown nothing, vendor
managers without per-student rows) and an audit row for every answered read."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.db.models import metadata
from broker.identity import Identity, Scope, staff_identity
from broker.scheduler import attendance, booking, reports
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import (
    DESIGNEE,
    DISTRICT,
    OTHER_DESIGNEE,
    VENDOR,
    FakeClock,
    World,
)
from tests.scheduler.test_running import occurrence_ids
from web.problems import problem_middleware
from web.stats_api import setup_stats_api

OTHER_VENDOR = staff_identity("vm-2", Scope("vendor", "booknook"), source="account")
TEACHER = Identity("teacher", "te-1", {"scope": "school", "scope_id": "hs"})
WHO = {i.subject: i for i in (DISTRICT, DESIGNEE, OTHER_DESIGNEE, VENDOR, OTHER_VENDOR,
                              TEACHER)}
PERIOD = {"from": "2026-10-26", "to": "2026-11-09"}


async def _booked(ctx: Scheduler, world: World, clock: FakeClock) -> None:
    """Mon/Wed/Thu 15:30 for two weeks (W44, W45) for st1 and st2: W44's Thursday is
    cancelled (the group is below target that week), st1 attends all three of W45 (on
    target), the three ended sessions are closed without their tutor (no-shows)."""
    booked = await booking.book_series(ctx, DESIGNEE, {
        "group": world.group, "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=6",
        "first_day": "2026-10-26", "start": "15:30", "minutes": 30})
    mon, wed, thu, mon2, wed2, thu2 = await occurrence_ids(ctx, booked.series_id)
    marks = ((mon, {"st1": "present", "st2": "late"}), (wed, {"st1": "present", "st2": "absent"}),
             (mon2, {"st1": "present"}), (wed2, {"st1": "present"}), (thu2, {"st1": "late"}))
    for occurrence, by_student in marks:
        await attendance.mark(ctx, DESIGNEE, occurrence, {"marks": by_student})
    await booking.cancel(ctx, DESIGNEE, thu, {"scope": "one", "reason": "Assembly"})
    clock.at = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)  # after Monday 2 November's session
    assert await attendance.close_ended(ctx) == {"closed": 3, "tutor_no_shows": 3}


async def client_of(ctx: Scheduler, aiohttp_client: Any) -> TestClient[Any, Any]:
    async def identify(request: web.Request) -> Identity | None:
        return WHO.get(request.headers.get("X-Who", ""))

    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: ctx.engine, identify)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def get(client: TestClient[Any, Any], who: Identity | None,
              **params: str) -> tuple[int, Any]:
    headers = {"X-Who": who.subject} if who else {}
    resp = await client.get("/api/stats/scheduled", params={**PERIOD, **params},
                            headers=headers)
    if resp.content_type.endswith("json"):
        return resp.status, await resp.json()
    return resp.status, await resp.text()


async def test_figures_scopes_csv_and_audit(ctx: Scheduler, world: World, clock: FakeClock,
                                            aiohttp_client: Any) -> None:
    await _booked(ctx, world, clock)
    client = await client_of(ctx, aiohttp_client)

    status, body = await get(client, DISTRICT)
    assert status == 200, body
    assert body["students"] is None  # the whole district: no per-student rows
    w44, w45 = body["weeks"]
    assert (w44["week"], w44["week_start"], w45["week"]) == ("2026-W44", "2026-10-26",
                                                             "2026-W45")
    assert (w44["students"], w44["students_on_target"], w44["sessions_per_student"],
            w44["target_sessions_per_student"]) == (2, 0, 1.5, 3.0)
    assert (w45["students_on_target"], w45["share_on_target"]) == (1, 0.5)
    assert (w44["marked"], w44["attended"], w44["attendance_rate"]) == (4, 3, 0.75)
    assert w44["no_shows"] == {"students": 1, "tutors": 2}
    assert w45["no_shows"] == {"students": 1, "tutors": 1}  # Wed/Thu not closed yet
    assert body["totals"] == {
        "student_weeks": 4, "student_weeks_on_target": 1, "share_on_target": 0.25,
        "attendance": {"marked": 8, "attended": 6, "rate": 0.75},
        "no_shows": {"students": 2, "tutors": 3}, "groups_below_target": 1}
    (programme,) = body["programmes"]
    assert programme["school"] == "hs" and programme["offer"] == world.school_offer
    assert programme["target"] == {"sessions_per_week": 3, "minutes_per_week": 90}
    assert programme["vendor"] == "tutorco" and programme["groups_below_target"] == 1
    assert body["groups_below_target"] == [{
        "school": "hs", "school_name": programme["school_name"], "offer": world.school_offer,
        "group": world.group, "subject": "math", "grade_band": "9-10", "language": "en",
        "tutor": "t1", "tutor_name": "t1",
        "weeks": [{"week": "2026-W44", "sessions": 2, "target": 3}]}]
    assert body["filters"]["from"] == "2026-10-26T07:00:00+00:00"

    # The statistics' other filters: the school's region, the students' grade, the
    # series' language, the offer's vendor.
    for params, same in (({"region": "West"}, True), ({"region": "East"}, False),
                         ({"grade": "9"}, True), ({"grade": "10"}, False),
                         ({"language": "en"}, True), ({"language": "es"}, False),
                         ({"vendor": "tutorco"}, True), ({"vendor": "booknook"}, False)):
        _, narrowed = await get(client, DISTRICT, **params)
        assert (narrowed["totals"] == body["totals"]) is same, params
        assert bool(narrowed["rows"]) is same, params

    # Per-student rows only when asked for, for one school, by district or school staff.
    _, mine = await get(client, DESIGNEE)
    assert mine["filters"]["school"] == "hs" and mine["students"] is None
    _, mine = await get(client, DESIGNEE, students="yes")
    st1 = [(r["week"], r["sessions"], r["minutes"], r["on_target"])
           for r in mine["students"] if r["student"] == "st1"]
    assert st1 == [("2026-W44", 2, 60, False), ("2026-W45", 3, 90, True)]
    _, asked = await get(client, DISTRICT, school="hs", students="yes")
    assert len(asked["students"]) == 4 and asked["totals"] == body["totals"]
    status, problem = await get(client, DISTRICT, students="yes")
    assert (status, problem["parameter"]) == (400, "school")
    status, problem = await get(client, DISTRICT, students="all")
    assert (status, problem["parameter"]) == (400, "students")

    # Another school's staff: refused for hs, nothing for their own school.
    status, problem = await get(client, OTHER_DESIGNEE, school="hs")
    assert (status, problem["code"], problem["parameter"]) == (403, "not_allowed", "school")
    _, theirs = await get(client, OTHER_DESIGNEE, students="yes")
    assert theirs["rows"] == [] and theirs["students"] == [] and theirs["weeks"] == []
    # Vendor managers: their own offers' figures, never a student's row; another vendor's
    # manager sees none of them. A teacher sees their school's figures without students.
    _, vendor = await get(client, VENDOR, school="hs")
    assert vendor["students"] is None and vendor["totals"] == body["totals"]
    status, problem = await get(client, VENDOR, school="hs", students="yes")
    assert (status, problem["code"], problem["parameter"]) == (403, "not_allowed", "students")
    _, other_vendor = await get(client, OTHER_VENDOR)
    assert other_vendor["rows"] == []
    _, teacher = await get(client, TEACHER)
    assert teacher["students"] is None and teacher["totals"] == body["totals"]
    assert (await get(client, TEACHER, students="yes"))[0] == 403
    assert (await get(client, None))[0] == 401
    status, problem = await get(client, DISTRICT, to="2026-10-01")
    assert (status, problem["parameter"]) == (400, "to")

    # CSV: one row per school, offer and week, opened safely by a spreadsheet.
    status, text = await get(client, DISTRICT, format="csv")
    assert status == 200
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(reports.DISTRICT_CSV_COLUMNS)
    assert [(r[0], r[5], r[9], r[10], r[16]) for r in table[1:]] == [
        ("hs", "2026-W44", "2", "0", "0.75"), ("hs", "2026-W45", "2", "1", "0.75")]

    audit = metadata.tables["audit_log"]
    async with ctx.engine.connect() as conn:
        logged = (await conn.execute(sa.select(audit.c.actor, audit.c.detail).where(
            audit.c.action == "stats.scheduled").order_by(audit.c.id))).all()
    assert [(actor, detail.rsplit(" ", 1)[1]) for actor, detail in logged] == [
        ("dist-1", "students=no")] * 9 + [
        ("des-hs", "students=no"), ("des-hs", "students=yes"), ("dist-1", "students=yes"),
        ("des-ms", "students=yes"), ("vm-1", "students=no"), ("vm-2", "students=no"),
        ("te-1", "students=no"), ("dist-1", "students=no")]  # refusals are not reads
