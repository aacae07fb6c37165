"""``/api/stats/*`` over HTTP: scope forcing, parameters, JSON and CSV, on both databases."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import stats, tokens
from broker.csv_export import safe_cell
from broker.errors import NotAllowed
from broker.identity import Scope, staff_identity
from broker.settings import Settings
from broker.tokens import Identity
from tests.stats.seed import EVIL_SCHOOL, seed_requeued
from web.problems import problem_middleware
from web.stats_api import QUERIES, setup_stats_api

DISTRICT = {"X-Who": "staff:district"}


def identify(request: web.Request) -> Identity | None:
    """Fake sign-in: ``X-Who: role[:scope[:scope_id]]``."""
    who = request.headers.get("X-Who")
    if not who:
        return None
    role, *rest = who.split(":")
    claims: dict[str, Any] = {}
    if rest:
        claims["scope"] = rest[0]
    if len(rest) > 1:
        claims["scope_id"] = rest[1]
    return Identity(role=role, subject="u1", claims=claims)


async def identify_async(request: web.Request) -> Identity | None:
    return identify(request)


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: engine, identify_async)
    return await aiohttp_client(app)


async def get(client: TestClient[Any, Any], path: str, who: str | None = "staff:district",
              **params: str) -> tuple[int, Any]:
    headers = {"X-Who": who} if who else {}
    resp = await client.get(f"/api/stats/{path}", params=params, headers=headers)
    if resp.content_type.endswith("json"):
        return resp.status, await resp.json()
    return resp.status, await resp.text()


async def test_every_endpoint_answers_json(client: TestClient[Any, Any]) -> None:
    for name in QUERIES:
        status, body = await get(client, name)
        assert status == 200, (name, body)
        assert body["filters"]["school"] is None
    _, summary = await get(client, "summary", **{"from": "2024-01-08", "to": "2024-01-15"})
    assert summary["requests"] == 17
    assert summary["filters"]["from"] == "2024-01-08T08:00:00+00:00"  # local midnight
    _, sl = await get(client, "service-level", t="30")
    assert sl["within"] == 3 and sl["threshold_s"] == 30.0
    _, heat = await get(client, "heatmap", region="West")
    assert heat["total"] == 6  # a1 (k12), a3 twice, a6, a9, a10 (hs)
    _, waits = await get(client, "waits", grade="K")
    assert waits["count"] == 0
    _, waits7 = await get(client, "waits", grade="07", language="en")
    assert waits7["count"] == 2


async def test_scope_forcing(client: TestClient[Any, Any]) -> None:
    _, school = await get(client, "summary", who="staff:school:hs")
    assert school["requests"] == 8 and school["filters"]["school"] == "hs"
    _, same = await get(client, "summary", who="staff:school:hs", school="hs")
    assert same["requests"] == 8
    status, body = await get(client, "summary", who="staff:school:hs", school="elem")
    assert status == 403 and body["code"] == "not_allowed"
    _, vendor = await get(client, "vendors", who="staff:vendor:paper")
    assert [v["vendor"] for v in vendor["vendors"]] == ["paper"]
    status, _ = await get(client, "waits", who="staff:vendor:paper", vendor="tutor")
    assert status == 403
    _, teacher = await get(client, "unmet", who="teacher:school:hs")
    assert teacher["total"] == 2


@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 401), ("student", 403), ("tutor:vendor:paper", 403), ("staff", 403),
     ("staff:school", 403), ("staff:galaxy:x", 403)],
)
async def test_who_may_not_look(client: TestClient[Any, Any], who: str | None, status: int) -> None:
    got, body = await get(client, "summary", who=who)
    assert got == status and body["status"] == status


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"from": "2024-13-01"}, "from"), ({"to": "yesterday"}, "to"),
     ({"from": "2024-02-01", "to": "2024-01-01"}, "to"), ({"grade": "13"}, "grade"),
     ({"t": "-5"}, "t"), ({"t": "nan"}, "t"), ({"t": "soon"}, "t"), ({"format": "xls"}, "format"),
     ({"school": "x" * 65}, "school"), ({"vendr": "paper"}, "vendr")],
)
async def test_bad_parameters_are_400_naming_them(
    client: TestClient[Any, Any], params: dict[str, str], parameter: str
) -> None:
    status, body = await get(client, "waits", **params)
    assert status == 400
    assert body["code"] == "invalid_payload" and body["parameter"] == parameter
    assert parameter in body["title"]


async def test_csv_downloads_are_attachments_and_formula_safe(
    client: TestClient[Any, Any],
) -> None:
    for name in QUERIES:
        resp = await client.get(
            f"/api/stats/{name}", params={"format": "csv", "from": "2024-01-01"}, headers=DISTRICT
        )
        assert resp.status == 200, name
        assert resp.content_type == "text/csv"
        disposition = resp.headers["Content-Disposition"]
        assert disposition == f'attachment; filename="stats-{name}_2024-01-01.csv"'
        rows = list(csv.reader(io.StringIO(await resp.text())))
        assert len(rows) > 1
    _, text = await get(client, "unmet", format="csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["kind", "dimension", "key", "name", "count"]
    evil = next(row for row in rows if row[2] == "evil")
    assert evil[3] == "'" + EVIL_SCHOOL  # not run as a formula by a spreadsheet
    assert ["unmet", "reason", "language_unsupported", "", "2"] in rows
    _, heat = await get(client, "heatmap", format="csv")
    grid = list(csv.reader(io.StringIO(heat)))
    assert grid[0][:3] == ["day", "00:00", "01:00"] and grid[7][0] == "Sun" and grid[7][2] == "2"
    _, groups = await get(client, "groups", format="csv")
    table = list(csv.reader(io.StringIO(groups)))
    assert table[1][:4] == ["All", "20", "6", "30.0"]


def test_safe_cell() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x"):
        assert safe_cell(text) == "'" + text
    assert safe_cell("plain") == "plain" and safe_cell(-3) == -3 and safe_cell(None) == ""


def test_scope_narrows_filters() -> None:
    base = stats.Filters(region="West")
    assert Scope.district().narrow(base) == base
    forced = Scope("school", "hs").narrow(base)
    assert forced.school_id == "hs" and forced.region == "West"
    assert Scope("vendor", "paper").narrow(base).vendor == "paper"
    with pytest.raises(NotAllowed):
        Scope("vendor", "paper").narrow(base.with_(vendor="tutor"))
    with pytest.raises(NotAllowed):
        Scope("school", "hs").narrow(base.with_(school_id="ms"))
    assert Scope.parse("school", "") is None and Scope.parse(None, None) is None
    with pytest.raises(NotAllowed):
        Identity("staff", "u1", {"scope": "school", "scope_id": ""}).require_scope()
    with pytest.raises(NotAllowed):
        Identity("staff", "u1", {}).require_scope()


async def test_sync_identify_and_engine_read_late(engine: AsyncEngine, aiohttp_client: Any) -> None:
    holder: dict[str, AsyncEngine] = {}
    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: holder["engine"], identify)
    client = await aiohttp_client(app)
    holder["engine"] = engine
    status, body = await get(client, "groups")
    assert status == 200 and body["groups"][0]["students_using"] == 6


async def test_default_identify_reads_the_signed_in_cookie(
    engine: AsyncEngine, aiohttp_client: Any
) -> None:
    from broker.accounts import Accounts
    from broker.sign_in import SignIn
    from broker.throttle import Throttles
    from web.auth import COOKIE
    from web.keys import SETTINGS, SIGN_IN

    settings = Settings(secret_key="k" * 32)
    app = web.Application(middlewares=[problem_middleware])
    app[SETTINGS] = settings
    app[SIGN_IN] = SignIn(Accounts(engine, None), Throttles(None, "hh"))
    setup_stats_api(app, lambda: engine)
    client = await aiohttp_client(app)
    resp = await client.get("/api/stats/summary")
    assert resp.status == 401
    teacher = staff_identity("t1", Scope("school", "hs"), role="teacher", source="lti")
    cookie = {COOKIE: tokens.issue(settings.secret_key, teacher)}
    resp = await client.get("/api/stats/summary", cookies=cookie)
    assert resp.status == 200 and (await resp.json())["requests"] == 8
    tutor = Identity("tutor", "t2", {"vendor": "paper"})
    resp = await client.get(
        "/api/stats/summary", cookies={COOKIE: tokens.issue(settings.secret_key, tutor)}
    )
    assert resp.status == 403


async def test_summary_waits_and_service_level_agree_on_give_ups(
    engine: AsyncEngine, client: TestClient[Any, Any]
) -> None:
    await seed_requeued(engine)  # accepted, requeued, then cancelled / expired / waiting
    _, summary = await get(client, "summary")
    _, waits = await get(client, "waits")
    _, level = await get(client, "service-level")
    assert summary["gave_up"] == waits["gave_up"]["total"] == level["gave_up"] == 4
    assert summary["still_waiting"] == waits["still_waiting"] == level["still_waiting"] == 1
    assert summary["accepted"] == waits["count"] == level["accepted"] == 13
    assert summary["accepted"] + summary["gave_up"] + summary["still_waiting"] == 18
    assert summary["queued"] == 18
