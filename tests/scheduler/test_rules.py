"""The pure rules: recurrence across daylight saving, the bell window, holidays, overlaps,
limits, accommodations, availability, dosage and attendance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from broker.scheduler import rules
from broker.scheduler.errors import BadRecurrence, SchedulingError

LA = "America/Los_Angeles"
SCHOOL = rules.SchoolRules(
    zone=LA, after_school_end=18 * 60,
    bells={d: rules.Bell(15 * 60, 12 * 60 + 30) for d in range(5)},
    calendar={date(2026, 11, 11): "holiday", date(2026, 11, 13): "minimum_day",
              date(2026, 11, 12): "no_school"},
)


def codes(found: list[SchedulingError]) -> list[str]:
    return [v.code for v in found]


def test_a_dst_week_keeps_local_time() -> None:
    slots = rules.expand("FREQ=WEEKLY;BYDAY=MO,WE,TH;COUNT=6", date(2026, 10, 26), 15 * 60 + 30,
                         30, LA, last_day=date(2027, 1, 1))
    assert [s.day.isoformat() for s in slots] == [
        "2026-10-26", "2026-10-28", "2026-10-29", "2026-11-02", "2026-11-04", "2026-11-05"]
    local = [s.starts_at.astimezone(ZoneInfo(LA)) for s in slots]
    assert {(t.hour, t.minute) for t in local} == {(15, 30)}
    assert slots[0].starts_at == datetime(2026, 10, 26, 22, 30, tzinfo=UTC)  # PDT
    assert slots[3].starts_at == datetime(2026, 11, 2, 23, 30, tzinfo=UTC)  # PST
    assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in slots)


def test_a_nonexistent_local_time_is_refused() -> None:
    with pytest.raises(BadRecurrence):
        rules.slot(date(2027, 3, 14), 2 * 60 + 30, 30, LA)


@pytest.mark.parametrize("text", ["FREQ=MONTHLY;COUNT=3", "garbage", "FREQ=WEEKLY;BYDAY=XX",
                                  "FREQ=DAILY;COUNT=5"])
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(BadRecurrence):
        rules.expand(text, date(2026, 10, 26), 900, 30, LA, last_day=date(2027, 1, 1))


def test_an_open_rule_stops_at_the_last_day_and_a_huge_one_is_refused() -> None:
    slots = rules.expand("FREQ=WEEKLY;BYDAY=MO", date(2026, 10, 26), 900, 30, LA,
                         last_day=date(2026, 11, 9))
    assert len(slots) == 3
    with pytest.raises(BadRecurrence):
        rules.expand("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU", date(2026, 1, 1), 900, 30, LA,
                     last_day=date(2030, 1, 1))


def one(day: date, start: int, minutes: int = 30) -> rules.Slot:
    return rules.slot(day, start, minutes, LA)


def test_the_bell_window() -> None:
    monday = date(2026, 11, 9)
    assert rules.check_school_window([one(monday, 13 * 60 + 30)], SCHOOL) == []  # 90 min
    early = rules.check_school_window([one(monday, 13 * 60 + 29)], SCHOOL)  # 91 min
    assert codes(early) == ["before_bell_window"]
    assert early[0].detail["dates"] == ["2026-11-09"]
    late = rules.check_school_window([one(monday, 17 * 60 + 45)], SCHOOL)
    assert codes(late) == ["after_school_window"]
    # a minimum day dismisses at 12:30, so 11:00 is inside its window
    assert rules.check_school_window([one(date(2026, 11, 13), 11 * 60)], SCHOOL) == []
    assert codes(rules.check_school_window([one(date(2026, 11, 14), 15 * 60)], SCHOOL)) == [
        "not_school_day"]  # Saturday: no bell
    assert codes(rules.check_school_window([one(date(2026, 11, 12), 15 * 60)], SCHOOL)) == [
        "not_school_day"]


def test_holidays_and_term() -> None:
    slots = [one(date(2026, 11, d), 15 * 60) for d in (10, 11)]
    found = rules.check_holidays(slots, SCHOOL.calendar)
    assert codes(found) == ["holiday_in_series"] and found[0].detail["dates"] == ["2026-11-11"]
    assert rules.check_holidays(slots[:1], SCHOOL.calendar) == []
    out = rules.check_term(slots, date(2026, 9, 1), date(2026, 11, 10))
    assert codes(out) == ["outside_term"] and out[0].detail["dates"] == ["2026-11-11"]


def test_overlaps() -> None:
    at = one(date(2026, 11, 9), 15 * 60)
    busy = [rules.Busy(at.starts_at + timedelta(minutes=20), at.ends_at + timedelta(hours=1),
                       "o1")]
    assert codes(rules.check_overlaps([at], busy, {})) == ["overlap_tutor"]
    touching = [rules.Busy(at.ends_at, at.ends_at + timedelta(minutes=30), "o2")]
    assert rules.check_overlaps([at], touching, {"st1": touching}) == []
    long_before = [rules.Busy(at.starts_at - timedelta(minutes=200),
                              at.starts_at + timedelta(minutes=1), "o3")]
    found = rules.check_overlaps([at], [], {"st9": long_before})
    assert codes(found) == ["overlap_student"] and found[0].detail["students"] == ["st9"]


def test_limits_accommodations_and_dosage() -> None:
    assert rules.check_group_size(4, 4) == []
    assert codes(rules.check_group_size(5, 4)) == ["group_over_limit"]
    found = rules.check_accommodations({"a": ["asl"], "b": []}, ["braille"])
    assert codes(found) == ["accommodation_missing"] and found[0].detail["students"] == ["a"]
    assert rules.check_accommodations({"a": ["asl"]}, ["asl", "braille"]) == []
    two_a_week = rules.expand("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6", date(2026, 11, 2), 900, 20,
                              LA, last_day=date(2027, 1, 1))
    found = rules.check_dosage(two_a_week, session_minutes=30, min_per_week=3, one_off=False)
    assert codes(found) == ["session_too_short", "below_min_sessions"]
    assert rules.check_dosage(two_a_week[:1], session_minutes=20, min_per_week=3,
                              one_off=True) == []


def test_availability_in_the_tutors_zone() -> None:
    hours = rules.Availability(
        zone="America/New_York", weekly={0: [(18 * 60, 21 * 60)]},
        extra={date(2026, 11, 10): [(19 * 60, 20 * 60)]},
        away={date(2026, 11, 16): [None]},
    )
    monday = one(date(2026, 11, 9), 15 * 60)  # 18:00 in New York
    assert rules.check_availability([monday], hours) == []
    assert codes(rules.check_availability([one(date(2026, 11, 9), 14 * 60)], hours)) == [
        "outside_availability"]
    assert rules.check_availability([one(date(2026, 11, 10), 16 * 60)], hours) == []
    assert codes(rules.check_availability([one(date(2026, 11, 16), 15 * 60)], hours)) == [
        "outside_availability"]


def test_attendance_grace() -> None:
    start = datetime(2026, 11, 9, 23, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    grace = timedelta(minutes=5)
    assert rules.attendance_status(start, end, start + grace, grace) == "present"
    assert rules.attendance_status(start, end, start + grace + timedelta(seconds=1),
                                   grace) == "late"
    assert rules.attendance_status(start, end, None, grace) == "absent"
    assert rules.attendance_status(start, end, end, grace) == "absent"
