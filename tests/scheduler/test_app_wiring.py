"""The scheduler's routes in the real application, behind the real sign-in (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from broker.accounts import Accounts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.settings import Settings
from tests.accounts.conftest import PASSWORD, AuthServer
from tests.broker.district import prepare_database
from tests.broker.harness import SECRET
from tests.scheduler.conftest import OFFER


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[AuthServer]:
    await prepare_database(sqlite_url)
    engine = create_engine(sqlite_url)
    accounts = Accounts(engine, load_catalog())
    await accounts.add("district.staff", PASSWORD, role="staff", scope="district")
    await accounts.add("hs.staff", PASSWORD, role="staff", scope="school", scope_id="hs")
    await accounts.add("a.tutor", PASSWORD, role="tutor", vendor="paper", languages=["en"])
    await engine.dispose()
    settings = Settings(database_url=sqlite_url, secret_key=SECRET, pseudonym_secret=SECRET)
    srv = await AuthServer(settings).start()
    yield srv
    await srv.stop()


async def _sign_in(http: aiohttp.ClientSession, username: str) -> None:
    resp = await http.post("/api/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()


async def test_signed_in_staff_and_tutors_reach_the_scheduler(server: AuthServer) -> None:
    async with server.http() as http:
        resp = await http.get("/api/scheduler/offers")
        assert resp.status == 401 and (await resp.json())["code"] == "unauthenticated"
        await _sign_in(http, "district.staff")
        resp = await http.post("/api/scheduler/offers", json=OFFER)
        assert resp.status == 201, await resp.text()
    async with server.http() as http:
        await _sign_in(http, "hs.staff")
        resp = await http.post("/api/scheduler/offers", json=OFFER)
        assert resp.status == 403
        resp = await http.get("/api/scheduler/offers")
        assert resp.status == 200 and len((await resp.json())["offers"]) == 1
    async with server.http() as http:
        await _sign_in(http, "a.tutor")
        resp = await http.get("/api/scheduler/me/upcoming")
        assert resp.status == 200 and (await resp.json())["occurrences"] == []
        resp = await http.get("/api/scheduler/offers")
        assert resp.status == 403
        resp = await http.get("/feeds/" + "x" * 43 + ".ics")
        assert resp.status == 404
