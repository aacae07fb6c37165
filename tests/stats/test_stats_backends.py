"""The reports whose PostgreSQL queries differ from SQLite's (issue 15: aggregated in SQL on
PostgreSQL, streamed into Python on SQLite) give the same answers.

A random history in bench.stats' shape (a few thousand requests over a school year, both
daylight-saving changes inside), plus what the bench does not make: requests requeued after
their first session (two sessions, the first acceptance counts), requests still waiting,
a requeued one waiting again, overflowed ones. Every time is a whole second, so SQLite's
``julianday`` arithmetic is exact to the millisecond and the two databases can be compared
figure for figure; the PostgreSQL-only paths are also compared with the streamed ones on
the same PostgreSQL database, where sub-second times are exact too.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.stats import _history, _insert, _roster, _schools
from broker import request_rollup, roster_counts, stats, stats_trends
from broker.db.engine import create_engine
from broker.db.models import (
    TutoringSessionRow,
    help_requests,
    schools,
    students,
    tutoring_sessions,
)
from broker.request_rollup import fill_rows
from broker.stats import Filters
from tests.broker.district import prepare_database

PT = stats.DISTRICT_TZ
NOW = dt.datetime(2024, 9, 1, tzinfo=dt.UTC)
FILTERS = {
    "year": Filters(),
    "school": Filters(school_id="s001"),
    "vendor": Filters(vendor="tutor"),
    "language": Filters(language="es"),
    "grade": Filters(grade=7),
    "region": Filters(region="North"),
    # across the spring change (2024-03-10), per day
    "march": Filters(
        start=dt.datetime(2024, 3, 1, tzinfo=PT).astimezone(dt.UTC),
        end=dt.datetime(2024, 3, 20, tzinfo=PT).astimezone(dt.UTC),
    ),
    # across the autumn change (2023-11-05), per week
    "autumn": Filters(
        start=dt.datetime(2023, 9, 1, tzinfo=PT).astimezone(dt.UTC),
        end=dt.datetime(2024, 1, 1, tzinfo=PT).astimezone(dt.UTC),
    ),
}


def _whole(when: Any) -> Any:
    return when.replace(microsecond=0) if isinstance(when, dt.datetime) else when


def _year(sessions: int, seed: int, whole_seconds: bool) -> dict[Any, list[dict[str, Any]]]:
    rng = random.Random(seed)
    requests, sessions_rows = _history(sessions, rng)
    by_id = {row["id"]: row for row in requests}
    extra = []
    for i, session in enumerate(sessions_rows):
        request = by_id[session["request_id"]]
        if i % 17 == 0:  # requeued after the first session; a second tutor took it
            later = session["ended_at"] + dt.timedelta(seconds=rng.randrange(1, 600))
            extra.append({**session, "id": session["id"] + "b", "accepted_at": later,
                          "ended_at": later + dt.timedelta(seconds=600)})
        elif i % 23 == 0:  # requeued, still waiting for a second tutor
            request.update(status="queued", accepted_at=None, closed_at=None)
        elif i % 29 == 0:  # requeued, then the student gave up
            request.update(status="cancelled", accepted_at=None)
    for n, request in enumerate(requests):
        if request["status"] == "cancelled" and n % 5 == 0:  # back to waiting
            request.update(status="queued", closed_at=None)
        if request["vendor"] == "tutor" and n % 13 == 0:
            request["first_choice_unmet"] = "outside_hours"
        request["is_test"] = n % 31 == 0  # test traffic, never counted
        if n % 37 == 1:  # the previous request's student again, whose groups changed
            before = requests[n - 1]
            request["student"] = before["student"]
            request["groups"] = "EL" if before["groups"] != "EL" else "SWD,RFEP"
    fill_rows(requests, sessions_rows + extra)  # as the accepting transactions write it
    rows = {schools: _schools(), help_requests: requests,
            tutoring_sessions: sessions_rows + extra, students: _roster(rng)[:3000]}
    if whole_seconds:
        for table_rows in rows.values():
            for row in table_rows:
                for key, value in row.items():
                    row[key] = _whole(value)
    return rows


async def _seeded(url: str, whole_seconds: bool) -> AsyncEngine:
    await prepare_database(url)
    engine = create_engine(url)
    for table, rows in _year(3000, 7, whole_seconds).items():
        await _insert(engine, table, rows)
    async with engine.begin() as conn:
        await roster_counts.refresh(conn)  # as the roster import does
    return engine


@pytest.fixture
async def both(sqlite_url: str, postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, ...]]:
    engines = (await _seeded(sqlite_url, True), await _seeded(postgres_url, True))
    yield engines
    for engine in engines:
        await engine.dispose()


async def _reports(engine: AsyncEngine, f: Filters) -> dict[str, Any]:
    return {
        "summary": await stats.summary(engine, f),
        "waits": await stats.waits(engine, f),
        "service-level": await stats.service_level(engine, f, 45.0),
        "heatmap": await stats.heatmap(engine, f),
        "unmet": await stats.unmet(engine, f),
        "groups": await stats.group_usage(engine, f),
        "vendors": await stats.vendor_capacity(engine, f, now=NOW),
        "trends": await stats_trends.trends(engine, f, now=NOW),
    }


async def test_every_report_is_the_same_on_sqlite_and_postgresql(
    both: tuple[AsyncEngine, AsyncEngine],
) -> None:
    lite, pg = both
    for name, f in FILTERS.items():
        expected = await _reports(lite, f)
        assert expected["summary"]["sessions"] > 0, name
        assert await _reports(pg, f) == expected, name


async def test_postgresql_aggregates_match_the_streamed_reference(postgres_url: str) -> None:
    """Sub-second times: the in-SQL outcomes and trend points equal the streamed ones."""
    engine = await _seeded(postgres_url, False)
    try:
        async with stats.reading(engine) as conn:
            for name, f in FILTERS.items():
                for threshold in (30.0, 60.0, 61.5):
                    streamed = await stats._outcomes_streamed(conn, f, threshold)
                    in_sql = await stats._outcomes_in_sql(conn, f, threshold)
                    assert in_sql == streamed, (name, threshold)
                reference = await stats_trends._points_streamed(conn, f, PT, NOW)
                assert reference is not None
                bucket, first, end, points = reference
                got = await stats_trends._points_in_sql(conn, f, PT, NOW)
                assert got is not None
                assert got[:3] == (bucket, first, end), name
                assert got[3].keys() == points.keys(), name
                for start, point in points.items():
                    *counts, p90 = got[3][start]
                    assert counts == list(point[:4]), (name, start)
                    assert p90 == pytest.approx(point[4], abs=1e-9), (name, start)
    finally:
        await engine.dispose()


async def test_a_range_reads_only_its_sessions_and_still_counts_them_all(
    both: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A range's sessions are bounded by ``accepted_at`` (``session_bounds``); the figures
    are those of every session, including one accepted a little before its request was
    made (another process's clock)."""
    for engine in both:
        async with engine.begin() as conn:
            first = (await conn.execute(
                sa.select(tutoring_sessions.c.id, help_requests.c.requested_at)
                .join(help_requests, help_requests.c.id == tutoring_sessions.c.request_id)
                .where(help_requests.c.requested_at >= FILTERS["march"].start)
                .order_by(help_requests.c.requested_at).limit(1)
            )).one()
            await conn.execute(
                sa.update(TutoringSessionRow).where(TutoringSessionRow.id == first.id)
                .values(accepted_at=first.requested_at - dt.timedelta(seconds=5))
            )
            await request_rollup.refresh(conn)  # written behind the broker's back
        for name in ("march", "autumn"):
            bounded = await _reports(engine, FILTERS[name])
            monkeypatch.setattr(stats, "CLOCK_MARGIN", dt.timedelta(days=100_000))
            assert await _reports(engine, FILTERS[name]) == bounded, name
            monkeypatch.undo()


