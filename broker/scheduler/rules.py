"""The scheduling rules, pure: no I/O, no clock. Every check returns the violations it
found (typed :mod:`broker.scheduler.errors`, each naming its rule's code and the local
dates it refused); the caller refuses the whole request on the first list that is not
empty, so a series is booked whole or not at all.

Times: a series is a wall-clock time (minutes after local midnight) in an IANA zone,
expanded with :mod:`dateutil.rrule` over **naive local** datetimes and only then given
the zone with :mod:`zoneinfo`. So 15:30 stays 15:30 local on both sides of a
daylight-saving change (the UTC instant moves by an hour instead). A local time that does
not exist (the spring-forward gap) is refused rather than silently moved.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from broker.scheduler.errors import (
    AccommodationMissing,
    AfterSchoolWindow,
    BadRecurrence,
    BeforeBellWindow,
    BelowDosage,
    GroupOverLimit,
    HolidayInSeries,
    NotSchoolDay,
    OutsideAvailability,
    OutsideTerm,
    OverlapStudent,
    OverlapTutor,
    SchedulingError,
    SessionTooShort,
)

BELL_LEAD_MIN = 90  # a school-based session may start up to 90 minutes before dismissal
MAX_OCCURRENCES = 400  # more than a school year of five sessions a week
MAX_SESSION_MIN = 240
HOLIDAY_KINDS = frozenset({"holiday", "break"})
CALENDAR_KINDS = frozenset({"holiday", "break", "minimum_day", "no_school"})
ACCOMMODATIONS = frozenset({"asl", "enlarged_print", "braille"})
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)")
_RULE_TEXT = re.compile(r"^[A-Z0-9=;,:+-]{1,500}$")


# -- values ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Slot:
    """One candidate or booked occurrence: its local day and wall-clock start, its length,
    and the UTC instants those mean in the series' zone."""

    day: date
    start_min: int
    minutes: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Bell:
    """A weekday's dismissal (local minutes) and, on minimum days, the earlier one."""

    dismissal: int
    minimum_dismissal: int | None = None


@dataclass(frozen=True, slots=True)
class SchoolRules:
    """What a school-based booking is checked against at one school."""

    zone: str
    after_school_end: int
    bells: Mapping[int, Bell]  # weekday (0 = Monday) -> bell; missing: no school that day
    calendar: Mapping[date, str]  # dated kinds: holiday | break | minimum_day | no_school


