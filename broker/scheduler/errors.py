"""The scheduler's refusals: one class per rule, each with a stable ``code``.

Every class is a :class:`~broker.errors.BrokerError`, so the HTTP edge renders it as a
problem body (``code``, ``title``, and the detail: usually ``dates``, the local dates the
rule refused, and ``violations``, every rule a request broke). A refused request has
written nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from broker.errors import BrokerError, NotFound

_T = TypeVar("_T")


class SchedulingError(BrokerError):
    """A booking, change or set-up that breaks a scheduling rule."""

    code = "scheduling_error"
    http_status = 409

    def view(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.detail}


class BeforeBellWindow(SchedulingError):
    """A school-based session starting more than 90 minutes before that day's dismissal."""

    code = "before_bell_window"


class AfterSchoolWindow(SchedulingError):
    """A school-based session ending after the school's after-school window closes."""

    code = "after_school_window"


class NotSchoolDay(SchedulingError):
    """A school-based session on a weekday the school has no bell schedule for, or on a
    ``no_school`` day."""

    code = "not_school_day"


class HolidayInSeries(SchedulingError):
    """Occurrences on holidays or breaks (``dates`` names them); book with
    ``skip_holidays`` to create them cancelled instead."""

    code = "holiday_in_series"


class OutsideTerm(SchedulingError):
    """Occurrences before the offer's term starts or after it ends."""

    code = "outside_term"


class OutsideAvailability(SchedulingError):
    """A session outside every availability window the tutor's vendor published."""

    code = "outside_availability"


class OverlapTutor(SchedulingError):
    """The tutor already has a scheduled occurrence at that time."""

    code = "overlap_tutor"


class OverlapStudent(SchedulingError):
    """A student already has a scheduled occurrence at that time."""

    code = "overlap_student"


class GroupOverLimit(SchedulingError):
    """More students than the offer's group size limit."""

    code = "group_over_limit"


class AccommodationMissing(SchedulingError):
    """The tutor does not provide an accommodation (ASL, enlarged print, Braille) that a
    student needs."""

    code = "accommodation_missing"


class BelowDosage(SchedulingError):
    """A series with fewer sessions a week than the offer's minimum."""

    code = "below_min_sessions"


class SessionTooShort(SchedulingError):
    """A session shorter than the offer's session length."""

    code = "session_too_short"


class GroupMismatch(SchedulingError):
    """A student whose grade band, subject, language, school or enrolment does not fit
    the group."""

    code = "group_mismatch"


class BadRecurrence(SchedulingError):
    """RRULE text that does not parse, is not weekly/one-off, or yields no or too many
    occurrences."""

    code = "bad_recurrence"
    http_status = 400


class ParentLinkInvalid(SchedulingError):
    """A parent link that is malformed, not signed by the district, or unknown."""

    code = "link_invalid"
    http_status = 403


class ParentLinkExpired(SchedulingError):
    """A parent link past its expiry, already used, or revoked."""

    code = "link_expired"
    http_status = 410


class CalendarRejected(SchedulingError):
    """A school calendar import with bad rows; nothing was imported."""

    code = "calendar_rejected"
    http_status = 400


RULE_ERRORS: tuple[type[SchedulingError], ...] = (
    BeforeBellWindow,
    AfterSchoolWindow,
    NotSchoolDay,
    HolidayInSeries,
    OutsideTerm,
    OutsideAvailability,
    OverlapTutor,
    OverlapStudent,
    GroupOverLimit,
    AccommodationMissing,
    BelowDosage,
    SessionTooShort,
    GroupMismatch,
    BadRecurrence,
    ParentLinkInvalid,
    ParentLinkExpired,
    CalendarRejected,
)


def refuse(violations: list[SchedulingError]) -> None:
    """Raise the first violation, carrying every violation's code and dates in its
    ``violations`` detail; do nothing for an empty list."""
    if not violations:
        return
    first = violations[0]
    first.detail["violations"] = [
        {"code": v.code, "message": v.message, **{k: x for k, x in v.detail.items()
                                                   if k != "violations"}}
        for v in violations
    ]
    raise first


def must(found: _T | None, message: str, field: str) -> _T:
    """``found``, or :class:`~broker.errors.NotFound` naming ``field``."""
    if found is None:
        raise NotFound(message, field=field)
    return found
