"""The broker's own HTTP endpoints: the catalog a student's widget reads, and the staff
statistics reached with the dashboard's bearer token."""

from __future__ import annotations

import aiohttp

from broker import tokens
from tests.broker.harness import SECRET, Server, staff, student, tutor


async def _get(server: Server, path: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(server.url + path, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_catalog_lists_only_languages_a_vendor_serves_for_the_student(server: Server) -> None:
    status, anyone = await _get(server, "/api/catalog")
    assert status == 200
    assert {"id": "math", "label": "Math"} in anyone["subjects"]
    assert set(anyone["languages_for_student"]) == {"en", "es", "zh", "fr"}
    _, teen = await _get(server, "/api/catalog", tokens.issue(SECRET, student("s-t", "hs", 10)))
    assert sorted(teen["languages_for_student"]) == ["en", "es"]  # Tutor.com: English, Spanish
    _, kid = await _get(server, "/api/catalog", tokens.issue(SECRET, student("s-k", "k8", 7)))
    assert set(kid["languages_for_student"]) == {"en", "es", "zh", "fr"}  # Paper.co at a K-8
    status, body = await _get(server, "/api/catalog", "not-a-token")
    assert status == 401 and body["code"] == "unauthenticated"
    status, body = await _get(
        server, "/api/catalog", tokens.issue(SECRET, tutor("t", "paper", ["en"]))
    )
    assert status == 401


async def test_stats_accept_the_dashboards_bearer_token(server: Server, clients: list) -> None:
    kid = await server.connect("/student", student("s-st", "elem", 3))
    clients.append(kid)
    await kid.call("help:request", {"subject": "math", "language": "zh"})
    status, body = await _get(server, "/api/stats/summary", tokens.issue(SECRET, staff()))
    assert status == 200, body
    assert (body["requests"], body["waiting_now"], body["unmet"]) == (1, 1, 0)
    status, body = await _get(server, "/api/stats/summary")
    assert status == 401 and body["code"] == "unauthenticated"
    status, body = await _get(
        server, "/api/stats/summary", tokens.issue(SECRET, student("s-st", "elem", 3))
    )
    assert status == 403
