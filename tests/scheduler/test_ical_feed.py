"""A person's schedule as an RFC 5545 feed: parsed back with icalendar, expanded with
dateutil, every occurrence at its local wall time across both daylight-saving changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil import rrule as du_rrule
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.scheduler.ical import (
    FEED_ERROR_CODES,
    PRODID,
    FeedError,
    FeedEvent,
    FeedMove,
    FeedSeries,
    render_feed,
)

LA = "America/Los_Angeles"
LA_TZ = ZoneInfo(LA)
NOW = dt.datetime(2026, 10, 1, 17, 0, tzinfo=dt.UTC)
CANCELLED = dt.datetime(2026, 11, 4, 15, 30)  # the Wednesday after the November change
MOVED_FROM = dt.datetime(2027, 3, 15, 15, 30)  # the Monday after the March change
MOVED_TO = dt.datetime(2027, 3, 16, 16, 0)


def series(**changes: object) -> FeedSeries:
    fields: dict[str, object] = {
        "uid": "series-41@homework-help.example",
        "summary": "Math tutoring, grade 7",
        "description": "Group A with the same tutor each session",
        "location": "Room 12",
        "zone": LA,
        "first_start_local": dt.datetime(2026, 10, 5, 15, 30),
        "duration": dt.timedelta(minutes=30),
        "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270402T235959Z",
        "cancelled_local_starts": [CANCELLED],
        "moved": [FeedMove(MOVED_FROM, MOVED_TO, dt.timedelta(minutes=45))],
        "sequence": 3,
    }
    fields.update(changes)
    return FeedSeries(**fields)  # type: ignore[arg-type]


def event(**changes: object) -> FeedEvent:
    fields: dict[str, object] = {
        "uid": "appt-7@homework-help.example",
        "summary": "Saturday appointment",
        "description": "",
        "location": "",
        "zone": LA,
        "start_local": dt.datetime(2026, 11, 7, 10, 0),
        "duration": dt.timedelta(hours=1),
    }
    fields.update(changes)
    return FeedEvent(**fields)  # type: ignore[arg-type]


def feed(*items: FeedSeries | FeedEvent) -> icalendar.Calendar:
    data = render_feed(
        "Ana's tutoring",
        [i for i in items if isinstance(i, FeedSeries)],
        [i for i in items if isinstance(i, FeedEvent)],
        now=NOW,
    )
    calendar = icalendar.Calendar.from_ical(data)
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def expand(calendar: icalendar.Calendar, uid: str) -> dict[dt.datetime, dt.datetime]:
    """Recurrence id -> actual aware start, the way a client does it: RRULE from DTSTART,
    minus EXDATE, overrides (same UID, RECURRENCE-ID) replacing their occurrence."""
    events = [e for e in calendar.walk("VEVENT") if str(e["UID"]) == uid]
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    assert isinstance(master, icalendar.Event)
    start = master.decoded("DTSTART")
    (recur,) = master.rrules
    rule = du_rrule.rrulestr(recur.to_ical().decode("ascii"), dtstart=start)
    excluded = set(master.exdates)
    occurrences = {o: o for o in rule if o not in excluded}
    for override in events:
        if "RECURRENCE-ID" in override:
            occurrences[override.decoded("RECURRENCE-ID")] = override.decoded("DTSTART")
    return occurrences


# ---------------------------------------------------------------- the round trip


def test_round_trip_every_occurrence_at_1530_local_across_both_dst_changes() -> None:
    calendar = feed(series())
    occurrences = expand(calendar, "series-41@homework-help.example")
    regular = {rid: start for rid, start in occurrences.items() if rid != start}
    assert len(regular) == 1  # only the moved one differs from its recurrence id
    starts = sorted(start for rid, start in occurrences.items() if rid == start)
    dates = {s.date() for s in starts}
    # Occurrences on both sides of Nov 1, 2026 and of Mar 14, 2027.
    assert dt.date(2026, 10, 30) in dates and dt.date(2026, 11, 2) in dates
    assert dt.date(2027, 3, 12) in dates and dt.date(2027, 3, 17) in dates
    for start in starts:
        local = start.astimezone(LA_TZ)
        assert (local.hour, local.minute) == (15, 30), start
        pdt = start.date() < dt.date(2026, 11, 1) or start.date() > dt.date(2027, 3, 14)
        assert local.utcoffset() == dt.timedelta(hours=-7 if pdt else -8), start
        assert start.astimezone(dt.UTC).hour == (22 if pdt else 23)
    # The cancelled occurrence is absent; the moved one is at its new time and length.
    assert CANCELLED.date() not in dates
    assert dt.date(2026, 11, 2) in dates and dt.date(2026, 11, 6) in dates
    moved = occurrences[MOVED_FROM.replace(tzinfo=LA_TZ)]
    assert moved.replace(tzinfo=None) == MOVED_TO and moved.tzinfo is not None
    assert moved.astimezone(LA_TZ).utcoffset() == dt.timedelta(hours=-7)
    assert MOVED_FROM.date() not in dates
    override = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" in e)
    assert override.decoded("DTEND") - override.decoded("DTSTART") == dt.timedelta(minutes=45)
    # 26 weeks x 3 days from Oct 5 to Apr 2, minus the cancelled one (the moved one stays).
    assert len(occurrences) == 26 * 3 - 1


def test_occurrences_through_the_feeds_own_vtimezone() -> None:
    """A client that ignores the TZID name and reads only the VTIMEZONE sees the same
    offsets as zoneinfo, at every occurrence and at the transition instants."""
    calendar = feed(series())
    (vtimezone,) = calendar.timezones
    own = vtimezone.to_tz(lookup_tzid=False)
    for start in expand(calendar, "series-41@homework-help.example").values():
        wall = start.replace(tzinfo=None)
        assert wall.replace(tzinfo=own).utcoffset() == start.utcoffset(), start
    # The onsets: RFC 5545 wants them as wall time in TZOFFSETFROM (02:00 both ways in LA).
    for observance in vtimezone.subcomponents:
        if observance.decoded("TZOFFSETFROM") == observance.decoded("TZOFFSETTO"):
            continue
        onsets = [observance.decoded("DTSTART")] + [r[0] for r in observance.rdates]
        for onset in onsets:
            assert onset.time() == dt.time(2, 0)
            instant = (onset - observance.decoded("TZOFFSETFROM")).replace(tzinfo=dt.UTC)
            before = (instant - dt.timedelta(seconds=1)).astimezone(LA_TZ).utcoffset()
            assert before == observance.decoded("TZOFFSETFROM")
            assert instant.astimezone(LA_TZ).utcoffset() == observance.decoded("TZOFFSETTO")


def test_calendar_properties_and_literal_local_times() -> None:
    data = render_feed(
        "Ana's tutoring",
        [series()],
        [event(zone="America/New_York", location="Library")],
        now=NOW,
    )
    text = data.decode()
    assert "\r\n" in text
    calendar = icalendar.Calendar.from_ical(data)
    assert str(calendar["PRODID"]) == PRODID
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["CALSCALE"]) == "GREGORIAN"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["X-WR-CALNAME"]) == "Ana's tutoring"
    assert sorted(tz.tz_name for tz in calendar.timezones) == [
        "America/Los_Angeles",
        "America/New_York",
    ]
    assert calendar.get_missing_tzids() == set()
    assert "DTSTART;TZID=America/Los_Angeles:20261005T153000\r\n" in text
    assert "DTEND;TZID=America/Los_Angeles:20261005T160000\r\n" in text
    assert "EXDATE;TZID=America/Los_Angeles:20261104T153000\r\n" in text
    assert "RECURRENCE-ID;TZID=America/Los_Angeles:20270315T153000\r\n" in text
    assert "DTSTART;TZID=America/New_York:20261107T100000\r\n" in text
    assert "RRULE:FREQ=WEEKLY;UNTIL=20270402T235959Z;BYDAY=MO,WE,FR\r\n" in text
    vevents = calendar.walk("VEVENT")
    assert len(vevents) == 3
    for vevent in vevents:
        assert vevent.decoded("DTSTAMP") == NOW
        assert vevent.decoded("DTSTART").tzinfo is not None
    assert [e.decoded("SEQUENCE") for e in vevents] == [3, 3, 0]
    assert {str(e["UID"]) for e in vevents} == {
        "series-41@homework-help.example",
        "appt-7@homework-help.example",
    }
    assert all(str(e["STATUS"]) == "CONFIRMED" for e in vevents)


def test_only_what_the_caller_passes_and_stable_bytes() -> None:
    first = render_feed("Feed", [series()], [event()], now=NOW)
    assert render_feed("Feed", [series()], [event()], now=NOW) == first
    # Reordered changes give the same bytes (EXDATEs and overrides are sorted).
    two = [CANCELLED, dt.datetime(2026, 10, 7, 15, 30)]
    assert render_feed("F", [series(cancelled_local_starts=two)], [], now=NOW) == render_feed(
        "F", [series(cancelled_local_starts=two[::-1])], [], now=NOW
    )
    calendar = icalendar.Calendar.from_ical(first)
    appointment = next(
        e for e in calendar.walk("VEVENT") if "RRULE" not in e and "RECURRENCE-ID" not in e
    )
    assert "DESCRIPTION" not in appointment and "LOCATION" not in appointment
    allowed = {
        "UID",
        "DTSTAMP",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
        "DTSTART",
        "DTEND",
        "RRULE",
        "EXDATE",
        "RECURRENCE-ID",
    }
    for vevent in calendar.walk("VEVENT"):
        assert set(vevent.keys()) <= allowed
        assert not vevent.subcomponents  # no VALARM, no ATTENDEE, no ORGANIZER


def test_cancelled_series_and_event_and_unbounded_rule() -> None:
    calendar = feed(
        series(cancelled=True, sequence=4),
        event(cancelled=True),
    )
    assert {str(e["STATUS"]) for e in calendar.walk("VEVENT")} == {"CANCELLED"}
    open_ended = feed(
        series(
            rrule="FREQ=WEEKLY;BYDAY=TU",
            cancelled_local_starts=[],
            moved=[],
            first_start_local=dt.datetime(2026, 10, 6, 15, 30),
        )
    )
    (vtimezone,) = open_ended.timezones
    onsets = [r[0] for o in vtimezone.subcomponents for r in o.rdates]
    # The VTIMEZONE covers the years an open rule reaches (5), not a century.
    assert 2031 <= max(onsets).year <= 2033
    text = open_ended.to_ical().decode()
    assert "RRULE:FREQ=WEEKLY;BYDAY=TU\r\n" in text


def test_count_rule_and_a_moved_occurrence_with_the_series_duration() -> None:
    item = series(
        rrule="FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=36",
        cancelled_local_starts=[],
        moved=[FeedMove(dt.datetime(2026, 11, 2, 15, 30), dt.datetime(2026, 11, 3, 15, 30))],
    )
    calendar = feed(item)
    occurrences = expand(calendar, item.uid)
    assert len(occurrences) == 36
    override = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" in e)
    assert override.decoded("DTEND") - override.decoded("DTSTART") == dt.timedelta(minutes=30)


# ---------------------------------------------------------------- refusals: every code


def _refuse(code: str, *items: FeedSeries | FeedEvent, now: dt.datetime = NOW) -> None:
    assert code in FEED_ERROR_CODES
    with pytest.raises(FeedError) as info:
        render_feed(
            "Feed",
            [i for i in items if isinstance(i, FeedSeries)],
            [i for i in items if isinstance(i, FeedEvent)],
            now=now,
        )
    assert info.value.code == code, info.value


REFUSALS: list[tuple[str, list[FeedSeries | FeedEvent]]] = [
    ("bad_zone", [series(zone="Pacific Time")]),
    ("bad_zone", [event(zone="Mars/Olympus_Mons")]),
    ("bad_zone", [event(zone="../etc/passwd")]),
    ("aware_datetime", [series(first_start_local=dt.datetime(2026, 10, 5, 15, 30, tzinfo=LA_TZ))]),
    ("aware_datetime", [series(cancelled_local_starts=[CANCELLED.replace(tzinfo=dt.UTC)])]),
    ("aware_datetime", [event(start_local=dt.datetime(2026, 11, 7, 10, tzinfo=dt.UTC))]),
    ("bad_duration", [series(duration=dt.timedelta(0))]),
    ("bad_duration", [event(duration=dt.timedelta(minutes=-30))]),
    ("bad_duration", [series(moved=[FeedMove(MOVED_FROM, MOVED_TO, dt.timedelta(0))])]),
    ("bad_rrule", [series(rrule="FREQ=FORTNIGHTLY")]),
    ("bad_rrule", [series(rrule="")]),
    ("bad_rrule", [series(rrule="FREQ=WEEKLY;BYDAY=MO\nRRULE:FREQ=DAILY")]),
    ("bad_rrule", [series(rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20270612T235959")]),
    ("bad_rrule", [series(rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20270612")]),
    ("bad_rrule", [series(rrule="FREQ=WEEKLY;COUNT=3;UNTIL=20270612T235959Z")]),
    ("not_an_occurrence", [series(cancelled_local_starts=[dt.datetime(2026, 11, 3, 15, 30)])]),
    ("not_an_occurrence", [series(first_start_local=dt.datetime(2026, 10, 6, 15, 30))]),
    ("bad_rrule", [series(rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20260101T000000Z")]),
    ("not_an_occurrence", [series(cancelled_local_starts=[dt.datetime(2026, 11, 4, 15, 0)])]),
    ("not_an_occurrence", [series(moved=[FeedMove(dt.datetime(2027, 6, 7, 15, 30), MOVED_TO)])]),
    ("conflicting_change", [series(cancelled_local_starts=[MOVED_FROM])]),
    (
        "conflicting_change",
        [series(moved=[FeedMove(MOVED_FROM, MOVED_TO), FeedMove(MOVED_FROM, MOVED_TO)])],
    ),
    ("nonexistent_time", [event(start_local=dt.datetime(2027, 3, 14, 2, 30))]),
    (
        "nonexistent_time",
        [
            series(
                first_start_local=dt.datetime(2027, 3, 12, 2, 30),
                rrule="FREQ=DAILY;COUNT=5",
                cancelled_local_starts=[],
                moved=[],
            )
        ],
    ),
    ("nonexistent_time", [series(moved=[FeedMove(MOVED_FROM, dt.datetime(2027, 3, 14, 2, 15))])]),
    ("duplicate_uid", [series(), event(uid="series-41@homework-help.example")]),
    ("bad_text", [event(uid="  ")]),
    ("bad_text", [event(uid="a\nb")]),
    ("bad_text", [event(summary="bell\x07")]),
]


@pytest.mark.parametrize(("code", "items"), REFUSALS)
def test_refusals(code: str, items: list[FeedSeries | FeedEvent]) -> None:
    _refuse(code, *items)


def test_naive_now_refused() -> None:
    _refuse("naive_now", series(), now=dt.datetime(2026, 10, 1, 17, 0))


def test_every_feed_error_code_has_a_refusal_test() -> None:
    assert {code for code, _ in REFUSALS} | {"naive_now"} == set(FEED_ERROR_CODES)


def test_ambiguous_fall_back_wall_time_is_accepted_as_the_first() -> None:
    calendar = feed(event(start_local=dt.datetime(2026, 11, 1, 1, 30)))
    start = next(iter(calendar.walk("VEVENT"))).decoded("DTSTART")
    assert start.replace(tzinfo=None) == dt.datetime(2026, 11, 1, 1, 30)


_WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA"]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from([LA, "America/New_York", "America/Denver", "Europe/London"]),
    first=st.dates(min_value=dt.date(2026, 8, 1), max_value=dt.date(2027, 6, 1)),
    wall=st.tuples(st.integers(12, 18), st.sampled_from([0, 10, 15, 30, 40, 45, 50])),
    days=st.sets(st.sampled_from(_WEEKDAYS), min_size=1, max_size=4),
    count=st.integers(1, 60),
    cancel=st.sets(st.integers(1, 59), max_size=6),
)
def test_any_weekly_series_round_trips_at_its_wall_time(
    zone: str,
    first: dt.date,
    wall: tuple[int, int],
    days: set[str],
    count: int,
    cancel: set[int],
) -> None:
    byday = sorted(days, key=_WEEKDAYS.index)
    rrule = f"FREQ=WEEKLY;BYDAY={','.join(byday)};COUNT={count}"
    while first.weekday() == 6 or _WEEKDAYS[first.weekday()] not in days:
        first += dt.timedelta(days=1)
    start = dt.datetime.combine(first, dt.time(*wall))
    expected = list(du_rrule.rrulestr(rrule, dtstart=start))
    cancelled = [expected[i] for i in sorted(cancel) if i < len(expected)]
    item = series(
        zone=zone, first_start_local=start, rrule=rrule, cancelled_local_starts=cancelled, moved=[]
    )
    occurrences = expand(feed(item), item.uid)
    assert sorted(o.replace(tzinfo=None) for o in occurrences.values()) == [
        o for o in expected if o not in cancelled
    ]
    tz = ZoneInfo(zone)
    for start_aware in occurrences.values():
        local = start_aware.astimezone(tz)  # the instant, seen in the zone
        assert (local.hour, local.minute) == wall
        assert local.replace(tzinfo=None) == start_aware.replace(tzinfo=None)
