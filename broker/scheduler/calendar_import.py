"""School calendars in: a CSV a district office prepares, or an iCalendar (``.ics``) export.

Both parsers are pure (no database, no network, no clock) and whole-or-nothing: they return
the complete list of :class:`CalendarDay` or raise one :class:`CalendarImportError` naming the
rule (``code``), what is wrong (``message``) and, for CSV, the line. Nothing is returned for
a file that has any bad row, so a caller never stores half a calendar.

Error codes (``CalendarImportError.code``), all in :data:`ERROR_CODES`:

- ``too_large``: the file, its row count, one event's recurrence or the expanded day count
  is over a limit (:data:`MAX_CSV_CHARS`, :data:`MAX_CSV_ROWS`, :data:`MAX_ICS_BYTES`,
  :data:`MAX_ICS_EVENTS`, :data:`MAX_DAYS`).
- ``missing_column``: the CSV has no header, or the header lacks ``kind`` or both ``date``
  and the pair ``start_date``/``end_date``.
- ``bad_csv``: the CSV cannot be read (an unterminated quote, text after a closing
  quote), or a row has more fields than the header.
- ``bad_date``: a date that is neither ``YYYY-MM-DD`` nor ``MM/DD/YYYY``, is not a real
  date, is outside years :data:`MIN_YEAR`-:data:`MAX_YEAR`, or is missing.
- ``unknown_kind``: a kind that is not one of :data:`KINDS` (also a bad ``default_kind``).
- ``bad_label``: a label longer than :data:`MAX_LABEL_CHARS` or with control characters.
- ``bad_range``: an end before its start, a range over :data:`MAX_RANGE_DAYS` days, or a row
  giving both ``date`` and a ``start_date``/``end_date`` range.
- ``duplicate_date``: (CSV) the same date twice with different kinds.
- ``bad_ics``: the data is not an iCalendar stream holding a VCALENDAR.
- ``bad_event``: a VEVENT with a malformed DTSTART, DTEND, DURATION, EXDATE, RDATE,
  RECURRENCE-ID or STATUS, one of DTSTART, DTEND, DURATION, RECURRENCE-ID, STATUS, UID,
  SUMMARY given twice, a DTSTART that is not a date, or a DATE start with an end that
  is not a DATE.
- ``missing_start``: a VEVENT without DTSTART.
- ``bad_rrule``: an RRULE that ``dateutil`` cannot read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import icalendar
from dateutil import rrule as du_rrule

KINDS: tuple[str, ...] = ("holiday", "break", "minimum_day", "no_school", "school_day")
"""The kinds of calendar day. ``minimum_day`` is a school day with an early dismissal."""

ERROR_CODES: tuple[str, ...] = (
    "too_large",
    "missing_column",
    "bad_csv",
    "bad_date",
    "unknown_kind",
    "bad_label",
    "bad_range",
    "duplicate_date",
    "bad_ics",
    "bad_event",
    "missing_start",
    "bad_rrule",
)

MAX_CSV_CHARS = 1_000_000
MAX_CSV_ROWS = 5_000
MAX_ICS_BYTES = 5_000_000
MAX_ICS_EVENTS = 5_000
MAX_RANGE_DAYS = 400
MAX_LABEL_CHARS = 200
MAX_DAYS = 5_000
"""At most this many distinct days in one import (over 13 years of every day)."""
MIN_YEAR = 2000
MAX_YEAR = 2100
RECURRENCE_YEARS = 3
"""An all-day RRULE without COUNT/UNTIL (or with a far one) is expanded for this many years
from its DTSTART, or inside ``window`` when one is given."""
MAX_OCCURRENCES_PER_EVENT = 1_000


class CalendarImportError(ValueError):
    """A calendar file was refused as a whole. ``code`` is one of :data:`ERROR_CODES`;
    ``line`` is the 1-based physical line of a CSV row (``None`` when not known)."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        self.code = code
        self.message = message
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{code}: {where}{message}")


@dataclass(frozen=True)
class CalendarDay:
    """One date of a school's calendar. ``kind`` is one of :data:`KINDS`."""

    date: dt.date
    kind: str
    label: str


