"""Random bodies on every scheduler route that takes one: each answer is below 500, and a
refusal is a problem body with a string ``code``; nothing logs an error.

The bodies come from a seeded generator (the seed is in the test's id, so a failure
repeats): each route's valid body with one to three fields replaced by random JSON, dropped
or added, plain random JSON, and bytes that are not JSON. The world behind them is real
(an offer, bells, a tutor, a group, a booked series, a parent link), so the deeper checks
run too, on both databases.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from tests.scheduler.conftest import BELLS, OFFER
from tests.scheduler.test_api import (  # noqa: F401  (client is a fixture)
    DESIGNEE,
    DISTRICT,
    SERIES,
    Client,
    call,
    client,
    prepare,
)

ROUNDS = 25  # bodies per route per seed
FIELDS = [
    "programme", "vendor", "subjects", "low_grade", "high_grade", "languages", "group_limit",
    "session_minutes", "min_sessions_per_week", "term_start", "term_end", "timezone",
    "bells", "after_school_end", "days", "weekly", "students", "student", "offer", "school",
    "subject", "language", "grade_band", "tutor", "group", "rrule", "first_day", "start",
    "minutes", "scope", "reason", "owner_kind", "owner", "token", "weekdays", "from",
    "marks", "date", "day", "kind", "label", "dismissal", "minimum_dismissal",
]
STRINGS = [
    "", " ", "math", "en", "hs", "st1", "t1", "tutorco", "mon", "15:30", "25:00", "2026-10-26",
    "2026-02-30", "America/Los_Angeles", "Mars/Olympus", "FREQ=WEEKLY;BYDAY=MO;COUNT=3",
    "FREQ=SECONDLY;COUNT=999999999", "a\x00b", "😀" * 40, "x" * 3000, "../../etc/passwd",
    "'; drop table offers; --", "١٢", "9-10", "school_based", "home_based", "one", "all",
]
NUMBERS: list[Any] = [0, 1, -1, 3, 12, 30, 10**6, 2**63, 10**30, 0.5, -0.0, 1e308]


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return rng.choice([None, True, False, *NUMBERS])
    if kind in (1, 2):
        return rng.choice(STRINGS)
    if kind == 3:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 4:
        return [{rng.choice(FIELDS): value(rng, depth + 2) for _ in range(2)}]
    return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def routes(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that takes a body, with a body it accepts."""
    p, offer, group = "/api/scheduler", ids["offer"], ids["group"]
    occ = ids["occurrences"]
    return [
        ("POST", f"{p}/offers", {
            "programme": "school_based", "vendor": "tutorco", "subjects": ["math"],
            "low_grade": 6, "high_grade": 12, "languages": ["en"], "group_limit": 4,
            "session_minutes": 30, "min_sessions_per_week": 3, "term_start": "2026-09-01",
            "term_end": "2027-06-10"}),
        ("PUT", f"{p}/schools/hs/bells", BELLS),
        ("POST", f"{p}/schools/hs/calendar",
         {"days": [{"date": "2026-11-26", "kind": "holiday", "label": "Thanksgiving"}]}),
        ("PUT", f"{p}/tutors/t1",
         {"vendor": "tutorco", "languages": ["en"], "timezone": "America/Los_Angeles"}),
        ("PUT", f"{p}/tutors/t1/availability",
         {"weekly": [{"weekday": "mon", "start": "15:00", "end": "18:00"}]}),
        ("POST", f"{p}/offers/{offer}/enrolments",
         {"students": [{"student": "st3", "language": "en"}]}),
        ("POST", f"{p}/groups", {
            "offer": offer, "school": "hs", "subject": "math", "language": "en",
            "grade_band": "9-10", "tutor": "t1", "students": ["st1"]}),
        ("POST", f"{p}/groups/{group}/members", {"student": "st3"}),
        ("POST", f"{p}/series",
         {"group": group, **SERIES, "start": "16:30", "skip_holidays": True}),
        ("POST", f"{p}/occurrences/{occ[0]}/cancel", {"scope": "one", "reason": "assembly"}),
        ("POST", f"{p}/occurrences/{occ[1]}/reschedule",
         {"scope": "one", "day": "2026-11-06", "start": "15:30", "reason": "trip"}),
        ("POST", f"{p}/occurrences/{occ[2]}/substitute",
         {"scope": "one", "tutor": "t2", "reason": "ill"}),
        ("POST", f"{p}/occurrences/{occ[3]}/attendance", {"marks": {"st1": "present"}}),
        ("POST", f"{p}/parent-links", {"student": "st1", "offer": ids["home"], "language": "es"}),
        ("POST", f"{p}/feeds", {"owner_kind": "student", "owner": "st1"}),
        ("POST", f"{p}/feeds/revoke", {"token": ids["feed"]}),
        ("POST", f"{p}/groups/{group}/members/st2/remove", {"reason": "moved"}),
        ("POST", f"{p}/offers/{offer}/enrolments/st2/withdraw", {"reason": "moved"}),
        ("POST", f"/api/parent/{ids['token']}/book",
         {"tutor": "t1", "start": "16:00", "weekdays": ["mon"], "subject": "math"}),
        ("POST", f"/api/parent/{ids['token']}/withdraw", {"reason": "moved"}),
    ]


