"""Hours of the week on a zone's wall clock, counted by PostgreSQL from the zone's
transitions (broker/stats_local_time.py), equal Python's ``astimezone`` for instants on
both sides of every change: daylight saving in Los Angeles and Adelaide (+9:30/+10:30),
Lord Howe's half-hour change, India's half-hour offset, and UTC."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from broker.db.engine import create_engine
from broker.stats_local_time import hour_of_week_counts, offsets, unit_seconds

ZONES = ["America/Los_Angeles", "Australia/Adelaide", "Australia/Lord_Howe",
         "Asia/Kolkata", "UTC"]
meta = sa.MetaData()
instants = sa.Table("instants", meta, sa.Column("at", sa.DateTime(timezone=True)))


def _around_transitions(tz: ZoneInfo, rng: random.Random) -> list[dt.datetime]:
    """Instants a second, a minute and up to two hours either side of each transition
    from 2019 to 2026, and random ones in between."""
    moments: list[dt.datetime] = []
    for at in offsets(tz)[0]:
        if 2019 <= at.year <= 2026:
            for seconds in (1, 60, 1799, 1800, 1801, 3599, 3600, 3601, 7199):
                moments += [at - dt.timedelta(seconds=seconds), at + dt.timedelta(seconds=seconds)]
            moments.append(at)
    start = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    moments += [start + dt.timedelta(seconds=rng.randrange(8 * 365 * 86400)) for _ in range(500)]
    return moments


def test_transitions_and_units_are_the_zones() -> None:
    la = ZoneInfo("America/Los_Angeles")
    changes, in_force = offsets(la)
    assert dt.datetime(2024, 3, 10, 10, tzinfo=dt.UTC) in changes  # 02:00 PST
    assert dt.datetime(2024, 11, 3, 9, tzinfo=dt.UTC) in changes  # 02:00 PDT
    assert set(in_force) == {-8 * 3600, -7 * 3600}
    assert unit_seconds(la) == 3600
    assert unit_seconds(ZoneInfo("Asia/Kolkata")) == 1800
    assert unit_seconds(ZoneInfo("Australia/Lord_Howe")) == 1800
    assert offsets(ZoneInfo("UTC")) == ((), (0,))


@pytest.mark.parametrize("zone", ZONES)
async def test_postgresql_counts_each_instant_in_its_local_hour_of_the_week(
    postgres_url: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    moments = _around_transitions(tz, random.Random(zone))
    expected: Counter[int] = Counter()
    for at in moments:
        local = at.astimezone(tz)
        expected[local.weekday() * 24 + local.hour] += 1
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(instants.insert(), [{"at": at} for at in moments])
            rows = await conn.execute(
                hour_of_week_counts(instants.c.at, tz, instants, [instants.c.at.is_not(None)])
            )
            got = Counter({int(how): int(n) for how, n in rows})
    finally:
        await engine.dispose()
    assert got == expected