@dataclass(frozen=True)
class IcsImport:
    """The result of :func:`import_calendar_ics`: the days, and what was left out and why."""

    days: tuple[CalendarDay, ...]
    ignored_timed: int
    """VEVENTs with a DATE-TIME start (a meeting, a game): not school-day information."""
    ignored_cancelled: int
    """VEVENTs (or overrides) with ``STATUS:CANCELLED``."""
    truncated_recurrences: int
    """Recurring events whose expansion was cut at the window or horizon."""


# --------------------------------------------------------------------------- CSV

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def _parse_date(text: str, line: int, column: str) -> dt.date:
    value = text.strip()
    iso = _ISO_DATE.fullmatch(value)
    us = _US_DATE.fullmatch(value)
    if iso:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif us:
        month, day, year = int(us[1]), int(us[2]), int(us[3])
    else:
        shown = value[:40] or "(empty)"
        raise CalendarImportError(
            "bad_date", f"{column} {shown!r} is not YYYY-MM-DD or MM/DD/YYYY", line
        )
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CalendarImportError(
            "bad_date", f"{column} {value!r}: year outside {MIN_YEAR}-{MAX_YEAR}", line
        )
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CalendarImportError(
            "bad_date", f"{column} {value!r} is not a real date", line
        ) from None


def _normalise_kind(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().casefold())


def _check_kind(text: str, line: int | None) -> str:
    kind = _normalise_kind(text)
    if kind not in KINDS:
        raise CalendarImportError(
            "unknown_kind", f"kind {text.strip()[:40]!r} is not one of {', '.join(KINDS)}", line
        )
    return kind


def _check_label(text: str, line: int | None) -> str:
    label = text.strip()
    if len(label) > MAX_LABEL_CHARS:
        raise CalendarImportError(
            "bad_label", f"label is {len(label)} characters, over {MAX_LABEL_CHARS}", line
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in label):
        raise CalendarImportError("bad_label", "label contains control characters", line)
    return label


