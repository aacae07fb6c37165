"""Figures of :mod:`broker.stats` on a seeded history with known answers, on both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import stats
from broker.db.models import help_requests
from broker.stats import Filters
from tests.stats.seed import EVIL_SCHOOL, request_row, seed_requeued, t

PT = stats.DISTRICT_TZ
JAN = Filters(
    start=dt.datetime(2024, 1, 8, tzinfo=PT).astimezone(dt.UTC),
    end=dt.datetime(2024, 1, 15, tzinfo=PT).astimezone(dt.UTC),
)


async def test_waits_percentiles_histogram_and_give_ups(engine: AsyncEngine) -> None:
    w = await stats.waits(engine, Filters())
    # Waits 10 20 30 45 60 90 150 400 700 1500 (a3 counts its first acceptance, 30 s).
    assert w["count"] == 10
    assert w["mean_s"] == 300.5
    assert (w["p50_s"], w["p90_s"], w["p95_s"], w["p99_s"]) == (75.0, 780.0, 1140.0, 1428.0)
    assert w["max_s"] == 1500.0
    assert [b["count"] for b in w["histogram"]] == [2, 2, 2, 1, 1, 1, 1]
    assert w["histogram"][1] == {"bucket": "30-60s", "from_s": 30.0, "to_s": 60.0, "count": 2}
    assert w["histogram"][-1]["to_s"] is None
    gave_up = w["gave_up"]
    assert gave_up["total"] == 4
    assert gave_up["abandoned"]["count"] == 1 and gave_up["abandoned"]["mean_s"] == 100.0
    assert gave_up["cancelled"]["count"] == 2 and gave_up["cancelled"]["p50_s"] == 160.0
    assert gave_up["expired"]["max_s"] == 1800.0
    assert w["still_waiting"] == 1


async def test_waits_filtered_by_vendor_language_and_dates(engine: AsyncEngine) -> None:
    paper = await stats.waits(engine, Filters(vendor="paper"))
    assert paper["count"] == 4  # 10 20 150 400
    assert paper["p50_s"] == 85.0
    spanish = await stats.waits(engine, Filters(language="es"))
    assert spanish["count"] == 2 and spanish["mean_s"] == 215.0  # a3 30, a8 400
    assert spanish["gave_up"]["expired"]["count"] == 1
    january = await stats.waits(engine, JAN)
    assert january["count"] == 7  # without a6 (July), a7 and a8 (November)


async def test_service_level(engine: AsyncEngine) -> None:
    sl = await stats.service_level(engine, Filters())
    assert sl["within"] == 5 and sl["accepted"] == 10 and sl["gave_up"] == 4
    assert sl["denominator"] == 14 and sl["share"] == round(5 / 14, 4)
    assert sl["gave_up_within"] == 1 and sl["still_waiting"] == 1
    sl30 = await stats.service_level(engine, Filters(), threshold_s=30)
    assert sl30["within"] == 3 and sl30["share"] == round(3 / 14, 4)
    empty = await stats.service_level(engine, Filters(school_id="nowhere"))
    assert empty["share"] is None and empty["denominator"] == 0


async def test_heatmap_in_local_time_across_daylight_saving(engine: AsyncEngine) -> None:
    h = await stats.heatmap(engine, Filters())
    cells = h["cells"]
    assert h["total"] == 11 and h["timezone"] == "America/Los_Angeles"
    assert cells[0][9] == 2  # Mon 09:00 PST = 17:00 UTC in January
    assert cells[0][10] == 1  # the same 17:00 UTC in July is 10:00 PDT
    assert cells[0][17] == 2  # a requeued request: two sessions
    assert cells[2][14] == 2 and cells[3][21] == 1 and cells[5][10] == 1
    # 2024-11-03: 08:27 UTC is 01:27 PDT, 09:26 UTC is 01:26 PST: the same local cell.
    assert cells[6][1] == 2 and cells[6][0] == 0
    assert h["peak"] == {"day": "Mon", "hour": 9, "sessions": 2}
    assert sum(map(sum, cells)) == 11


async def test_unmet_breakdowns_and_overflow(engine: AsyncEngine) -> None:
    u = await stats.unmet(engine, Filters())
    assert u["total"] == 5
    assert u["by_reason"] == [
        {"key": "language_unsupported", "count": 2},
        {"key": "no_vendor", "count": 1},
        {"key": "school_unknown_grade_ambiguous", "count": 1},
        {"key": "subject_unsupported", "count": 1},
    ]
    assert u["by_language"] == [{"key": "en", "count": 3}, {"key": "zh", "count": 2}]
    assert {item["key"]: item["count"] for item in u["by_grade"]} == {
        10: 1,
        11: 1,
        3: 1,
        7: 1,
        2: 1,
    }
    assert u["by_school"][0] == {"key": "hs", "count": 2, "name": "Test High"}
    names = {item["key"]: item["name"] for item in u["by_school"]}
    assert names["zz-unknown"] is None and names["evil"] == EVIL_SCHOOL
    by_hour = u["by_hour"]
    assert (by_hour[12], by_hour[19], by_hour[8]) == (3, 1, 1) and sum(by_hour) == 5
    ov = u["overflow"]
    assert ov["total"] == 2 and ov["accepted"] == 1
    assert ov["by_first_choice_reason"] == [{"key": "language_unsupported", "count": 2}]
    assert ov["by_language"] == [{"key": "fr", "count": 2}]
    high = await stats.unmet(engine, Filters(school_id="hs"))
    assert high["total"] == 2 and high["overflow"]["total"] == 0
    west = await stats.unmet(engine, Filters(region="West"))
    assert west["total"] == 2 and west["overflow"]["total"] == 2  # k12 is West too


async def test_group_usage_against_enrolment(engine: AsyncEngine) -> None:
    rows = {row["group"]: row for row in (await stats.group_usage(engine, Filters()))["groups"]}
    assert list(rows) == ["All", "SWD", "EL", "RFEP"]
    assert rows["All"] == {
        "group": "All",
        "enrolled": 20,
        "students_using": 6,
        "pct_of_enrolled": 30.0,
        "sessions": 11,
        "sessions_per_student": 1.83,
        "students_requesting": 14,
    }
    assert (rows["SWD"]["enrolled"], rows["SWD"]["students_using"]) == (4, 2)
    assert rows["SWD"]["pct_of_enrolled"] == 50.0 and rows["SWD"]["sessions"] == 4
    assert (rows["EL"]["enrolled"], rows["EL"]["students_using"]) == (5, 2)
    assert rows["EL"]["pct_of_enrolled"] == 40.0 and rows["EL"]["students_requesting"] == 4
    assert (rows["RFEP"]["students_using"], rows["RFEP"]["sessions"]) == (1, 2)
    assert rows["RFEP"]["pct_of_enrolled"] == 50.0


async def test_vendor_capacity(engine: AsyncEngine) -> None:
    v = await stats.vendor_capacity(engine, Filters())
    by = {row["vendor"]: row for row in v["vendors"]}
    assert by["paper"]["sessions"] == 4 and by["paper"]["ended_sessions"] == 4
    assert by["paper"]["tutor_hours"] == 1.33 and by["paper"]["avg_session_min"] == 20.0
    assert by["paper"]["distinct_tutors"] == 2
    assert by["tutor"]["sessions"] == 7 and by["tutor"]["ended_sessions"] == 6
    assert by["tutor"]["tutor_hours"] == 3.03 and by["tutor"]["distinct_tutors"] == 3
    week = await stats.vendor_capacity(engine, JAN)
    assert week["period"]["hours"] == 168.0
    wk = {row["vendor"]: row for row in week["vendors"]}
    assert wk["paper"]["avg_concurrent"] == round(50 / 60 / 168, 3)
    assert wk["tutor"]["avg_concurrent"] == round(152 / 60 / 168, 3)


async def test_summary_and_filters(engine: AsyncEngine) -> None:
    s = await stats.summary(engine, Filters())
    assert s["requests"] == 20 and s["unmet"] == 5 and s["queued"] == 15
    assert s["accepted"] == 10 and s["gave_up"] == 4
    assert s["waiting_now"] == 1 and s["in_session_now"] == 1 and s["overflowed"] == 2
    assert s["sessions"] == 11 and s["unique_students"] == 14 and s["students_served"] == 6
    assert s["sessions_per_student"] == 1.83
    assert s["by_status"]["ended"] == 9 and s["by_status"]["requested"] == 0
    assert (await stats.summary(engine, Filters(school_id="hs")))["requests"] == 8
    assert (await stats.summary(engine, Filters(region="West")))["requests"] == 10
    assert (await stats.summary(engine, Filters(grade=7)))["requests"] == 3
    assert (await stats.summary(engine, JAN))["requests"] == 17
    with_test = await stats.summary(engine, Filters(include_test=True))
    assert with_test["requests"] == 21 and with_test["sessions"] == 12


def test_percentile_definition() -> None:
    assert stats.percentile([], 50) is None
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.histogram([-0.5, 30.0, 1200.0])[0]["count"] == 1


async def test_summary_counts_give_ups_as_waits_and_service_level_do(engine: AsyncEngine) -> None:
    """A request accepted, requeued when its tutor left, then cancelled (or expired) did not
    give up: it was accepted. The summary agrees with ``waits`` and ``service-level``, and
    accepted + gave up + still waiting = queued, whatever the filters."""
    await seed_requeued(engine)
    for f in (Filters(), Filters(vendor="tutor"), Filters(school_id="hs"), JAN):
        s = await stats.summary(engine, f)
        w = await stats.waits(engine, f)
        sl = await stats.service_level(engine, f)
        assert s["gave_up"] == w["gave_up"]["total"] == sl["gave_up"], f
        assert s["accepted"] == w["count"] == sl["accepted"], f
        assert s["still_waiting"] == w["still_waiting"] == sl["still_waiting"], f
        assert s["accepted"] + s["gave_up"] + s["still_waiting"] == s["queued"], f
    s = await stats.summary(engine, Filters())
    assert (s["queued"], s["accepted"], s["gave_up"], s["still_waiting"]) == (18, 13, 4, 1)
    assert s["by_status"]["cancelled"] == 3 and s["by_status"]["expired"] == 2
    assert s["waiting_now"] == 2  # q1, and r3 back in its queue (also accepted)


async def test_unmet_grades_tie_in_grade_order(engine: AsyncEngine) -> None:
    u = await stats.unmet(engine, Filters())
    assert [item["key"] for item in u["by_grade"]] == [2, 3, 7, 10, 11]  # one each
    more = [
        request_row(
            f"u-{grade}", f"s-{grade}", "", None, grade, "en", t("2024-01-11 16:00:00"),
            status="unmet", unmet_reason="grade_unsupported", unmet_detail="no vendor",
        )
        for grade in (-2, -1, 0, 12, None)
    ]
    async with engine.begin() as conn:
        await conn.execute(help_requests.insert(), more)
    u = await stats.unmet(engine, Filters())
    assert [item["key"] for item in u["by_grade"]] == [-2, -1, 0, 2, 3, 7, 10, 11, 12, None]