@dataclass(frozen=True, slots=True)
class Availability:
    """A tutor's published hours in the tutor's zone: weekly windows, dated extra windows
    and dated absences (``None`` minutes: the whole day)."""

    zone: str
    weekly: Mapping[int, Sequence[tuple[int, int]]] = field(default_factory=dict)
    extra: Mapping[date, Sequence[tuple[int, int]]] = field(default_factory=dict)
    away: Mapping[date, Sequence[tuple[int, int] | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Busy:
    """An interval already booked for someone (a tutor or a student)."""

    starts_at: datetime
    ends_at: datetime
    occurrence_id: str


# -- parsing helpers ---------------------------------------------------------------------------
def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ValueError` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_hhmm(text: str) -> int:
    """``"15:30"`` -> 930 minutes after midnight; :class:`ValueError` if not ``HH:MM``."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return int(match.group(1)) * 60 + int(match.group(2))


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@lru_cache(maxsize=8192)
def local_instant(day: date, minute: int, zone: str) -> datetime:
    """The UTC instant of wall-clock ``minute`` on ``day`` in ``zone``; :class:`BadRecurrence`
    if that wall-clock time does not exist there (a spring-forward gap). In the autumn
    repeat the first (daylight) instance is taken. Memoised (a pure function of its
    arguments; the district's bookings repeat the same few times of day on the same
    days), refusals are not."""
    tz = zone_of(zone)
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
        raise BadRecurrence(
            f"{hhmm(minute)} does not exist on {day.isoformat()} in {zone}",
            dates=[day.isoformat()],
        )
    return instant


def slot(day: date, start_min: int, minutes: int, zone: str) -> Slot:
    """One occurrence at ``start_min`` local on ``day`` for ``minutes``."""
    starts = local_instant(day, start_min, zone)
    return Slot(day, start_min, minutes, starts, starts + timedelta(minutes=minutes))


# -- recurrence --------------------------------------------------------------------------------
def expand(rule: str, first_day: date, start_min: int, minutes: int, zone: str,
           *, last_day: date) -> list[Slot]:
    """The occurrences of RRULE ``rule`` (``FREQ=WEEKLY`` with ``BYDAY``/``COUNT``/``UNTIL``,
    or a one-off ``COUNT=1``) starting on ``first_day`` at ``start_min`` local time in
    ``zone``, none after ``last_day``.

    Refused (:class:`BadRecurrence`): unparsable text, another frequency, no occurrence,
    more than :data:`MAX_OCCURRENCES`, a length outside 1..240 minutes.
    """
    text = rule.strip().upper().removeprefix("RRULE:")
    if not _RULE_TEXT.match(text):
        raise BadRecurrence("rrule must be RFC 5545 RRULE text", rrule=rule[:100])
    freq = _FREQ.search(text)
    if freq is None or freq.group(1) not in ("WEEKLY", "DAILY"):
        raise BadRecurrence("only weekly series (or COUNT=1 appointments) are booked")
    if freq.group(1) == "DAILY" and "COUNT=1" not in text.split(";"):
        raise BadRecurrence("only weekly series (or COUNT=1 appointments) are booked")
    if not 1 <= minutes <= MAX_SESSION_MIN or not 0 <= start_min < 24 * 60:
        raise BadRecurrence("a session lasts 1 to 240 minutes and starts within the day")
    zone_of(zone)
    return [slot(day, start_min, minutes, zone)
            for day in _local_days(text, first_day, start_min, last_day)]


@lru_cache(maxsize=1024)
def _local_days(text: str, first_day: date, start_min: int, last_day: date) -> tuple[date, ...]:
    """The local days of RRULE ``text`` from ``first_day`` at ``start_min`` up to
    ``last_day`` (memoised: many series share a rule and a first day)."""
    start = datetime.combine(first_day, time(start_min // 60, start_min % 60))
    try:
        recurrence = rrulestr(text, dtstart=start, ignoretz=True)
    except (ValueError, TypeError) as exc:
        raise BadRecurrence(f"rrule does not parse: {exc}") from exc
    out: list[date] = []
    for when in recurrence:
        if when.date() > last_day:
            break
        if len(out) == MAX_OCCURRENCES:
            raise BadRecurrence(f"a series has at most {MAX_OCCURRENCES} occurrences")
        out.append(when.date())
    if not out:
        raise BadRecurrence("the rule gives no occurrence inside the term")
    return tuple(out)


def weekly_rule(weekdays: Iterable[int], *, count: int | None = None,
                until: date | None = None) -> str:
    """RRULE text for the given weekdays (0 = Monday), bounded by ``count`` or ``until``."""
    days = ",".join(WEEKDAYS[d] for d in sorted(set(weekdays)))
    text = f"FREQ=WEEKLY;BYDAY={days}"
    if count is not None:
        text += f";COUNT={count}"
    if until is not None:
        text += f";UNTIL={until.strftime('%Y%m%d')}T235959"
    return text


# -- the rules ---------------------------------------------------------------------------------
def _dates(slots: Iterable[Slot]) -> list[str]:
    return sorted({s.day.isoformat() for s in slots})


def check_term(slots: Sequence[Slot], term_start: date, term_end: date) -> list[SchedulingError]:
    """``outside_term``: every occurrence within the offer's term."""
    bad = [s for s in slots if not term_start <= s.day <= term_end]
    if not bad:
        return []
    return [OutsideTerm(
        f"{len(bad)} occurrence(s) outside the term {term_start} to {term_end}",
        dates=_dates(bad),
    )]


def holidays_in(slots: Sequence[Slot], calendar: Mapping[date, str]) -> list[Slot]:
    """The occurrences that fall on a holiday or a break."""
    return [s for s in slots if calendar.get(s.day) in HOLIDAY_KINDS]


def check_holidays(slots: Sequence[Slot], calendar: Mapping[date, str]) -> list[SchedulingError]:
    """``holiday_in_series``: no occurrence on a holiday or break (the caller passes only
    the occurrences it has not already agreed to skip)."""
    hit = holidays_in(slots, calendar)
    if not hit:
        return []
    return [HolidayInSeries(
        f"{len(hit)} occurrence(s) fall on holidays or breaks; book with skip_holidays "
        "to create them cancelled",
        dates=_dates(hit),
    )]


def check_school_window(slots: Sequence[Slot], school: SchoolRules) -> list[SchedulingError]:
    """School-based sessions: only on school days (``not_school_day``), starting no earlier
    than 90 minutes before that day's dismissal (``before_bell_window``; a minimum day uses
    its own dismissal) and ending by the after-school window's end (``after_school_window``).
    Holidays and breaks are :func:`check_holidays`' business and skipped here."""
    not_school: list[Slot] = []
    early: list[Slot] = []
    late: list[Slot] = []
    for s in slots:
        kind = school.calendar.get(s.day)
        if kind in HOLIDAY_KINDS:
            continue
        bell = school.bells.get(s.day.weekday())
        if bell is None or kind == "no_school":
            not_school.append(s)
            continue
        dismissal = bell.dismissal
        if kind == "minimum_day" and bell.minimum_dismissal is not None:
            dismissal = bell.minimum_dismissal
        if s.start_min < dismissal - BELL_LEAD_MIN:
            early.append(s)
        if s.start_min + s.minutes > school.after_school_end:
            late.append(s)
    out: list[SchedulingError] = []
    if early:
        out.append(BeforeBellWindow(
            f"starts more than {BELL_LEAD_MIN} minutes before dismissal", dates=_dates(early)
        ))
    if late:
        out.append(AfterSchoolWindow(
            f"ends after the after-school window closes at {hhmm(school.after_school_end)}",
            dates=_dates(late),
        ))
    if not_school:
        out.append(NotSchoolDay("not a school day", dates=_dates(not_school)))
    return out


def _inside(start: int, end: int, windows: Iterable[tuple[int, int] | None]) -> bool:
    return any(w is None or (w[0] <= start and end <= w[1]) for w in windows)


def _touches(start: int, end: int, windows: Iterable[tuple[int, int] | None]) -> bool:
    return any(w is None or (w[0] < end and start < w[1]) for w in windows)


def check_availability(slots: Sequence[Slot], hours: Availability) -> list[SchedulingError]:
    """``outside_availability``: each occurrence inside one of the tutor's weekly windows or
    a dated extra window (read in the tutor's zone), and not on a dated absence."""
    tz = zone_of(hours.zone)
    bad: list[Slot] = []
    for s in slots:
        local = s.starts_at.astimezone(tz)
        day = local.date()
        start = local.hour * 60 + local.minute
        end = start + s.minutes
        windows = [*hours.weekly.get(day.weekday(), ()), *hours.extra.get(day, ())]
        if not _inside(start, end, windows) or _touches(start, end, hours.away.get(day, ())):
            bad.append(s)
    if not bad:
        return []
    return [OutsideAvailability("outside the tutor's published hours", dates=_dates(bad))]


def overlapping(slots: Sequence[Slot], busy: Sequence[Busy]) -> list[Slot]:
    """The candidate occurrences that overlap any busy interval (end-exclusive: a session
    may start when the previous one ends). Busy intervals last at most
    :data:`MAX_SESSION_MIN`, so only those starting that long before a slot can reach it."""
    ordered = sorted(busy, key=lambda b: b.starts_at)
    starts = [b.starts_at for b in ordered]
    reach = timedelta(minutes=MAX_SESSION_MIN)
    hit: list[Slot] = []
    for s in slots:
        i = bisect.bisect_left(starts, s.ends_at) - 1
        while i >= 0 and ordered[i].starts_at > s.starts_at - reach:
            if ordered[i].ends_at > s.starts_at:
                hit.append(s)
                break
            i -= 1
    return hit


def check_overlaps(slots: Sequence[Slot], tutor_busy: Sequence[Busy],
                   student_busy: Mapping[str, Sequence[Busy]]) -> list[SchedulingError]:
    """``overlap_tutor`` / ``overlap_student``: nobody booked twice at once."""
    out: list[SchedulingError] = []
    clash = overlapping(slots, tutor_busy)
    if clash:
        out.append(OverlapTutor("the tutor is already booked then", dates=_dates(clash)))
    students: list[str] = []
    dates: set[str] = set()
    for student, busy in sorted(student_busy.items()):
        clash = overlapping(slots, busy)
        if clash:
            students.append(student)
            dates.update(_dates(clash))
    if students:
        out.append(OverlapStudent(
            "a student is already booked then", dates=sorted(dates), students=students
        ))
    return out


def check_group_size(size: int, limit: int) -> list[SchedulingError]:
    """``group_over_limit``: at most the offer's group size limit."""
    if size <= limit:
        return []
    return [GroupOverLimit(f"{size} students is over the group limit of {limit}",
                           size=size, limit=limit)]


def check_accommodations(needs: Mapping[str, Iterable[str]],
                         provided: Iterable[str]) -> list[SchedulingError]:
    """``accommodation_missing``: the tutor provides every accommodation a student needs
    (``needs``: student -> accommodation codes)."""
    have = set(provided)
    missing = sorted({a for wanted in needs.values() for a in wanted} - have)
    if not missing:
        return []
    who = sorted(s for s, wanted in needs.items() if set(wanted) - have)
    return [AccommodationMissing(
        f"the tutor does not provide {', '.join(missing)}", missing=missing, students=who
    )]


def check_dosage(slots: Sequence[Slot], *, session_minutes: int, min_per_week: int,
                 one_off: bool) -> list[SchedulingError]:
    """``session_too_short``: sessions at least the offer's length; ``below_min_sessions``:
    a series (not a one-off appointment) reaches the offer's sessions per week in its
    fullest ISO week."""
    out: list[SchedulingError] = []
    if slots and slots[0].minutes < session_minutes:
        out.append(SessionTooShort(
            f"sessions last at least {session_minutes} minutes", minutes=slots[0].minutes
        ))
    if not one_off and slots:
        weekly = Counter(s.day.isocalendar()[:2] for s in slots)
        most = max(weekly.values())
        if most < min_per_week:
            out.append(BelowDosage(
                f"{most} session(s) a week is below the programme's {min_per_week}",
                per_week=most, minimum=min_per_week,
            ))
    return out


# -- attendance --------------------------------------------------------------------------------
def attendance_status(starts_at: datetime, ends_at: datetime, joined_at: datetime | None,
                      grace: timedelta) -> str:
    """``present`` if the student joined by ``starts_at + grace``, ``late`` if later but
    before the end, else ``absent``."""
    if joined_at is None or joined_at >= ends_at:
        return "absent"
    return "present" if joined_at <= starts_at + grace else "late"


# -- a student leaving a series ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Split:
    """Where a series is cut for a student who leaves or joins it from ``cut`` on: ``tail`` (the
    occurrence ids that go on without them, in booked order), ``scheduled`` (the tail's
    scheduled ones) and ``stuck`` (sessions moved across the cut, which refuse the cut)."""

    tail: list[str]
    scheduled: list[str]
    stuck: list[str]


def leaving_cut(day: date, zone: str, now: datetime) -> datetime:
    """The instant a student leaves or joins from: the start of local ``day`` in ``zone``, or
    ``now`` when that is later (a session under way or over stays as it was)."""
    return max(datetime.combine(day, time(), tzinfo=zone_of(zone)).astimezone(UTC), now)


def split_for_leaving(occurrences: Sequence[Mapping[str, Any]], cut: datetime) -> Split:
    """Cut a series' occurrences (rows with ``id``, ``status``, ``starts_at``,
    ``original_starts_at``) at ``cut``. The tail is every occurrence booked to start at or
    after ``cut`` and, before them, the ones moved to start at or after ``cut``, so each
    side stays one run of the series' rule (what its calendar feed expands). ``stuck``:
    scheduled sessions on the wrong side of the cut after a move, and held ones in the
    tail; the caller refuses the cut while there are any (move or cancel them first)."""
    ordered = sorted(occurrences, key=lambda o: (o["original_starts_at"], o["id"]))
    k = next((i for i, o in enumerate(ordered) if o["original_starts_at"] >= cut),
             len(ordered))
    while k > 0 and ordered[k - 1]["status"] == "scheduled" and ordered[k - 1][
            "starts_at"] >= cut:
        k -= 1
    head, tail = ordered[:k], ordered[k:]
    stuck = [o["id"] for o in head if o["status"] == "scheduled" and o["starts_at"] >= cut]
    stuck += [o["id"] for o in tail if o["status"] == "held" or (
        o["status"] == "scheduled" and o["starts_at"] < cut)]
    return Split([o["id"] for o in tail],
                 [o["id"] for o in tail if o["status"] == "scheduled"], stuck)