def _date_range(start: dt.date, end: dt.date, line: int | None) -> Iterator[dt.date]:
    """Each date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise CalendarImportError("bad_range", f"end {end} is before start {start}", line)
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise CalendarImportError(
            "bad_range", f"range {start}..{end} is {days} days, over {MAX_RANGE_DAYS}", line
        )
    for offset in range(days):
        yield start + dt.timedelta(days=offset)


def parse_calendar_csv(text: str) -> list[CalendarDay]:
    """Parse a school calendar CSV into one :class:`CalendarDay` per date, sorted by date.

    The first non-blank line is a header (names case-insensitive, in any order). Either a
    ``date`` column, or ``start_date`` and ``end_date`` columns (an inclusive range, at most
    :data:`MAX_RANGE_DAYS` days, expanding to each date), or both (each row then fills one
    or the other); a ``kind`` column (one of :data:`KINDS`; case, spaces and hyphens are
    forgiven, so ``Minimum Day`` is ``minimum_day``); an optional ``label`` column. Other
    columns are ignored. Dates are ISO ``YYYY-MM-DD`` or US ``MM/DD/YYYY`` (month first,
    one- or two-digit month and day). Blank lines are skipped; a UTF-8 BOM and CRLF line ends
    are tolerated.

    The same date listed twice with the same kind is kept once (the first label wins); with
    a different kind it is refused (``duplicate_date``), also when a one-day row falls inside
    a range row: the file must say what the day is.

    Whole or nothing: any bad row raises :class:`CalendarImportError` with the row's line and
    the rule's code (see the module docstring); nothing is returned for a file with any bad
    row. Limits: :data:`MAX_CSV_CHARS` characters, :data:`MAX_CSV_ROWS` rows,
    :data:`MAX_DAYS` expanded days.
    """
    if len(text) > MAX_CSV_CHARS:
        raise CalendarImportError(
            "too_large", f"file is {len(text)} characters, over {MAX_CSV_CHARS}"
        )
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    columns: dict[str, int] = {}
    days: dict[dt.date, tuple[CalendarDay, int]] = {}
    rows = 0
    previous_end = 0
    try:
        for record in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(field.strip() for field in record):
                continue
            if header is None:
                header = [name.strip().casefold() for name in record]
                header_line = line
                columns = {name: i for i, name in reversed(list(enumerate(header))) if name}
                _check_header(columns, line)
                continue
            rows += 1
            if rows > MAX_CSV_ROWS:
                raise CalendarImportError("too_large", f"more than {MAX_CSV_ROWS} rows", line)
            if len(record) > len(header):
                raise CalendarImportError(
                    "bad_csv",
                    f"{len(record)} fields but the header (line {header_line}) has {len(header)}",
                    line,
                )
            for day in _csv_row_days(record, columns, line):
                _merge_csv_day(days, day, line)
                if len(days) > MAX_DAYS:
                    raise CalendarImportError("too_large", f"more than {MAX_DAYS} days", line)
    except csv.Error as exc:
        raise CalendarImportError("bad_csv", f"unreadable CSV: {exc}", previous_end + 1) from exc
    if header is None:
        raise CalendarImportError("missing_column", "no header line (date,kind,label)", 1)
    return sorted((day for day, _ in days.values()), key=lambda d: d.date)


def _check_header(columns: dict[str, int], line: int) -> None:
    if "kind" not in columns:
        raise CalendarImportError("missing_column", "the header has no 'kind' column", line)
    has_range = "start_date" in columns and "end_date" in columns
    if "date" not in columns and not has_range:
        raise CalendarImportError(
            "missing_column",
            "the header needs a 'date' column or 'start_date' and 'end_date' columns",
            line,
        )


def _field(record: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None or index >= len(record):
        return ""
    return record[index]


def _csv_row_days(record: list[str], columns: dict[str, int], line: int) -> Iterator[CalendarDay]:
    kind = _check_kind(_field(record, columns, "kind"), line)
    label = _check_label(_field(record, columns, "label"), line)
    single = _field(record, columns, "date").strip()
    start_text = _field(record, columns, "start_date").strip()
    end_text = _field(record, columns, "end_date").strip()
    if single and (start_text or end_text):
        raise CalendarImportError(
            "bad_range", "give either date or start_date/end_date, not both", line
        )
    if single or "start_date" not in columns:
        day = _parse_date(single, line, "date")
        yield CalendarDay(day, kind, label)
        return
    start = _parse_date(start_text, line, "start_date")
    end = _parse_date(end_text, line, "end_date")
    for day in _date_range(start, end, line):
        yield CalendarDay(day, kind, label)


def _merge_csv_day(
    days: dict[dt.date, tuple[CalendarDay, int]], day: CalendarDay, line: int
) -> None:
    seen = days.get(day.date)
    if seen is None:
        days[day.date] = (day, line)
        return
    first, first_line = seen
    if first.kind != day.kind:
        raise CalendarImportError(
            "duplicate_date",
            f"{day.date} is {day.kind!r} here but {first.kind!r} on line {first_line}",
            line,
        )


# --------------------------------------------------------------------------- iCalendar


def _fold(text: str) -> str:
    """Lower-case, accents removed, so Spanish summaries match plain keywords."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Checked in order: the first pattern that matches decides. "Winter Break - No School" is a
# break; "Veterans Day (No School)" a holiday; "Last Day of School - Minimum Day" a minimum day.
_KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "minimum_day",
        re.compile(
            r"\b(minimum[\s_-]*days?|min[\s_-]*day|early (dismissal|release)|shortened day"
            r"|banking day|dia minimo|salida temprana)\b"
        ),
    ),
    ("break", re.compile(r"\b(break|recess|vacation|vacaciones|receso)\b")),
    (
        "holiday",
        re.compile(
            r"\b(holidays?|dia festivo|feriado|new year'?s|martin luther king|mlk|presidents'?"
            r"|lincoln|washington|cesar chavez|memorial day|juneteenth|independence day"
            r"|labor day|veterans'? day|thanksgiving|christmas|admission day|indigenous peoples"
            r"|columbus day)\b"
        ),
    ),
    (
        "no_school",
        re.compile(
            r"\b(no[\s_-]*school|no students|pupil[\s-]*free|non[\s-]*student day"
            r"|professional development|staff development|teacher work ?day|no hay clases"
            r"|sin clases)\b"
        ),
    ),
    (
        "school_day",
        re.compile(
            r"\b(school[\s_-]*days?|first day of (school|instruction)|last day of school"
            r"|instruction (begins|resumes)|(school|classes) resumes?|primer dia de clases)\b"
        ),
    ),
)


