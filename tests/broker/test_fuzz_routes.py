"""Every HTTP route the app mounts, called with random path segments, query parameters and
bodies, signed in as each role or not at all: no answer is a 5xx, and nothing logs an
error. The inputs come from a seeded generator (the seed is in the test's id)."""

from __future__ import annotations

import collections
import logging
import random
from typing import Any

import aiohttp
import pytest

from broker import tokens
from tests.broker.harness import SECRET, Server, staff, student, tutor

ROUNDS = 30  # requests per route per seed
PARAMS = [
    "from", "to", "date", "day", "school", "offer", "vendor", "language", "limit", "page", "q",
    "tz", "week", "subject", "grade", "status", "format", "lang", "locale", "days", "hours",
    "cursor", "after", "before", "kind", "scope", "id", "student", "tutor", "group", "sort",
    "start", "end", "state", "id_token", "iss", "login_hint", "target_link_uri",
]
VALUES: list[Any] = [
    "", "0", "-1", "1", "999999999999999999999", "2026-02-30", "2026-12-06", "9999-12-31",
    "0001-01-01", "2026-12-06T25:00", "abc", "a\x00b", "😀", "x" * 3000, "NaN", "inf", "1e309",
    "../../etc/passwd", "hs", "math", "en", "csv", "json", "America/Los_Angeles", "Mars/Base",
    "district", "school", "1.5", "true",
]
SEGMENTS = ["x", "0" * 32, "%2e%2e", "😀", "a" * 300, "st1", "hs", "1", "-1", "%00", "en"]
BODIES = [b"", b"\xff", b"a=b&c=d", b"id_token=x&state=y", b"{}", b"[]", b"null"]


def fill(path: str, rng: random.Random) -> str:
    """``path`` with each ``{name}`` replaced by a random segment."""
    while "{" in path:
        start = path.index("{")
        path = path[:start] + rng.choice(SEGMENTS) + path[path.index("}", start) + 1:]
    return path


@pytest.mark.parametrize("seed", [1])
async def test_random_requests_on_every_route_never_get_a_5xx(
    server: Server, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    rng = random.Random(seed)
    caplog.set_level(logging.INFO)
    assert server.test_server is not None
    routes = sorted({
        (r.method, info.get("path") or info.get("formatter") or info.get("prefix"))
        for r in server.test_server.app.router.routes()
        if r.method not in ("HEAD", "*") and (info := r.resource.get_info() if r.resource else {})
    })
    assert len(routes) > 60, routes
    bearer = {
        "staff": tokens.issue(SECRET, staff()),
        "tutor": tokens.issue(SECRET, tutor("t-routes", "paper", ["en"])),
        "student": tokens.issue(SECRET, student("s-routes", "elem", 3)),
    }
    statuses: collections.Counter[int] = collections.Counter()
    async with aiohttp.ClientSession() as http:
        for method, path in routes:
            if path.startswith("/socket.io"):
                continue
            for _ in range(ROUNDS):
                who = rng.choice([*bearer, None])
                kw: dict[str, Any] = {
                    "params": {rng.choice(PARAMS): rng.choice(VALUES)
                               for _ in range(rng.randrange(4))},
                    "headers": {"Authorization": f"Bearer {bearer[who]}"} if who else {},
                }
                if method != "GET":
                    if rng.random() < 0.5:
                        kw["json"] = {rng.choice(PARAMS): rng.choice([*VALUES, None, 1, [], {}])
                                      for _ in range(rng.randrange(5))}
                    else:
                        kw["data"] = rng.choice(BODIES)
                url = server.url + fill(path, rng)
                async with http.request(method, url, allow_redirects=False, **kw) as resp:
                    body = await resp.read()
                    statuses[resp.status] += 1
                    assert resp.status < 500, (method, url[:200], kw, resp.status, body[:300])
    # the calls reached past sign-in, not only refusals
    assert statuses[200] > 100 and statuses[400] > 100, statuses
    broken = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not broken, [r.getMessage() for r in broken]
