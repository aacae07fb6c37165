"""Staff reads of students' records: who may read whose, and every read is audited."""

from __future__ import annotations

import csv
import io

import aiohttp

from broker import audit, tokens
from broker.accounts import Accounts
from broker.identity import Scope, staff_identity
from tests.accounts.conftest import PASSWORD, AuthServer, make_people, seed_history
from tests.broker.harness import SECRET, student
from web import auth

TEACHER = staff_identity("lti-teacher-1", Scope("school", "elem"), role="teacher", source="lti")
PATH = "/api/staff/students/{}/sessions"


async def _sign_in(http: aiohttp.ClientSession, username: str) -> None:
    resp = await http.post("/api/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()


def _as(http: aiohttp.ClientSession, identity: tokens.Identity) -> None:
    """Put an identity issued elsewhere (an LTI launch) in the session cookie."""
    http.cookie_jar.update_cookies({auth.COOKIE: tokens.issue(SECRET, identity)})


async def _actions(accounts: Accounts) -> list[tuple[str, str | None, str]]:
    return [(e["action"], e["subject"], e["actor"]) for e in await audit.entries(accounts.engine)]


async def test_district_staff_read_any_student_and_each_read_is_audited(
    server: AuthServer, accounts: Accounts
) -> None:
    people = await make_people(accounts)
    rid, sid = await seed_history(server.settings.database_url, "s-hs", "hs", days_ago=2)
    async with server.http() as http:
        await _sign_in(http, "district.staff")
        for _ in range(2):
            resp = await http.get(PATH.format("s-hs"))
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert [r["id"] for r in body["requests"]] == [rid]
    assert [s["id"] for s in body["sessions"]] == [sid]
    assert "text" not in str(body["sessions"])  # metadata, never message bodies
    who = people["district"].id
    assert await _actions(accounts) == [("student.sessions.read", "s-hs", who)] * 2
    entry = (await audit.entries(accounts.engine))[0]
    assert entry["endpoint"] == "GET " + PATH.format("s-hs") and entry["actor_role"] == "staff"


async def test_school_staff_and_teachers_see_only_their_school(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    url = server.settings.database_url
    at_elem, _ = await seed_history(url, "s-moved", "elem", days_ago=300)
    await seed_history(url, "s-moved", "hs", days_ago=3)  # the same student, later elsewhere
    await seed_history(url, "s-hs", "hs", days_ago=2)
    async with server.http() as staff_http, server.http() as teacher_http:
        await _sign_in(staff_http, "elem.staff")
        _as(teacher_http, TEACHER)
        for http in (staff_http, teacher_http):
            resp = await http.get(PATH.format("s-moved"))
            assert resp.status == 200
            body = await resp.json()
            assert [r["id"] for r in body["requests"]] == [at_elem]
            assert {s["school_id"] for s in body["sessions"]} == {"elem"}
            other = await http.get(PATH.format("s-hs"))
            assert other.status == 404  # the same answer as an unknown student
            unknown = await http.get(PATH.format("s-nobody"))
            assert unknown.status == 404
    actions = [a for a, _, _ in await _actions(accounts)]
    assert actions.count("student.sessions.read") == 2
    assert actions.count("student.sessions.refused") == 4


async def test_vendor_managers_tutors_and_students_are_refused_personal_data(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    await seed_history(server.settings.database_url, "s-ana", "elem")
    async with server.http() as http:
        assert (await http.get(PATH.format("s-ana"))).status == 401
        for username in ("paper.manager", "paper.tutor"):
            await _sign_in(http, username)
            resp = await http.get(PATH.format("s-ana"))
            assert resp.status == 403 and (await resp.json())["code"] == "not_allowed"
        _as(http, student("s-ana", "elem", 3))
        assert (await http.get(PATH.format("s-ana"))).status == 403
    refused = [(a, r) for a, r, _ in await _actions(accounts)]
    assert refused == [("student.sessions.refused", "s-ana")] * 3


async def test_audit_export_is_for_district_staff_only(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    await seed_history(server.settings.database_url, "s-ana", "elem")
    async with server.http() as http:
        assert (await http.get("/api/staff/audit.csv")).status == 401
        for username in ("elem.staff", "paper.manager", "paper.tutor"):
            await _sign_in(http, username)
            assert (await http.get("/api/staff/audit.csv")).status == 403
        _as(http, TEACHER)
        assert (await http.get("/api/staff/audit.csv")).status == 403
        await _sign_in(http, "district.staff")
        assert (await http.get(PATH.format("s-ana"))).status == 200
        resp = await http.get("/api/staff/audit.csv")
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert [r["action"] for r in rows] == ["student.sessions.read"]
        assert rows[0]["subject"] == "s-ana"
        bad = await http.get("/api/staff/audit.csv?since=yesterday")
        assert bad.status == 400
    assert [a for a, _, _ in await _actions(accounts)] == ["student.sessions.read", "audit.export"]