def guess_kind(categories: Iterable[str], summary: str, default_kind: str) -> str:
    """The kind of an all-day event: a category naming a kind (``minimum_day``, ``Minimum
    Day``) wins, then keywords in the categories, then keywords in the summary (English and
    Spanish), else ``default_kind``."""
    cats = [str(category) for category in categories]
    for category in cats:
        kind = _normalise_kind(category)
        if kind in KINDS:
            return kind
    for text in [*cats, summary]:
        folded = _fold(text)
        for kind, pattern in _KIND_PATTERNS:
            if pattern.search(folded):
                return kind
    return default_kind


_EVENT_PROPERTIES = (
    "DTSTART",
    "DTEND",
    "DURATION",
    "EXDATE",
    "RDATE",
    "RRULE",
    "RECURRENCE-ID",
    "STATUS",
)

_SINGLETONS = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "STATUS", "UID", "SUMMARY")

# More closed wins when two events of an .ics cover the same date.
_PRECEDENCE = {"holiday": 4, "no_school": 3, "break": 2, "minimum_day": 1, "school_day": 0}


def _event_name(event: icalendar.Event) -> str:
    summary = str(event.get("SUMMARY", "")).strip()[:60]
    uid = str(event.get("UID", "")).strip()[:80]
    return f"VEVENT {summary!r}" + (f" (UID {uid})" if uid else "")


def _clean_label(summary: str) -> str:
    """The SUMMARY as a label: control characters blanked, cut at :data:`MAX_LABEL_CHARS`."""
    blanked = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in summary)
    return blanked[:MAX_LABEL_CHARS].strip()


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value  # type: ignore[no-any-return]