async def test_the_read_model_is_what_the_sessions_say_and_refresh_rebuilds_it(
    both: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Each request's ``first_accepted_at`` and ``session_count`` (what the reports read
    instead of joining the sessions) equal its sessions' first ``accepted_at`` and count;
    wiped, :func:`request_rollup.refresh` rebuilds them and every report is unchanged."""
    r = help_requests
    for engine in both:
        async with engine.connect() as conn:
            assert await request_rollup.mismatches(conn) == []
            assert (await conn.execute(
                sa.select(sa.func.count()).where(r.c.session_count > 1)
            )).scalar_one() > 0  # requeued requests with two sessions are in the year
        before = await _reports(engine, FILTERS["year"])
        async with engine.begin() as conn:
            await conn.execute(r.update().values(first_accepted_at=None, session_count=0))
            await conn.execute(
                r.update().where(r.c.id == "r1").values(session_count=5)  # no session
            )
            assert len(await request_rollup.mismatches(conn, limit=10)) == 10
            with_sessions = await request_rollup.refresh(conn)
            assert await request_rollup.mismatches(conn) == []
            assert with_sessions == (await conn.execute(
                sa.select(sa.func.count(sa.distinct(tutoring_sessions.c.request_id)))
            )).scalar_one()
        assert await _reports(engine, FILTERS["year"]) == before


async def test_group_usage_counts_each_student_once_per_group(
    both: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Students whose groups changed during the year (``_year`` changes some) count once
    in each group any of their requests carried, and once in All; each session counts in
    its own request's groups; enrolment is the roster's. Computed here from the rows."""
    rows = _year(3000, 7, True)
    using: dict[str, set[str]] = {g: set() for g in ("All", *stats.GROUPS)}
    requesting: dict[str, set[str]] = {g: set() for g in ("All", *stats.GROUPS)}
    sessions = dict.fromkeys(("All", *stats.GROUPS), 0)
    changed: dict[str, set[str]] = {}
    for request in rows[help_requests]:
        if request["is_test"]:
            continue
        changed.setdefault(request["student"], set()).add(request["groups"])
        for group in ("All", *(stats._flags(request["groups"]) & set(stats.GROUPS))):
            requesting[group].add(request["student"])
            if request["session_count"]:
                using[group].add(request["student"])
                sessions[group] += request["session_count"]
    assert sum(len(g) > 1 for g in changed.values()) > 10  # the case this is about
    enrolled = Counter[str]()
    for student in rows[students]:
        for group in ("All", *(stats._flags(student["groups"]) & set(stats.GROUPS))):
            enrolled[group] += 1
    for engine in both:
        got = {row["group"]: row for row in (await stats.group_usage(engine, Filters()))["groups"]}
        for group in ("All", *stats.GROUPS):
            assert got[group]["students_using"] == len(using[group]), group
            assert got[group]["students_requesting"] == len(requesting[group]), group
            assert got[group]["sessions"] == sessions[group], group
            assert got[group]["enrolled"] == enrolled[group], group


async def test_a_reports_planner_settings_hold_in_its_transaction_only(postgres_url: str) -> None:
    """``stats.reading`` sets JIT off, the reports' work_mem and random_page_cost for its
    own transaction (set_config's ``is_local``): the next transaction has the server's."""
    engine = create_engine(postgres_url)
    names = ("jit", "work_mem", "random_page_cost")
    try:
        async with engine.connect() as conn:
            defaults = [(await conn.exec_driver_sql(f"SHOW {n}")).scalar() for n in names]
        async with stats.reading(engine) as conn:
            inside = [(await conn.exec_driver_sql(f"SHOW {n}")).scalar() for n in names]
        async with engine.connect() as conn:
            after = [(await conn.exec_driver_sql(f"SHOW {n}")).scalar() for n in names]
    finally:
        await engine.dispose()
    assert inside == ["off", stats.REPORT_WORK_MEM, str(stats.REPORT_RANDOM_PAGE_COST)]
    assert after == defaults != inside