def body(rng: random.Random, valid: dict[str, Any]) -> Any:
    if rng.random() < 0.15:
        return value(rng)
    out = dict(valid)
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice([*out, *FIELDS])
        if key in out and rng.random() < 0.25:
            del out[key]
        else:
            out[key] = value(rng)
    return out


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_bodies_on_every_route_are_answered_with_a_problem(
    client: Client, caplog: pytest.LogCaptureFixture, seed: int  # noqa: F811
) -> None:
    rng = random.Random(seed)
    ids = await prepare(client)
    status, booked = await call(client, "POST", "/api/scheduler/series", DESIGNEE,
                                {"group": ids["group"], **SERIES, "start": "15:30"})
    assert status == 201, booked
    status, week = await call(
        client, "GET", "/api/scheduler/schools/hs/week?date=2026-11-02", DESIGNEE)
    ids["occurrences"] = [o["id"] for o in week["occurrences"]] * 2
    status, _ = await call(client, "PUT", "/api/scheduler/tutors/t2", DISTRICT, {
        "vendor": "tutorco", "languages": ["en"], "timezone": "America/Los_Angeles"})
    assert status == 200
    status, feed = await call(client, "POST", "/api/scheduler/feeds", DESIGNEE,
                              {"owner_kind": "student", "owner": "st2"})
    ids["feed"] = feed["token"]
    status, home = await call(client, "POST", "/api/scheduler/offers", DISTRICT, {
        **OFFER, "programme": "home_based", "group_limit": 1, "min_sessions_per_week": 1})
    assert status == 201, home
    status, link = await call(client, "POST", "/api/scheduler/parent-links", DESIGNEE,
                              {"student": "st1", "offer": home["id"], "language": "en"})
    assert status == 201, link
    ids["token"], ids["home"] = link["token"], home["id"]
    for method, path, valid in routes(ids):
        for _ in range(ROUNDS):
            who = rng.choice([DISTRICT, DESIGNEE])
            if rng.random() < 0.05:
                resp = await client.request(method, path, data=b"\xff{not json", headers=who)
                sent: Any = "bytes"
            else:
                sent = body(rng, valid)
                resp = await client.request(method, path, json=sent, headers=who)
            where = (method, path, repr(sent)[:300])
            assert resp.status < 500, (where, resp.status, await resp.text())
            if resp.status >= 400:
                assert resp.content_type == "application/problem+json", where
                problem = await resp.json()
                assert isinstance(problem.get("code"), str) and problem["code"], where
    broken = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not broken, [r.getMessage() for r in broken]
