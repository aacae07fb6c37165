"""Vendors' shift plans (issue 15): parsing, daylight-saving weeks, who may publish, the
store and the CLI import. The store tests run on SQLite and PostgreSQL.

The district is America/Los_Angeles: clocks go forward on Sunday 2024-03-10 at 02:00 (PST
UTC-8 to PDT UTC-7) and back on Sunday 2024-11-03 at 02:00 (PDT to PST).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit
from broker.capacity import shifts
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity, Scope, staff_identity
from broker.migrate import migrate
from broker.settings import Settings

CATALOG = load_catalog()
LA = CATALOG.timezone
UTC = dt.UTC
DISTRICT = staff_identity("d1", Scope.district(), source="test")
PAPER = staff_identity("vm-paper", Scope("vendor", "paper"), source="test")
TUTORCOM = staff_identity("vm-tc", Scope("vendor", "tutorcom"), source="test")
SCHOOL = staff_identity("s1", Scope("school", "hs"), source="test")
ALL_DAY = [{"day": d, "start": "00:00", "end": "24:00", "headcount": 1} for d in shifts.DAYS]


def u(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(Settings(database_url=database_url))
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"weekly": [{"day": "mon", "start": "16:15", "end": "18:00", "headcount": 1}]}, "start"),
        ({"weekly": [{"day": "mon", "start": "16:00", "end": "24:30", "headcount": 1}]}, "end"),
        ({"weekly": [{"day": "mon", "start": "18:00", "end": "16:00", "headcount": 1}]}, "end"),
        ({"weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": -1}]},
         "headcount"),
        ({"weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": True}]},
         "headcount"),
        ({"weekly": [{"day": "monkey", "start": "16:00", "end": "18:00", "headcount": 1}]}, "day"),
        ({"weekly": [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": 1},
                     {"day": "mon", "start": "17:30", "end": "19:00", "headcount": 2}]}, "weekly"),
        ({"exceptions": [{"date": "2024-03-10", "start": "02:00", "end": "04:00",
                          "headcount": 1}]}, "start"),  # 02:00 does not happen that day
        ({"exceptions": [{"date": "2024-02-30", "start": "02:00", "end": "04:00",
                          "headcount": 1}]}, "date"),
        ({"exceptions": [{"date": "2024-05-01", "start": "10:00", "end": "12:00", "headcount": 0},
                         {"date": "2024-05-01", "start": "11:30", "end": "13:00",
                          "headcount": 2}]}, "exceptions"),
        ({"weekly": [], "holidays": []}, "holidays"),
        ([], "plan"),
    ],
)
def test_bad_plans_are_refused_naming_the_field(plan: Any, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        shifts.parse_plan(plan, LA)
    assert caught.value.detail["field"] == field


def test_pattern_round_trips_as_ranges() -> None:
    entered = [{"day": "mon", "start": "16:00", "end": "18:00", "headcount": 3},
               {"day": "mon", "start": "18:00", "end": "21:30", "headcount": 5},
               {"day": "sun", "start": "23:30", "end": "24:00", "headcount": 1}]
    plan = shifts.parse_plan({"weekly": entered}, LA)
    assert plan.weekly[0][32:37] == [3, 3, 3, 3, 5] and plan.weekly[6][47] == 1
    assert shifts.weekly_ranges(plan.weekly) == entered
    same = [dict(entered[0], day="Monday"), dict(entered[1], day=0), entered[2]]
    assert shifts.parse_plan({"weekly": same}, LA).weekly == plan.weekly


def test_spring_forward_week_has_23_hours_on_sunday() -> None:
    plan = shifts.parse_plan({"weekly": [
        *ALL_DAY[:6],
        {"day": "sun", "start": "00:00", "end": "02:00", "headcount": 1},
        {"day": "sun", "start": "02:00", "end": "03:00", "headcount": 7},  # never happens
        {"day": "sun", "start": "03:00", "end": "24:00", "headcount": 1},
        ]}, LA)
    start, end = shifts.week_bounds(dt.date(2024, 3, 6), LA)
    assert (start, end) == (u("2024-03-04 08:00"), u("2024-03-11 07:00"))
    instants = shifts.half_hours(start, end)
    counts = shifts.expand(plan, LA, instants)
    assert len(instants) == 7 * 48 - 2 and sum(counts) == 7 * 48 - 2 and 7 not in counts
    # Monday 16:00 local is 00:00 UTC in winter, 23:00 UTC after the change
    later = shifts.week_bounds(dt.date(2024, 3, 11), LA)[0]
    assert later == u("2024-03-11 07:00")


def test_fall_back_week_has_25_hours_on_sunday() -> None:
    plan = shifts.parse_plan({"weekly": [
        {"day": "sun", "start": "01:00", "end": "02:00", "headcount": 5},
        {"day": "mon", "start": "16:00", "end": "16:30", "headcount": 2},
    ]}, LA)
    start, end = shifts.week_bounds(dt.date(2024, 11, 3), LA)
    assert (start, end) == (u("2024-10-28 07:00"), u("2024-11-04 08:00"))
    instants = shifts.half_hours(start, end)
    counts = shifts.expand(plan, LA, instants)
    assert len(instants) == 7 * 48 + 2
    fives = [at for at, n in zip(instants, counts, strict=True) if n == 5]
    # 01:00 and 01:30 happen twice: PDT (08:00, 08:30 UTC) then PST (09:00, 09:30 UTC)
    assert fives == [u("2024-11-03 08:00"), u("2024-11-03 08:30"),
                     u("2024-11-03 09:00"), u("2024-11-03 09:30")]
    assert [at for at, n in zip(instants, counts, strict=True) if n == 2] == [
        u("2024-10-28 23:00")]  # Monday 16:00 PDT
    after = shifts.half_hours(*shifts.week_bounds(dt.date(2024, 11, 4), LA))
    assert [at for at in after if plan.headcount_at(at, LA) == 2] == [u("2024-11-05 00:00")]


def test_exceptions_are_local_ranges_stored_as_utc() -> None:
    plan = shifts.parse_plan({"weekly": ALL_DAY, "exceptions": [
        # an ambiguous start is its first occurrence: 01:00 PDT to 03:00 PST is 3 hours
        {"date": "2024-11-03", "start": "01:00", "end": "03:00", "headcount": 4},
        {"date": "2024-03-10", "start": "00:00", "end": "24:00", "headcount": 0, "note": "off"},
    ]}, LA)
    assert [(e.start, e.end) for e in plan.exceptions] == [
        (u("2024-03-10 08:00"), u("2024-03-11 07:00")),
        (u("2024-11-03 08:00"), u("2024-11-03 11:00")),
    ]
    shown = shifts.render_plan(plan, LA)["exceptions"]
    assert [(x["date"], x["start"], x["end"], x["headcount"]) for x in shown] == [
        ("2024-03-10", "00:00", "24:00", 0), ("2024-11-03", "01:00", "03:00", 4)]
    week = shifts.half_hours(*shifts.week_bounds(dt.date(2024, 3, 10), LA))
    assert sum(shifts.expand(plan, LA, week)) == 6 * 48  # the Sunday is off


# -- store: who may, one transaction with its audit entry ------------------------------------------
async def _publish(engine: AsyncEngine, who: Identity, vendor: str, language: str,
                   plan: dict[str, Any]) -> None:
    await shifts.replace_plans(engine, who, CATALOG,
                               {(vendor, language): shifts.parse_plan(plan, LA)}, "test")


async def test_vendor_manager_publishes_and_reads_only_their_own(engine: AsyncEngine) -> None:
    entered = {"weekly": [{"day": "tue", "start": "15:00", "end": "19:00", "headcount": 2}],
               "exceptions": [{"date": "2024-11-28", "start": "00:00", "end": "24:00",
                               "headcount": 0, "note": "Thanksgiving"}]}
    await _publish(engine, PAPER, "paper", "es", entered)
    mine = await shifts.read_plan(engine, PAPER, CATALOG, "paper", "es")
    assert mine["published"] and mine["updated_by"] == "vm-paper"
    assert mine["weekly"] == entered["weekly"]
    assert mine["exceptions"][0]["starts_at"] == "2024-11-28T08:00:00+00:00"
    assert (await shifts.read_plan(engine, DISTRICT, CATALOG, "paper", "es")) == mine
    for who, vendor in ((TUTORCOM, "paper"), (SCHOOL, "paper"), (PAPER, "tutorcom")):
        with pytest.raises(NotAllowed):
            await _publish(engine, who, vendor, "es", {"weekly": ALL_DAY})
        with pytest.raises(NotAllowed):
            await shifts.read_plan(engine, who, CATALOG, vendor, "es")
    with pytest.raises(NotFound):
        await _publish(engine, PAPER, "paper", "ko", {})  # Paper.co has no Korean queue
    with pytest.raises(NotFound):
        await _publish(engine, DISTRICT, "booknook", "en", {})  # not an on-demand vendor
    listed = await shifts.list_plans(engine, PAPER, CATALOG)
    assert [(p["language"], p["published"], p["weekly_tutor_hours"]) for p in listed] == [
        ("en", False, 0), ("es", True, 8.0), ("zh", False, 0), ("fr", False, 0)]
    assert {p["vendor"] for p in await shifts.list_plans(engine, DISTRICT, CATALOG)} == {
        "paper", "tutorcom"}
    (pattern,) = (await shifts.weekly_headcounts(engine, PAPER, CATALOG)).values()
    assert len(pattern) == 336 and pattern[48 + 30:48 + 38] == [2] * 8 and sum(pattern) == 16
    await _publish(engine, DISTRICT, "paper", "es", {"weekly": ALL_DAY[:1]})  # replaces all
    again = await shifts.read_plan(engine, PAPER, CATALOG, "paper", "es")
    assert again["exceptions"] == [] and len(again["weekly"]) == 1
    log = [e for e in await audit.entries(engine) if e["action"] == "capacity.plan_replace"]
    assert [(e["actor"], e["detail"]) for e in log] == [
        ("vm-paper", "queue=paper:es slots=8 exceptions=1"),
        ("d1", "queue=paper:es slots=48 exceptions=0"),
    ]


def test_import_csv_names_the_bad_line() -> None:
    text = ("vendor,language,day,date,start,end,headcount,note\n"
            "paper,en,mon,,16:00,20:00,3,\n"
            "paper,en,,2024-12-25,00:00,24:00,0,holiday\n"
            "tutorcom,es,fri,,16:00,16:45,2,\n")
    with pytest.raises(InvalidPayload) as caught:
        shifts.parse_import(text, "csv", LA, CATALOG)
    assert caught.value.detail["line"] == 4 and caught.value.detail["queue"] == "tutorcom:es"
    plans = shifts.parse_import(text.replace("16:45", "16:30"), "csv", LA, CATALOG)
    assert sorted(plans) == [("paper", "en"), ("tutorcom", "es")]
    assert plans[("paper", "en")].exceptions[0].start == u("2024-12-25 08:00")


async def test_cli_import_is_all_or_nothing(database_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from web.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    good = tmp_path / "plans.json"
    good.write_text('{"plans": [{"vendor": "tutorcom", "language": "en", "weekly": '
                    '[{"day": "wed", "start": "16:00", "end": "22:00", "headcount": 4}]}]}')
    bad = tmp_path / "bad.json"
    bad.write_text('{"plans": [{"vendor": "tutorcom", "language": "es", "weekly": []}, '
                   '{"vendor": "nobody", "language": "en"}]}')
    import asyncio

    assert await asyncio.to_thread(main, ["import-shifts", str(bad)]) == 2
    assert await asyncio.to_thread(main, ["import-shifts", str(good)]) == 0
    eng = create_engine(database_url)
    try:
        listed = await shifts.list_plans(eng, DISTRICT, CATALOG, "tutorcom")
        assert [(p["language"], p["published"]) for p in listed] == [("en", True), ("es", False)]
        assert listed[0]["weekly_tutor_hours"] == 24.0
    finally:
        await eng.dispose()
