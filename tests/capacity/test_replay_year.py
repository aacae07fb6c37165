"""A replay split into week segments over processes, published plans, recorded arrivals."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker import stats
from broker.capacity import synthetic
from broker.capacity.recorded import PREFIX, read_recorded
from broker.capacity.shifts import parse_import
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.settings import Settings
from tests.broker.harness import SECRET, free_port
from web.commands.replay_parallel import replay_parallel, week_segments
from web.commands.replay_plans import PlanSpec
from web.commands.simulate import replay

TZ = ZoneInfo(synthetic.TIMEZONE)


@pytest.fixture(scope="module")
def year() -> synthetic.Year:
    return synthetic.generate(seed=3)


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key=SECRET, pseudonym_secret=SECRET,
                    port=free_port(), host="127.0.0.1", tutor_silent_s=0.0,
                    session_idle_s=0.0)


def test_week_segments_cut_at_local_monday_midnight() -> None:
    # spring forward on Sunday 10 March 2024: Monday 00:00 is 08:00 UTC before, 07:00 after
    start = dt.datetime(2024, 3, 6, 12, tzinfo=dt.UTC)
    end = dt.datetime(2024, 3, 20, 12, tzinfo=dt.UTC)
    parts = week_segments(start, end, TZ)
    assert [p[0] for p in parts] == [start, dt.datetime(2024, 3, 11, 7, tzinfo=dt.UTC),
                                     dt.datetime(2024, 3, 18, 7, tzinfo=dt.UTC)]
    assert parts[-1][1] == end and all(a < b for a, b in parts)
    assert week_segments(start, start + dt.timedelta(hours=5), TZ) == [
        (start, start + dt.timedelta(hours=5))]


@pytest.mark.slow
async def test_segments_in_processes_merge_into_one_database(
    year: synthetic.Year, tmp_path: Path
) -> None:
    # Sunday 21:00 to Monday 01:00 local: two segments, replayed side by side
    start = dt.datetime(2024, 2, 11, 21, tzinfo=TZ).astimezone(dt.UTC)
    end = start + dt.timedelta(hours=4)
    out = tmp_path / "merged.db"
    settings = _settings(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    report = await replay_parallel(settings, year, start, end, workers=2, out=out,
                                   reaction_s=10.0, retry=True)
    assert report.segments == 2 and report.workers == 2
    assert not report.errors, report.errors
    originals = len(year.between(start, end))
    assert report.arrivals - report.retries == originals > 10
    overall = report.overall()
    assert overall.accepted + overall.gave_up == overall.arrivals
    engine = create_engine(f"sqlite+aiosqlite:///{out}")
    try:
        window = stats.Filters(start=start, end=end + dt.timedelta(hours=2))
        level = await stats.service_level(engine, window, report.target_wait_s)
    finally:
        await engine.dispose()
    assert (level["within"], level["accepted"], level["gave_up"]) == (
        overall.within_target, overall.accepted, overall.gave_up)
    with sqlite3.connect(out) as db:
        sessions = db.execute("SELECT count(*) FROM tutoring_sessions").fetchone()[0]
        requests = db.execute("SELECT count(*) FROM help_requests").fetchone()[0]
    assert sessions == overall.accepted and requests == report.arrivals - report.conflicts


async def test_students_who_give_up_try_again(
    year: synthetic.Year, sqlite_url: str
) -> None:
    start = dt.datetime(2024, 2, 5, 18, tzinfo=TZ).astimezone(dt.UTC)
    end = start + dt.timedelta(minutes=30)
    # one tutor for the whole evening peak: most give up, then come back
    report = await replay(_settings(sqlite_url), year, start, end, tutors=1, retry=True)
    assert report.retries > 0
    assert report.overall().gave_up > 0
    without = await replay(_settings(sqlite_url.replace(".db", "-b.db")), year, start, end,
                           tutors=1)
    assert without.retries == 0 and without.arrivals == len(year.between(start, end))


async def test_a_published_plan_with_an_exception_is_followed(
    year: synthetic.Year, sqlite_url: str
) -> None:
    catalog = load_catalog()
    csv = ("vendor,language,day,date,start,end,headcount,note\n"
           "tutorcom,en,mon,,17:00,20:00,4,\n"
           "tutorcom,en,,2024-02-05,18:00,19:00,1,staff meeting\n"
           "paper,en,mon,,17:00,20:00,2,\n")
    plans = parse_import(csv, "csv", catalog.timezone, catalog)
    start = dt.datetime(2024, 2, 5, 17, tzinfo=TZ).astimezone(dt.UTC)
    end = start + dt.timedelta(hours=2)
    spec = PlanSpec("published", plans=plans, source="test.csv")
    report = await replay(_settings(sqlite_url), year, start, end, plan=spec)
    assert "published" in report.headcount
    # 17:00-18:00 four tutors, 18:00-19:00 the exception's one
    assert report.queue("tutorcom:en").tutor_hours == pytest.approx(4 + 1)
    assert report.queue("paper:en").tutor_hours == pytest.approx(2 * 2)
    assert report.queue("tutorcom:es").tutor_hours == 0  # no plan: nobody on shift
    assert report.queue("tutorcom:en").expected_service_level is not None


async def test_recorded_requests_replay_as_they_were_asked(
    year: synthetic.Year, tmp_path: Path
) -> None:
    source = _settings(f"sqlite+aiosqlite:///{tmp_path / 'district.db'}")
    start = dt.datetime(2024, 2, 6, 19, tzinfo=TZ).astimezone(dt.UTC)
    first = await replay(source, year, start, start + dt.timedelta(hours=1), reaction_s=10.0)
    recorded = await read_recorded(source, dt.date(2024, 2, 6), dt.date(2024, 2, 7))
    with sqlite3.connect(tmp_path / "district.db") as db:
        asked = db.execute("SELECT count(*) FROM help_requests").fetchone()[0]
        served = dict(db.execute(
            "SELECT r.requested_at, (julianday(s.ended_at) - julianday(s.accepted_at)) * 86400 "
            "FROM help_requests r JOIN tutoring_sessions s ON s.request_id = r.id").fetchall())
    assert recorded.skipped == 0 and len(recorded.year.arrivals) == asked
    assert first.arrivals == asked
    assert all(a.student.id.startswith(PREFIX) for a in recorded.year.arrivals)
    assert not {a.student.id for a in recorded.year.arrivals} & {s.id for s in year.students}
    handles = sorted(round(a.handle_s) for a in recorded.year.arrivals)
    for seconds in served.values():
        assert any(abs(h - seconds) <= 1 for h in handles)
    again = await replay(_settings(f"sqlite+aiosqlite:///{tmp_path / 'again.db'}"),
                         recorded.year, recorded.start, recorded.end, reaction_s=10.0)
    assert again.arrivals - again.retries == asked
    assert not again.errors, again.errors


def test_enrolled_roster_has_the_district_group_counts(year: synthetic.Year) -> None:
    small = synthetic.generate(seed=5, shape=synthetic.Shape(
        sessions=900, students=200, group_users=(("SWD", 20), ("EL", 30), ("RFEP", 40))))
    wanted = {"All": 2_000, "SWD": 150, "EL": 300, "RFEP": 400}
    roster = synthetic.enrolled_roster(small, wanted)
    assert len(roster) == 2_000 and len({s.sis_id for s in roster}) == 2_000
    for group in ("SWD", "EL", "RFEP"):
        assert sum(1 for s in roster if group in s.groups) == wanted[group], group
    assert not any({"EL", "RFEP"} <= {str(g) for g in s.groups} for s in roster)
    users = {s.id for s in small.students}
    assert users <= {s.sis_id for s in roster}
    with pytest.raises(ValueError):
        synthetic.enrolled_roster(small, {"All": 100, "SWD": 0, "EL": 0, "RFEP": 0})
