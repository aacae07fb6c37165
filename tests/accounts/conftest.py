"""Fixtures for accounts, sign-in, audit, retention and the authorisation table.

The HTTP and socket.io tests run one broker process on the embedded stack (SQLite file,
in-process queue): authorisation is decided in the handlers, the same code on either stack.
Storage tests (audit append-only, purge, unique usernames) run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.accounts import Account, Accounts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.settings import Settings
from tests.broker.conftest import clients, prepare_database
from tests.broker.harness import SECRET, Server
from web.app import init_app

__all__ = ["clients"]  # the socket.io clients fixture, shared with tests/broker

PASSWORD = "correct horse battery"
UTC = dt.UTC


class AuthServer(Server):
    """A broker process with the sign-in and staff routes mounted, as ``make run`` will."""

    async def start(self) -> AuthServer:
        app = init_app(self.settings)  # mounts sign-in and the staff API, as `serve` does
        self.test_server = TestServer(app, host="127.0.0.1")
        await self.test_server.start_server()
        return self

    def http(self) -> aiohttp.ClientSession:
        """A browser-like client: keeps cookies (also for the 127.0.0.1 host)."""
        return aiohttp.ClientSession(
            base_url=self.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )


@pytest.fixture
async def migrated(database_url: str) -> str:
    """A migrated database (SQLite and PostgreSQL) with the test schools."""
    await prepare_database(database_url)
    return database_url


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> str:
    await prepare_database(sqlite_url)
    return sqlite_url


@pytest.fixture
async def engine_of() -> AsyncIterator[Any]:
    engines: list[AsyncEngine] = []

    def make(url: str) -> AsyncEngine:
        engine = create_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def accounts(sqlite_db: str, engine_of: Any) -> Accounts:
    return Accounts(engine_of(sqlite_db), load_catalog())


@pytest.fixture
def settings(sqlite_db: str) -> Settings:
    return Settings(database_url=sqlite_db, secret_key=SECRET, pseudonym_secret=SECRET,
                    grace_seconds=60.0)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[AuthServer]:
    srv = await AuthServer(settings).start()
    yield srv
    await srv.stop()


async def make_people(accounts: Accounts) -> dict[str, Account]:
    """One account per staff/tutor row of the authorisation table."""
    return {
        "paper_tutor": await accounts.add("paper.tutor", PASSWORD, role="tutor",
                                          display_name="Ms. Paper", vendor="paper",
                                          languages=["en", "es"]),
        "tutorcom_tutor": await accounts.add("tc.tutor", PASSWORD, role="tutor",
                                             vendor="tutorcom", languages=["en"]),
        "district": await accounts.add("district.staff", PASSWORD, role="staff",
                                       scope="district"),
        "school": await accounts.add("elem.staff", PASSWORD, role="staff", scope="school",
                                     scope_id="elem"),
        "vendor_manager": await accounts.add("paper.manager", PASSWORD, role="staff",
                                             scope="vendor", scope_id="paper"),
    }


async def seed_history(url: str, student: str, school_id: str, *, days_ago: float = 1,
                       request_id: str | None = None, messages: int = 0,
                       status: str = "ended", ended: bool = True) -> tuple[str, str]:
    """A closed request with its session (and ``messages`` stored messages) ``days_ago``."""
    when = dt.datetime.now(UTC) - dt.timedelta(days=days_ago)
    rid = request_id or f"r{abs(hash((student, school_id, days_ago))) % 10**9}"
    sid = "s" + rid[1:]
    engine = create_engine(url)
    t = metadata.tables
    try:
        async with engine.begin() as conn:
            await conn.execute(t["help_requests"].insert().values(
                id=rid, student=student, school_id=school_id, school_kind="elementary", grade=3,
                language="en", subject="math", vendor="paper", queue="paper:en",
                status=status, requested_at=when, queued_at=when, accepted_at=when,
                closed_at=when if ended else None, first_accepted_at=when, session_count=1,
            ))
            await conn.execute(t["tutoring_sessions"].insert().values(
                id=sid, request_id=rid, student=student, vendor="paper", tutor_id="t-x",
                language="en", subject="math", school_id=school_id, school_kind="elementary",
                grade=3, queued_at=when, accepted_at=when,
                ended_at=when + dt.timedelta(minutes=20) if ended else None,
                end_reason="tutor" if ended else None,
            ))
            for i in range(messages):
                await conn.execute(t["chat_messages"].insert().values(
                    id=f"m{i}{sid}"[:32], session_id=sid, sender="student", text=f"msg {i}",
                    at=when + dt.timedelta(minutes=i),
                ))
    finally:
        await engine.dispose()
    return rid, sid


async def count(url: str, table: str, **where: Any) -> int:
    engine = create_engine(url)
    t = metadata.tables[table]
    try:
        async with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(t)
            for k, v in where.items():
                query = query.where(t.c[k] == v)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()