def import_calendar_ics(
    data: bytes | str,
    *,
    default_kind: str = "holiday",
    window: tuple[dt.date, dt.date] | None = None,
) -> IcsImport:
    """Parse an iCalendar export (Google, Outlook, Apple) into calendar days, with counts of
    what was ignored. :func:`parse_calendar_ics` returns just the days.

    - All-day VEVENTs (``DTSTART;VALUE=DATE``) become one :class:`CalendarDay` per date:
      DTEND is exclusive (a missing DTEND, or one equal to DTSTART, is one day; a DURATION
      of whole days is honoured); multi-day events expand, at most :data:`MAX_RANGE_DAYS`.
    - RRULE'd all-day events expand with ``dateutil.rrule``, with RDATE dates added and
      EXDATE dates removed; an override (a VEVENT with the same UID and a RECURRENCE-ID)
      replaces its occurrence. Expansion stops at ``window``'s end or, without a window,
      :data:`RECURRENCE_YEARS` years after DTSTART, and at
      :data:`MAX_OCCURRENCES_PER_EVENT` (counted in ``truncated_recurrences``).
    - The kind comes from :func:`guess_kind` (CATEGORIES, then SUMMARY, else
      ``default_kind``); the label is the SUMMARY (control characters blanked, cut at
      :data:`MAX_LABEL_CHARS`, never refused).
    - Ignored and counted: timed events (DATE-TIME DTSTART) and ``STATUS:CANCELLED`` events.
      Ignored silently: other components (VTODO, VTIMEZONE, ...), days outside ``window``.
    - Two events on one date: the more closed kind wins (holiday > no_school > break >
      minimum_day > school_day), keeping that event's label; an export routinely holds a
      holiday inside a break.

    Whole or nothing: malformed data raises :class:`CalendarImportError` (``bad_ics``,
    ``bad_event``, ``missing_start``, ``bad_range``, ``bad_rrule``, ``too_large``,
    ``unknown_kind`` for a bad ``default_kind``); the line is not known (``None``) and the
    message names the event's SUMMARY and UID.
    """
    default_kind = _check_kind(default_kind, None)
    if window is not None and window[1] < window[0]:
        raise CalendarImportError("bad_range", f"window end {window[1]} before {window[0]}")
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_ICS_BYTES:
        raise CalendarImportError("too_large", f"file is {size} bytes, over {MAX_ICS_BYTES}")
    events = _ics_events(data)
    if len(events) > MAX_ICS_EVENTS:
        raise CalendarImportError("too_large", f"{len(events)} events, over {MAX_ICS_EVENTS}")

    overridden: dict[str, set[dt.date]] = {}
    for event in events:
        _check_event_errors(event)
        if "RECURRENCE-ID" in event:
            uid = str(event.get("UID", ""))
            overridden.setdefault(uid, set()).add(_as_date(event.decoded("RECURRENCE-ID")))

    chosen: dict[dt.date, CalendarDay] = {}
    timed = cancelled = truncated = 0
    for event in events:
        if "DTSTART" not in event:
            raise CalendarImportError("missing_start", f"{_event_name(event)} has no DTSTART")
        start = event.decoded("DTSTART")
        if isinstance(start, dt.datetime):
            timed += 1
            continue
        if not isinstance(start, dt.date):
            raise CalendarImportError(
                "bad_event", f"{_event_name(event)}: DTSTART is neither a date nor a date-time"
            )
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            cancelled += 1
            continue
        length = _all_day_length(event, start)
        summary = str(event.get("SUMMARY", "")).strip()
        label = _clean_label(summary)
        kind = guess_kind(event.categories if "CATEGORIES" in event else (), summary, default_kind)
        if "RRULE" in event and "RECURRENCE-ID" not in event:
            skip = overridden.get(str(event.get("UID", "")), set())
            starts, cut = _expand_all_day(event, start, skip, window)
            truncated += cut
        else:
            starts = [start]
        for first in starts:
            for offset in range(length):
                day = first + dt.timedelta(days=offset)
                if window is not None and not window[0] <= day <= window[1]:
                    continue
                _merge_ics_day(chosen, CalendarDay(day, kind, label))
                if len(chosen) > MAX_DAYS:
                    raise CalendarImportError("too_large", f"more than {MAX_DAYS} days")
    days = tuple(sorted(chosen.values(), key=lambda d: d.date))
    return IcsImport(days, timed, cancelled, truncated)


def parse_calendar_ics(
    data: bytes | str,
    *,
    default_kind: str = "holiday",
    window: tuple[dt.date, dt.date] | None = None,
) -> list[CalendarDay]:
    """The days of an iCalendar export, sorted by date; see :func:`import_calendar_ics` for
    the rules, what is ignored and the error codes. Whole or nothing."""
    return list(import_calendar_ics(data, default_kind=default_kind, window=window).days)


def _ics_events(data: bytes | str) -> list[icalendar.Event]:
    if isinstance(data, bytes):
        data = data.removeprefix(b"\xef\xbb\xbf")
    else:
        data = data.removeprefix("\ufeff")
    if not data.strip():
        raise CalendarImportError("bad_ics", "the file is empty")
    try:
        components = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception as exc:  # the library's parse errors are not one type; all mean bad_ics
        raise CalendarImportError("bad_ics", f"not an iCalendar file: {str(exc)[:200]}") from exc
    calendars = [c for c in components if c.name == "VCALENDAR"]
    if not calendars:
        raise CalendarImportError("bad_ics", "no VCALENDAR in the file")
    events: list[icalendar.Event] = []
    for calendar in calendars:
        events.extend(e for e in calendar.walk("VEVENT") if isinstance(e, icalendar.Event))
    return events


def _check_event_errors(event: icalendar.Event) -> None:
    for name in _SINGLETONS:
        value = event.get(name)
        if isinstance(value, list):
            raise CalendarImportError(
                "bad_event", f"{_event_name(event)}: {name} appears {len(value)} times"
            )
    for name, problem in getattr(event, "errors", []):
        if str(name).upper() in _EVENT_PROPERTIES:
            code = "bad_rrule" if str(name).upper() == "RRULE" else "bad_event"
            raise CalendarImportError(
                code, f"{_event_name(event)}: malformed {name}: {str(problem)[:120]}"
            )
    for name in _EVENT_PROPERTIES:
        if name == "RRULE" or name not in event:
            continue
        try:
            event.decoded(name)
        except Exception as exc:  # a broken value surfaces on access; any failure is bad_event
            raise CalendarImportError(
                "bad_event", f"{_event_name(event)}: malformed {name}: {str(exc)[:120]}"
            ) from exc


