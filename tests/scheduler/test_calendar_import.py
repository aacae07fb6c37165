"""School calendars in: the CSV and iCalendar parsers, their rules and error codes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.scheduler import calendar_import as ci
from broker.scheduler.calendar_import import (
    ERROR_CODES,
    KINDS,
    CalendarDay,
    CalendarImportError,
    guess_kind,
    import_calendar_ics,
    parse_calendar_csv,
    parse_calendar_ics,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "calendars"
D = dt.date


def refused(code: str, call: object, *args: object, **kwargs: object) -> CalendarImportError:
    """Call and assert it raised CalendarImportError with exactly this code."""
    assert code in ERROR_CODES
    assert callable(call)
    with pytest.raises(CalendarImportError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


# ---------------------------------------------------------------- CSV: the district file


def test_district_csv_parses_whole() -> None:
    text = (DATA / "district_2026_27.csv").read_text(encoding="utf-8")
    days = parse_calendar_csv(text)
    by_date = {d.date: d for d in days}
    assert by_date[D(2026, 9, 7)] == CalendarDay(D(2026, 9, 7), "holiday", "Labor Day")
    # Winter break is a range: every date from Dec 21 to Jan 8 inclusive, and none after.
    winter = [d for d in days if d.label == "Winter Break"]
    assert [d.date for d in winter] == [D(2026, 12, 21) + dt.timedelta(days=i) for i in range(19)]
    assert all(d.kind == "break" for d in winter)
    assert by_date[D(2027, 1, 18)].label == "Dr. Martin Luther King, Jr. Day"
    assert by_date[D(2027, 1, 18)].date.weekday() == 0  # a Monday holiday
    assert by_date[D(2027, 3, 31)].kind == "holiday"  # US date format MM/DD/YYYY
    assert by_date[D(2026, 9, 25)].kind == "minimum_day"
    assert by_date[D(2026, 8, 14)].kind == "school_day"
    assert [d.date for d in days] == sorted(d.date for d in days)
    assert D(2027, 1, 9) not in by_date


def test_csv_bom_crlf_blank_lines_case_and_kind_spelling() -> None:
    text = (
        "\ufeffDate,Kind,Label,Notes\r\n\r\n2026-11-11,Holiday,Veterans Day,x\r\n"
        "2026-09-25,Minimum Day,Conferences,\r\n2026-10-09,no-school,PD,\r\n"
    )
    days = parse_calendar_csv(text)
    assert [(d.date, d.kind) for d in days] == [
        (D(2026, 9, 25), "minimum_day"),
        (D(2026, 10, 9), "no_school"),
        (D(2026, 11, 11), "holiday"),
    ]


def test_csv_same_date_same_kind_kept_once_first_label() -> None:
    text = "date,kind,label\n2026-11-11,holiday,Veterans Day\n11/11/2026,holiday,Again\n"
    assert parse_calendar_csv(text) == [CalendarDay(D(2026, 11, 11), "holiday", "Veterans Day")]


def test_csv_label_column_optional_and_quoted_commas() -> None:
    assert parse_calendar_csv("date,kind\n2026-01-02,break\n") == [
        CalendarDay(D(2026, 1, 2), "break", "")
    ]
    days = parse_calendar_csv('date,kind,label\n2027-01-18,holiday,"King, Jr. Day"\n')
    assert days[0].label == "King, Jr. Day"


def test_csv_header_only_is_an_empty_calendar() -> None:
    assert parse_calendar_csv("date,kind,label\n") == []


# ---------------------------------------------------------------- CSV: every error code


CSV_REFUSALS = [
    ("", "missing_column", 1),
    ("\r\n\r\n", "missing_column", 1),
    ("date,label\n2026-01-01,x\n", "missing_column", 1),
    ("kind,label\nholiday,x\n", "missing_column", 1),
    ("start_date,kind\n2026-01-01,holiday\n", "missing_column", 1),
    ("date,kind,label\n2026-13-01,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n2026-02-30,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n13/01/2026,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n2026/01/01,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n20260101,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n1026-01-01,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n,holiday,x\n", "bad_date", 2),
    ("date,kind,label\n2026-01-01,holiday,ok\n\n2026-01-02,vacation,x\n", "unknown_kind", 4),
    ("date,kind,label\n2026-01-01,,x\n", "unknown_kind", 2),
    ("date,kind,label\n2026-01-01,holiday," + "x" * 201 + "\n", "bad_label", 2),
    ("date,kind,label\n2026-01-01,holiday,a\x07b\n", "bad_label", 2),
    ("start_date,end_date,kind\n2026-01-09,2026-01-02,break\n", "bad_range", 2),
    ("start_date,end_date,kind\n2026-01-01,2027-02-05,break\n", "bad_range", 2),
    ("date,start_date,end_date,kind\n2026-01-01,2026-01-01,2026-01-02,break\n", "bad_range", 2),
    ("date,kind\n2026-01-01,holiday\n2026-01-01,minimum_day\n", "duplicate_date", 3),
    (
        "start_date,end_date,kind\n2026-12-21,2027-01-08,break\n2026-12-25,2026-12-25,holiday\n",
        "duplicate_date",
        3,
    ),
    ("date,kind\n2026-01-01,holiday,extra\n", "bad_csv", 2),
    ('date,kind,label\n2026-01-01,holiday,"unterminated\n', "bad_csv", 2),
    ("date,kind,label\n2026-01-01,holiday,a\x00b\n", "bad_label", 2),
    ('date,kind,label\n"2026-01-01"x,holiday,a\n', "bad_csv", 2),
]


@pytest.mark.parametrize(("text", "code", "line"), CSV_REFUSALS)
def test_csv_refusals_name_the_rule_and_line(text: str, code: str, line: int) -> None:
    error = refused(code, parse_calendar_csv, text)
    assert error.line == line
    assert f"line {line}" in str(error)


def test_csv_a_range_of_exactly_400_days_is_allowed() -> None:
    days = parse_calendar_csv("start_date,end_date,kind\n2026-01-01,2027-02-04,break\n")
    assert len(days) == ci.MAX_RANGE_DAYS


def test_csv_too_large_file_rows_and_days(monkeypatch: pytest.MonkeyPatch) -> None:
    refused("too_large", parse_calendar_csv, "date,kind\n" + " " * ci.MAX_CSV_CHARS)
    monkeypatch.setattr(ci, "MAX_CSV_ROWS", 3)
    rows = "".join(f"2026-01-0{i},holiday\n" for i in range(1, 5))
    assert refused("too_large", parse_calendar_csv, "date,kind\n" + rows).line == 5
    monkeypatch.setattr(ci, "MAX_CSV_ROWS", 5000)
    monkeypatch.setattr(ci, "MAX_DAYS", 10)
    refused(
        "too_large", parse_calendar_csv, "start_date,end_date,kind\n2026-01-01,2026-01-11,break\n"
    )


def test_csv_whole_or_nothing_a_late_bad_row_returns_nothing() -> None:
    good = "".join(f"2026-03-{d:02d},holiday,Day {d}\n" for d in range(1, 29))
    with pytest.raises(CalendarImportError) as info:
        parse_calendar_csv("date,kind,label\n" + good + "2026-03-32,holiday,bad\n")
    assert info.value.code == "bad_date"
    assert info.value.line == 30


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_csv_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        days = parse_calendar_csv(text)
    except CalendarImportError as error:
        assert error.code in ERROR_CODES
    else:
        assert all(d.kind in KINDS for d in days)


_CELL = st.one_of(
    st.sampled_from(
        [
            "2026-01-05",
            "01/06/2026",
            "2026-02-30",
            "",
            "holiday",
            "break",
            "Minimum Day",
            "x",
            '"a,b"',
            "2027-01-01",
        ]
    ),
    st.text(alphabet=',"\r\n -/0123456789abc', max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["date,kind,label", "start_date,end_date,kind,label", "date,start_date,end_date,kind"]
    ),
    st.lists(st.lists(_CELL, max_size=5), max_size=8),
)
def test_csv_never_crashes_on_csv_shaped_text(header: str, rows: list[list[str]]) -> None:
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    try:
        days = parse_calendar_csv(text)
    except CalendarImportError as error:
        assert error.code in ERROR_CODES
    else:
        assert len({d.date for d in days}) == len(days)


# ---------------------------------------------------------------- iCalendar: the district file


def test_district_ics() -> None:
    result = import_calendar_ics((DATA / "district_2026_27.ics").read_bytes())
    by_date = {d.date: d for d in result.days}
    # Winter break: DTEND is exclusive (20270109), so Dec 21 .. Jan 8.
    winter = sorted(d for d, day in by_date.items() if day.label == "Winter Break")
    assert winter[0] == D(2026, 12, 21)
    assert winter[-1] == D(2027, 1, 8)
    assert D(2027, 1, 9) not in by_date
    # Christmas inside the break: the holiday wins.
    assert by_date[D(2026, 12, 25)] == CalendarDay(D(2026, 12, 25), "holiday", "Christmas Day")
    assert len(winter) == 18
    # A Monday holiday, guessed from the summary.
    assert by_date[D(2027, 1, 18)].kind == "holiday"
    assert by_date[D(2027, 1, 18)].label == "Dr. Martin Luther King, Jr. Day"
    assert by_date[D(2026, 9, 25)].kind == "minimum_day"
    assert by_date[D(2026, 10, 9)].kind == "no_school"  # from CATEGORIES
    # The recurring Tuesday early dismissal: EXDATEs gone, the override moved to Wednesday.
    banked = sorted(d for d, day in by_date.items() if day.label.startswith("Early Dismissal"))
    assert banked == [
        D(2026, 10, 6),
        D(2026, 10, 13),
        D(2026, 10, 21),
        D(2026, 10, 27),
        D(2026, 11, 3),
        D(2026, 11, 17),
        D(2026, 12, 1),
        D(2026, 12, 8),
        D(2026, 12, 15),
    ]
    assert all(by_date[d].kind == "minimum_day" for d in banked)
    # Timed event and cancelled event ignored and counted.
    assert D(2026, 9, 10) not in by_date
    assert D(2027, 2, 12) not in by_date
    assert (result.ignored_timed, result.ignored_cancelled) == (1, 1)
    assert result.truncated_recurrences == 0
    assert parse_calendar_ics((DATA / "district_2026_27.ics").read_text()) == list(result.days)


def _ics(*events: str) -> str:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:{i}@x\r\nDTSTAMP:20260101T000000Z\r\n{e}END:VEVENT\r\n"
        for i, e in enumerate(events)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n"


def _all_day(start: str, end: str | None, summary: str, extra: str = "") -> str:
    dtend = f"DTEND;VALUE=DATE:{end}\r\n" if end else ""
    return f"DTSTART;VALUE=DATE:{start}\r\n{dtend}SUMMARY:{summary}\r\n{extra}"


@pytest.mark.parametrize(
    ("summary", "categories", "kind"),
    [
        ("Winter Break", "", "break"),
        ("Spring Recess", "", "break"),
        ("Minimum Day", "", "minimum_day"),
        ("Last Day of School - Minimum Day", "", "minimum_day"),
        ("Holiday", "", "holiday"),
        ("Veterans Day (No School)", "", "holiday"),
        ("No School", "", "no_school"),
        ("Teacher Work Day", "", "no_school"),
        ("First Day of School", "", "school_day"),
        ("Vacaciones de invierno", "", "break"),
        ("Día mínimo", "", "minimum_day"),
        ("Board meeting", "", "holiday"),  # the default kind
        ("Board meeting", "Minimum Day", "minimum_day"),
        ("Anything", "school_day", "school_day"),
    ],
)
def test_kind_guess(summary: str, categories: str, kind: str) -> None:
    cats = [categories] if categories else []
    assert guess_kind(cats, summary, "holiday") == kind
    extra = f"CATEGORIES:{categories}\r\n" if categories else ""
    days = parse_calendar_ics(_ics(_all_day("20270301", "20270302", summary, extra)))
    assert [d.kind for d in days] == [kind]


def test_ics_default_kind_and_missing_dtend_and_duration() -> None:
    days = parse_calendar_ics(
        _ics(
            _all_day("20270301", None, "Board meeting"),
            "DTSTART;VALUE=DATE:20270305\r\nDURATION:P2D\r\nSUMMARY:Retreat\r\n",
        ),
        default_kind="no_school",
    )
    assert [(d.date, d.kind) for d in days] == [
        (D(2027, 3, 1), "no_school"),
        (D(2027, 3, 5), "no_school"),
        (D(2027, 3, 6), "no_school"),
    ]


def test_ics_unbounded_rrule_is_expanded_within_the_bound() -> None:
    text = _ics(_all_day("20261111", "20261112", "Veterans Day", "RRULE:FREQ=YEARLY\r\n"))
    result = import_calendar_ics(text)
    assert [d.date for d in result.days] == [D(2026 + i, 11, 11) for i in range(4)]
    assert result.truncated_recurrences == 1
    windowed = parse_calendar_ics(text, window=(D(2027, 7, 1), D(2028, 6, 30)))
    assert [d.date for d in windowed] == [D(2027, 11, 11)]


def test_ics_rrule_with_datetime_until_and_rdate() -> None:
    text = _ics(
        _all_day(
            "20260901",
            "20260902",
            "Minimum Day",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;UNTIL=20261101T075959Z\r\n"
            "RDATE;VALUE=DATE:20261215\r\nEXDATE:20261001T000000\r\n",
        )
    )
    assert [d.date for d in parse_calendar_ics(text)] == [
        D(2026, 9, 1),
        D(2026, 11, 1),
        D(2026, 12, 15),
    ]


# ---------------------------------------------------------------- iCalendar: every error code


ICS_REFUSALS: list[tuple[bytes | str, str]] = [
    (b"", "bad_ics"),
    (b"this is not a calendar", "bad_ics"),
    ("BEGIN:VEVENT\r\nEND:VEVENT\r\n", "bad_ics"),
    ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", "bad_ics"),
    (_ics("DTSTART;VALUE=DATE:2026bad\r\nSUMMARY:x\r\n"), "bad_event"),
    (_ics(_all_day("20260101", None, "x", "DTEND:20260102T100000\r\n")), "bad_event"),
    (_ics(_all_day("20260101", None, "x", "EXDATE;VALUE=DATE:notadate\r\n")), "bad_event"),
    (_ics(_all_day("20260101", None, "x", "DTSTART;VALUE=DATE:20260102\r\n")), "bad_event"),
    (
        _ics(_all_day("20260101", None, "x", "RECURRENCE-ID;VALUE=DATE:20260102\r\n" * 2)),
        "bad_event",
    ),
    (_ics("DTSTART;VALUE=PERIOD:20260101T000000Z/PT1H\r\n"), "bad_event"),
    (_ics(_all_day("20260101", None, "x", "DTEND:100000\r\n")), "bad_event"),
    (_ics("SUMMARY:no start\r\n"), "missing_start"),
    (_ics(_all_day("20260110", "20260105", "Backwards")), "bad_range"),
    (_ics(_all_day("20260101", "20270301", "Too long")), "bad_range"),
    (_ics(_all_day("20260101", "20260102", "x", "RRULE:FREQ=SOMETIMES\r\n")), "bad_rrule"),
    (_ics(_all_day("20260101", "20260102", "x", "RRULE:FREQ=DAILY;BYDAY=XX\r\n")), "bad_rrule"),
]


@pytest.mark.parametrize(("data", "code"), ICS_REFUSALS)
def test_ics_refusals(data: bytes | str, code: str) -> None:
    error = refused(code, parse_calendar_ics, data)
    assert error.line is None
    assert error.message


def test_ics_unknown_default_kind() -> None:
    refused("unknown_kind", parse_calendar_ics, _ics(), default_kind="vacation")


def test_ics_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    refused("too_large", parse_calendar_ics, b" " * (ci.MAX_ICS_BYTES + 1))
    monkeypatch.setattr(ci, "MAX_ICS_EVENTS", 2)
    refused(
        "too_large",
        parse_calendar_ics,
        _ics(*(_all_day(f"2026010{i}", None, "x") for i in range(1, 4))),
    )
    monkeypatch.setattr(ci, "MAX_DAYS", 5)
    refused("too_large", parse_calendar_ics, _ics(_all_day("20260101", "20260110", "x")))


def test_ics_whole_or_nothing_one_bad_event_refuses_the_file() -> None:
    good = [_all_day(f"202601{d:02d}", None, "Holiday") for d in range(1, 20)]
    refused("missing_start", parse_calendar_ics, _ics(*good, "SUMMARY:broken\r\n"))


def test_every_error_code_has_a_refusal_test() -> None:
    covered = {code for _, code, _ in CSV_REFUSALS} | {code for _, code in ICS_REFUSALS}
    # too_large and unknown_kind (default_kind) have their own tests above.
    assert covered | {"too_large", "unknown_kind"} == set(ERROR_CODES)


_ICS_LINES = [
    "DTSTART;VALUE=DATE:20260101",
    "DTSTART:20260101T100000",
    "DTSTART;VALUE=DATE:2026",
    "DTEND;VALUE=DATE:20260105",
    "DTEND:20251231",
    "DURATION:P3D",
    "DURATION:-P1D",
    "RRULE:FREQ=DAILY;COUNT=3",
    "RRULE:FREQ=WEEKLY",
    "RRULE:;;",
    "RRULE:FREQ=YEARLY;BYMONTH=13",
    "EXDATE:20260102",
    "EXDATE;VALUE=DATE:20260102",
    "RDATE:20260110",
    "RDATE;VALUE=PERIOD:20260101T000000Z/PT1H",
    "RECURRENCE-ID;VALUE=DATE:20260102",
    "RECURRENCE-ID:bad",
    "STATUS:CANCELLED",
    "CATEGORIES:Holiday,Break",
    "SUMMARY:Winter Break",
    "UID:1",
    "BEGIN:VALARM",
    "END:VALARM",
    "DTSTART;TZID=Nowhere/X:20260101T100000",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.sampled_from(_ICS_LINES), st.text(max_size=20)), max_size=8),
        max_size=4,
    )
)
def test_ics_never_crashes_on_event_shaped_text(events: list[list[str]]) -> None:
    body = "".join(
        "BEGIN:VEVENT\r\n" + "".join(line + "\r\n" for line in lines) + "END:VEVENT\r\n"
        for lines in events
    )
    try:
        days = parse_calendar_ics(f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n")
    except CalendarImportError as error:
        assert error.code in ERROR_CODES
    else:
        assert all(d.kind in KINDS for d in days)
