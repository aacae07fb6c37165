"""The scheduler suite's fixtures: a migrated database (SQLite and PostgreSQL) with the
small test district, a few students and staff, a fake clock, and a set-up helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.identity import Scope, staff_identity
from broker.scheduler import enrolment, setup
from broker.scheduler.service import Scheduler
from tests.broker.district import prepare_database

SECRET = "s" * 32
DISTRICT = staff_identity("dist-1", Scope.district(), source="account")
DESIGNEE = staff_identity("des-hs", Scope("school", "hs"), source="account")
OTHER_DESIGNEE = staff_identity("des-ms", Scope("school", "ms"), source="account")
VENDOR = staff_identity("vm-1", Scope("vendor", "tutorco"), source="account")

# id, school, grade
STUDENTS = [
    ("st1", "hs", 9), ("st2", "hs", 9), ("st3", "hs", 10), ("st4", "hs", 10),
    ("st5", "hs", 9), ("st6", "ms", 7), ("st7", "hs", 12),
]


def forged(signed: str) -> str:
    """``signed`` (a token, or its signature) with its last two characters replaced by two
    it does not end in: a tampered signature that can never be the real one."""
    return signed[:-2] + ("BB" if signed.endswith("AA") else "AA")


class FakeClock:
    """A settable clock; never the wall clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url)
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.execute(metadata.tables["students"].insert(), [
            {"sourced_id": s, "sis_id": f"sis-{s}", "school_id": school, "grade": grade,
             "groups": "", "given_name": f"Name{s}", "family_name": ""}
            for s, school, grade in STUDENTS
        ])
        await conn.execute(metadata.tables["users"].insert(), [
            {"id": uid, "username": uid, "display_name": uid, "role": "staff",
             "vendor_id": None, "languages": "", "scope": scope, "scope_id": sid,
             "password_hash": "x", "disabled": False,
             "created_at": datetime(2026, 1, 1, tzinfo=UTC)}
            for uid, scope, sid in (("des-hs", "school", "hs"), ("vm-1", "vendor", "tutorco"))
        ])
    yield eng
    await eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 9, 1, 16, 0, tzinfo=UTC))


@pytest.fixture
def ctx(engine: AsyncEngine, clock: FakeClock) -> Scheduler:
    return Scheduler(engine, SECRET, clock=clock)


@dataclass
class World:
    """Ids made by :func:`world`."""

    school_offer: str
    home_offer: str
    group: str


OFFER = {
    "programme": "school_based", "vendor": "tutorco", "subjects": ["math", "ela"],
    "low_grade": 6, "high_grade": 12, "languages": ["en", "es"], "group_limit": 4,
    "session_minutes": 30, "min_sessions_per_week": 3, "term_start": "2026-09-01",
    "term_end": "2027-06-10",
}
HOME_OFFER = {**OFFER, "programme": "home_based", "vendor": "booknook", "group_limit": 1,
              "min_sessions_per_week": 1, "low_grade": 0}
BELLS = {
    "timezone": "America/Los_Angeles", "after_school_end": "18:00",
    "bells": {d: {"dismissal": "15:00", "minimum_dismissal": "12:30"}
              for d in ("mon", "tue", "wed", "thu", "fri")},
}


async def make_tutor(ctx: Scheduler, tutor_id: str, vendor: str = "tutorco",
                     **extra: Any) -> None:
    await setup.set_tutor(ctx, DISTRICT, tutor_id, {
        "vendor": vendor, "languages": ["en", "es"], "timezone": "America/Los_Angeles",
        **extra,
    })


@pytest.fixture
async def world(ctx: Scheduler) -> World:
    """An hs school-based offer with bells, a group of st1, st2 (grade 9, en) with tutor
    t1, and a home-based offer with tutor h1 available weekdays 16:00-19:00."""
    school_offer = (await setup.create_offer(ctx, DISTRICT, OFFER))["id"]
    home_offer = (await setup.create_offer(ctx, DISTRICT, HOME_OFFER))["id"]
    await setup.set_school_schedule(ctx, DISTRICT, "hs", BELLS)
    await setup.set_school_schedule(ctx, DISTRICT, "ms", BELLS)
    await make_tutor(ctx, "t1")
    await make_tutor(ctx, "t2", accommodations=["asl"])
    await make_tutor(ctx, "h1", vendor="booknook")
    await setup.publish_availability(ctx, DISTRICT, "h1", {"weekly": [
        {"weekday": d, "start": "16:00", "end": "19:00"} for d in ("mon", "tue", "wed", "thu")
    ]})
    await enrolment.enrol(ctx, DESIGNEE, school_offer, {"students": [
        {"student": s, "language": "en"} for s in ("st1", "st2", "st3", "st5")
    ] + [{"student": "st4", "language": "en", "accommodations": ["asl"]}]})
    await enrolment.enrol(ctx, DISTRICT, home_offer, {"students": [
        {"student": "st7", "language": "es"}, {"student": "st1", "language": "en"},
    ]})
    group = await enrolment.form_group(ctx, DESIGNEE, {
        "offer": school_offer, "school": "hs", "subject": "math", "language": "en",
        "grade_band": "9-10", "tutor": "t1", "students": ["st1", "st2"],
    })
    return World(school_offer, home_offer, group["id"])