def _all_day_length(event: icalendar.Event, start: dt.date) -> int:
    """Days an all-day event covers (DTEND exclusive)."""
    if "DTEND" in event:
        end = event.decoded("DTEND")
        if isinstance(end, dt.datetime) or not isinstance(end, dt.date):
            raise CalendarImportError(
                "bad_event", f"{_event_name(event)}: a DATE start needs a DATE end"
            )
        days: int = (end - start).days
        length = max(days, 1) if days >= 0 else days
    elif "DURATION" in event:
        duration = event.decoded("DURATION")
        if not isinstance(duration, dt.timedelta):
            raise CalendarImportError("bad_event", f"{_event_name(event)}: bad DURATION")
        length = max(duration.days, 1) if duration >= dt.timedelta(0) else -1
        # DURATION:PT0S or PT1H on a DATE start still marks that one day.
    else:
        length = 1
    if length < 1:
        raise CalendarImportError("bad_range", f"{_event_name(event)} ends before it starts")
    if length > MAX_RANGE_DAYS:
        raise CalendarImportError(
            "bad_range", f"{_event_name(event)} is {length} days, over {MAX_RANGE_DAYS}"
        )
    return length


_UNTIL_DATETIME = re.compile(r"(UNTIL=\d{8})T\d{6}Z?", re.IGNORECASE)


def _expand_all_day(
    event: icalendar.Event,
    start: dt.date,
    skip: set[dt.date],
    window: tuple[dt.date, dt.date] | None,
) -> tuple[list[dt.date], int]:
    """The occurrence dates of a recurring all-day event, and 1 if the expansion was cut."""
    rules = event.rrules
    dtstart = dt.datetime(start.year, start.month, start.day)
    horizon = (
        dt.datetime.combine(window[1], dt.time())
        if window is not None
        else dtstart + dt.timedelta(days=366 * RECURRENCE_YEARS)
    )
    # Occurrences that end before the window are passed over without counting.
    earliest = (
        dt.datetime.combine(window[0], dt.time()) - dt.timedelta(days=MAX_RANGE_DAYS)
        if window is not None
        else dtstart
    )
    ruleset = du_rrule.rruleset()
    try:
        for rule in rules:
            text = _UNTIL_DATETIME.sub(r"\1", rule.to_ical().decode("ascii"))
            ruleset.rrule(du_rrule.rrulestr(text, dtstart=dtstart))  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CalendarImportError(
            "bad_rrule", f"{_event_name(event)}: unreadable RRULE: {str(exc)[:120]}"
        ) from exc
    if "RDATE" in event:
        for extra in event.rdates:
            value = extra[0] if isinstance(extra, tuple) else extra
            day = _as_date(value)
            ruleset.rdate(dt.datetime(day.year, day.month, day.day))
    for excluded in [*event.exdates, *skip]:
        day = _as_date(excluded)
        ruleset.exdate(dt.datetime(day.year, day.month, day.day))
    dates: list[dt.date] = []
    cut = 0
    try:
        for occurrence in ruleset:
            if occurrence > horizon or len(dates) >= MAX_OCCURRENCES_PER_EVENT:
                cut = 1
                break
            if occurrence < earliest:
                continue
            dates.append(occurrence.date())
    except (ValueError, TypeError, OverflowError) as exc:
        raise CalendarImportError(
            "bad_rrule", f"{_event_name(event)}: RRULE cannot be expanded: {str(exc)[:120]}"
        ) from exc
    return dates, cut


def _merge_ics_day(chosen: dict[dt.date, CalendarDay], day: CalendarDay) -> None:
    seen = chosen.get(day.date)
    if seen is None or _PRECEDENCE[day.kind] > _PRECEDENCE[seen.kind]:
        chosen[day.date] = day
