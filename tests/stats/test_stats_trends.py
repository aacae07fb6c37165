"""Trends per day or week, and the filters each scope is offered (issue 14), over HTTP on
both databases, against the known history of tests/stats/seed.py."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.catalog_source import load_catalog
from broker.db.models import help_requests, tutoring_sessions
from broker.request_rollup import fill_rows
from tests.stats.seed import request_row, sec, session_row, t
from tests.stats.test_stats_api import get, identify_async
from web.problems import problem_middleware
from web.stats_api import setup_stats_api

CATALOG = load_catalog()


async def test_trends_per_day_then_per_week(engine: AsyncEngine, aiohttp_client: Any) -> None:
    # a request at 23:30 local on Sunday 14 January is UTC Monday: it stays on the 14th
    async with engine.begin() as conn:
        await conn.execute(
            help_requests.insert(),
            [
                request_row(
                    "late",
                    "s20",
                    "",
                    "hs",
                    10,
                    "en",
                    t("2024-01-15 07:30:00"),
                    status="unmet",
                    unmet_reason="outside_hours",
                    closed_at=t("2024-01-15 07:30:00"),
                )
            ],
        )
    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: engine, identify_async, catalog_of=lambda _app: CATALOG)
    client: TestClient[Any, Any] = await aiohttp_client(app)

    status, week = await get(client, "trends", **{"from": "2024-01-08", "to": "2024-01-15"})
    assert status == 200 and week["bucket"] == "day"
    assert (week["from"], week["to"], week["timezone"]) == (
        "2024-01-08",
        "2024-01-15",
        "America/Los_Angeles",
    )
    by_day = {p["start"]: p for p in week["points"]}
    assert list(by_day) == [f"2024-01-{d:02d}" for d in range(8, 15)]  # every day, in order
    # 8 Jan: a1, a2 (and a3 at 01:00 UTC on the 9th = 17:00 local on the 8th): 3 requests,
    # 4 sessions (a3 was accepted twice), waits 10, 20, 30 s -> p90 28 s
    assert by_day["2024-01-08"] == {
        "start": "2024-01-08",
        "requests": 3,
        "sessions": 4,
        "unmet": 0,
        "accepted": 3,
        "p90_wait_s": 28.0,
    }
    assert by_day["2024-01-09"]["unmet"] == 2 and by_day["2024-01-09"]["p90_wait_s"] is None
    assert by_day["2024-01-14"]["requests"] == 1 and by_day["2024-01-14"]["unmet"] == 1
    assert sum(p["requests"] for p in week["points"]) == 18

    # the same range, held to one vendor: only its requests and sessions
    _, paper = await get(
        client, "trends", who="staff:vendor:paper", **{"from": "2024-01-08", "to": "2024-01-15"}
    )
    assert sum(p["sessions"] for p in paper["points"]) == 2
    assert sum(p["unmet"] for p in paper["points"]) == 0  # unmet requests have no vendor
    assert paper["filters"]["vendor"] == "paper"

    # a year: ISO weeks from Monday, quiet weeks as zeros
    _, year = await get(client, "trends", **{"from": "2024-01-01", "to": "2025-01-01"})
    assert year["bucket"] == "week" and len(year["points"]) == 53
    weeks = {p["start"]: p for p in year["points"]}
    assert weeks["2024-01-08"]["requests"] == 18 and weeks["2024-01-15"]["requests"] == 0
    assert weeks["2024-10-28"]["sessions"] == 2  # a7, a8 around the November DST change

    _, text = await get(
        client, "trends", format="csv", **{"from": "2024-01-08", "to": "2024-01-10"}
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["bucket", "start", "requests", "sessions", "unmet", "accepted", "p90_wait_s"]
    assert rows[1] == ["day", "2024-01-08", "3", "4", "0", "3", "28.0"]

    _, none = await get(client, "trends", **{"from": "2030-01-01", "to": "2030-01-03"})
    assert [p["requests"] for p in none["points"]] == [0, 0]


async def test_filters_offer_only_what_the_scope_allows(
    engine: AsyncEngine, aiohttp_client: Any
) -> None:
    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: engine, identify_async, catalog_of=lambda _app: CATALOG)
    client: TestClient[Any, Any] = await aiohttp_client(app)

    _, district = await get(client, "filters")
    assert district["fixed"] == [] and district["scope"] == {
        "kind": "district",
        "id": None,
        "name": None,
    }
    assert {"id": "hs", "name": "Test High", "region": "West"} in district["schools"]
    assert district["regions"] == ["East", "North", "South", "West"]
    assert [v["id"] for v in district["vendors"]] == ["paper", "tutorcom"]
    assert district["languages"][:2] == ["en", "es"] and -2 in district["grades"]

    _, school = await get(client, "filters", who="teacher:school:hs")
    assert school["fixed"] == ["school"] and school["scope"]["name"] == "Test High"
    assert school["schools"] == [{"id": "hs", "name": "Test High", "region": "West"}]
    assert school["regions"] == [] and school["grades"] == [9, 10, 11, 12]

    _, vendor = await get(client, "filters", who="staff:vendor:paper")
    assert vendor["fixed"] == ["vendor"] and vendor["vendors"] == [
        {"id": "paper", "name": "Paper.co"}
    ]
    assert vendor["languages"] == ["en", "es", "zh", "fr"] and 12 not in vendor["grades"]
    assert len(vendor["schools"]) == len(district["schools"])  # its requests come from anywhere

    status, body = await get(client, "filters", who="teacher")  # a teacher naming no school
    assert status == 403 and body["code"] == "not_allowed"
    status, _ = await get(client, "filters", who=None)
    assert status == 401
    status, body = await get(client, "filters", school="hs")
    assert status == 400 and body["parameter"] == "school"


async def test_short_sessions_count_as_tutor_minutes(
    engine: AsyncEngine, aiohttp_client: Any
) -> None:
    """A day of 20-second chats is 0.01 tutor-hours but 0.67 tutor-minutes: the dashboard
    draws minutes (it drew "No data" from hours rounded to 0.0)."""
    when = t("2025-05-05 18:00:00")
    rows = [
        request_row(
            f"short{i}",
            f"s3{i}",
            "",
            "hs",
            10,
            "en",
            when + sec(60 * i),
            vendor="tutorcom",
            status="ended",
            closed_at=when + sec(60 * i + 25),
        )
        for i in range(2)
    ]
    sessions = [
        session_row(f"Sshort{i}", row, "t1", row["queued_at"] + sec(5), row["queued_at"] + sec(25))
        for i, row in enumerate(rows)
    ]
    fill_rows(rows, sessions)
    async with engine.begin() as conn:
        await conn.execute(help_requests.insert(), rows)
        await conn.execute(
            tutoring_sessions.insert(),
            sessions,
        )
    app = web.Application(middlewares=[problem_middleware])
    setup_stats_api(app, lambda: engine, identify_async)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    _, body = await get(client, "vendors", **{"from": "2025-05-05", "to": "2025-05-06"})
    [vendor] = body["vendors"]
    assert (vendor["sessions"], vendor["tutor_hours"], vendor["tutor_minutes"]) == (2, 0.01, 0.67)
