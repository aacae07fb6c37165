"""``homework-help simulate``: an evening hour of the synthetic year through the real broker
over socket.io on a virtual clock (both stacks), and a no-tutor hour where all give up."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from broker import stats
from broker.capacity import synthetic
from broker.capacity.demand import observed_demand
from broker.catalog_source import load_catalog
from broker.db.engine import create_engine
from broker.settings import Settings
from tests.broker.harness import SECRET, free_port
from web.cli import build_parser
from web.commands.simulate import replay

TZ = ZoneInfo(synthetic.TIMEZONE)
EVENING = dt.datetime(2024, 2, 5, 18, tzinfo=TZ)  # a Monday in term: the evening peak


@pytest.fixture(scope="module")
def year() -> synthetic.Year:
    return synthetic.generate(seed=3)


@pytest.fixture(params=["embedded", "scaled"])
def sim_settings(request: pytest.FixtureRequest) -> Settings:
    if request.param == "embedded":
        url, redis_url, prefix = str(request.getfixturevalue("sqlite_url")), None, "hh"
    else:
        url = str(request.getfixturevalue("postgres_url"))
        redis_url = str(request.getfixturevalue("redis_url"))
        prefix = str(request.getfixturevalue("redis_prefix"))
    return Settings(database_url=url, redis_url=redis_url, redis_prefix=prefix,
                    secret_key=SECRET, pseudonym_secret=SECRET, port=free_port(),
                    host="127.0.0.1", tutor_silent_s=0.0, session_idle_s=0.0)


async def test_advised_evening_hour_meets_the_target(
    year: synthetic.Year, sim_settings: Settings
) -> None:
    start = EVENING.astimezone(dt.UTC)
    end = start + dt.timedelta(hours=1)
    expected = year.between(start, end)
    report = await replay(sim_settings, year, start, end, reaction_s=10.0)
    assert report.arrivals - report.retries == len(expected) > 20
    assert not report.errors, report.errors
    overall = report.overall()
    routed = overall.arrivals
    assert routed + sum(report.unmet.values()) + report.conflicts == report.arrivals
    # every routed request was either accepted or gave up (sessions ended after the hour)
    assert overall.accepted + overall.gave_up == routed
    assert overall.service_level is not None and overall.service_level >= 0.75
    assert overall.expected_service_level is not None
    assert overall.expected_service_level >= report.target_fraction
    assert overall.tutor_hours > 0 and overall.busy_hours > 0
    assert 0 < (overall.percentile(0.5) or 0) <= (overall.percentile(0.9) or 0)  # reading
    assert report.queue("tutorcom:en").arrivals > 0
    assert set(report.as_dict()["overall"]) >= {"service_level", "wait_p50_s", "wait_p90_s"}
    # the broker's own records and the staff reports' functions say the same
    engine = create_engine(sim_settings.database_url)
    try:
        demand = await observed_demand(engine, load_catalog(sim_settings), start, end)
        window = stats.Filters(start=start, end=end)
        level = await stats.service_level(engine, window, report.target_wait_s)
        usage = {row["group"]: row for row in (await stats.group_usage(engine, window))["groups"]}
    finally:
        await engine.dispose()
    for qd in demand.queues:
        recorded = qd.total()
        measured = report.queue(f"{qd.vendor}:{qd.language}")
        assert (recorded.arrivals, recorded.accepted, recorded.gave_up) == (
            measured.arrivals, measured.accepted, measured.gave_up), qd.queue
    assert (level["within"], level["accepted"], level["gave_up"]) == (
        overall.within_target, overall.accepted, overall.gave_up)
    assert usage["All"]["sessions"] == overall.accepted
    for group in ("All", "SWD", "EL", "RFEP"):
        students = {a.student.id for a in expected if group == "All" or group in a.student.groups}
        assert usage[group]["students_requesting"] == len(students), group


async def test_no_tutors_everyone_gives_up(year: synthetic.Year, sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, secret_key=SECRET, pseudonym_secret=SECRET,
                        port=free_port(), host="127.0.0.1", tutor_silent_s=0.0)
    start = EVENING.astimezone(dt.UTC)
    report = await replay(settings, year, start, start + dt.timedelta(minutes=20), tutors=0)
    overall = report.overall()
    assert overall.arrivals > 0 and overall.accepted == 0
    assert overall.gave_up == overall.arrivals and overall.service_level == 0.0
    assert overall.tutor_hours == 0 and overall.percentile(0.5) is None


def test_command_is_registered() -> None:
    args = build_parser().parse_args(["simulate", "--period", "year", "--tutors", "3"])
    assert args.command == "simulate" and args.period == "year" and args.tutors == 3
