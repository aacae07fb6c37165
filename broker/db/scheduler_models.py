"""The scheduler's tables (migration ``0008``): programmes, school calendars, availability,
enrolments, groups, series, occurrences, their history, attendance, parent links and
calendar feeds. Same :data:`~broker.db.models.metadata` as the broker's tables.

Conventions:

* Instants are :class:`~broker.db.types.UTCDateTime` (stored UTC, read back aware UTC).
* Wall-clock times of a school or tutor (dismissal, availability, a series' start) are
  **minutes after local midnight** (``SmallInteger``), always read with the row's IANA zone
  (``timezone`` column or the school's :class:`SchoolSettingRow`), never as instants.
* Multi-valued attributes (subjects, languages, accommodations) are comma-separated,
  sorted, lower-case codes.
* Secrets (parent-link and feed tokens) are stored only as their SHA-256 hex digest.
* Migration ``0011`` adds the enrolments' withdrawal, the parent links' ``expired_at``
  and the feeds' ``last_used_at``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import EMPTY, Base, metadata
from broker.db.types import UTCDateTime


class ProgrammeOfferRow(Base):
    """One vendor's offer in one programme for one term (set up by district staff)."""

    __tablename__ = "programme_offers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    programme: Mapped[str] = mapped_column(String(16))  # school_based | home_based
    vendor: Mapped[str] = mapped_column(String(32), index=True)
    subjects: Mapped[str] = mapped_column(String(64))
    low_grade: Mapped[int] = mapped_column(SmallInteger)
    high_grade: Mapped[int] = mapped_column(SmallInteger)
    languages: Mapped[str] = mapped_column(String(64))
    group_limit: Mapped[int] = mapped_column(SmallInteger)
    session_minutes: Mapped[int] = mapped_column(SmallInteger)
    min_sessions_per_week: Mapped[int] = mapped_column(SmallInteger)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchoolSettingRow(Base):
    """A school's time zone and the end of its after-school window (local minutes)."""

    __tablename__ = "school_settings"

    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    after_school_end: Mapped[int] = mapped_column(SmallInteger)


class BellScheduleRow(Base):
    """Dismissal per school and weekday (0 = Monday); a weekday without a row is no school
    day. ``minimum_dismissal`` is the dismissal of that weekday's minimum days."""

    __tablename__ = "bell_schedules"

    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    dismissal: Mapped[int] = mapped_column(SmallInteger)
    minimum_dismissal: Mapped[int | None] = mapped_column(SmallInteger)


class SchoolCalendarDayRow(Base):
    """A dated exception to a school's bell schedule: holiday, break, minimum_day or
    no_school."""

    __tablename__ = "school_calendar_days"

    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="", server_default=EMPTY)


class TutorProfileRow(Base):
    """A vendor tutor's scheduling attributes: languages, accommodations, time zone."""

    __tablename__ = "tutor_profiles"

    tutor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32), index=True)
    display_name: Mapped[str] = mapped_column(String(100), default="", server_default=EMPTY)
    languages: Mapped[str] = mapped_column(String(64))
    accommodations: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)
    timezone: Mapped[str] = mapped_column(String(64))


class AvailabilityWindowRow(Base):
    """A weekly window (local minutes in ``timezone``) in which a tutor may be booked."""

    __tablename__ = "availability_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tutor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tutor_profiles.tutor_id"), index=True
    )
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_min: Mapped[int] = mapped_column(SmallInteger)
    end_min: Mapped[int] = mapped_column(SmallInteger)


class AvailabilityExceptionRow(Base):
    """A dated exception: the tutor is away that day (``available`` false, whole day when
    no minutes are given) or offers an extra window (``available`` true)."""

    __tablename__ = "availability_exceptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tutor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tutor_profiles.tutor_id"), index=True
    )
    day: Mapped[date] = mapped_column(Date)
    available: Mapped[bool] = mapped_column(Boolean)
    start_min: Mapped[int | None] = mapped_column(SmallInteger)
    end_min: Mapped[int | None] = mapped_column(SmallInteger)


ACTIVE_ENROLMENT = text("withdrawn_at IS NULL")


class EnrolmentRow(Base):
    """A student enrolled in an offer, by whom (staff account or ``parent-link:<id>``).
    A withdrawn enrolment keeps its row (who withdrew it, when, why: the history); a
    student has at most one enrolment in an offer that is not withdrawn, so re-enrolling
    after a withdrawal adds a new row."""

    __tablename__ = "enrolments"
    __table_args__ = (
        Index("ix_enrolments_offer_school", "offer_id", "school_id"),
        Index("uq_enrolments_student_offer_active", "student_id", "offer_id", unique=True,
              sqlite_where=ACTIVE_ENROLMENT, postgresql_where=ACTIVE_ENROLMENT),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    student_id: Mapped[str] = mapped_column(String(64), ForeignKey("students.sourced_id"))
    offer_id: Mapped[str] = mapped_column(String(32), ForeignKey("programme_offers.id"))
    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"))
    language: Mapped[str] = mapped_column(String(16))
    accommodations: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)
    enrolled_by: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64))
    withdraw_reason: Mapped[str] = mapped_column(String(200), default="",
                                                 server_default=EMPTY)


class TutoringGroupRow(Base):
    """A group of enrolled students with one tutor (school-based programmes)."""

    __tablename__ = "tutoring_groups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(32), ForeignKey("programme_offers.id"))
    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), index=True)
    grade_band: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    tutor_id: Mapped[str] = mapped_column(String(64), ForeignKey("tutor_profiles.tutor_id"))
    accommodations: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GroupMemberRow(Base):
    """A student in a group."""

    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tutoring_groups.id"), primary_key=True
    )
    student_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("students.sourced_id"), primary_key=True, index=True
    )


class SeriesRow(Base):
    """A booked series: a group's (school-based) or one student's (home-based) recurring
    sessions. ``rrule`` is RFC 5545 RRULE text expanded from ``first_day`` at
    ``start_min`` local time in ``timezone``."""

    __tablename__ = "booking_series"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(32), ForeignKey("programme_offers.id"))
    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), index=True)
    group_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("tutoring_groups.id"))
    student_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("students.sourced_id"))
    tutor_id: Mapped[str] = mapped_column(String(64), ForeignKey("tutor_profiles.tutor_id"))
    subject: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    rrule: Mapped[str] = mapped_column(String(500))
    first_day: Mapped[date] = mapped_column(Date)
    start_min: Mapped[int] = mapped_column(SmallInteger)
    minutes: Mapped[int] = mapped_column(SmallInteger)
    timezone: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BookingStudentRow(Base):
    """Who a series is for, one row per student (the group's members when it was booked,
    or the one home-based student): what the student-overlap check reads."""

    __tablename__ = "booking_students"

    series_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("booking_series.id"), primary_key=True
    )
    student_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("students.sourced_id"), primary_key=True, index=True
    )


class OccurrenceRow(Base):
    """One session of a series. ``tutor_id`` is the series' tutor unless a substitute was
    recorded; ``tutor_status`` is the tutor side of attendance; ``original_starts_at`` is
    the start it was booked with (a moved occurrence keeps it: the feeds' RECURRENCE-ID).
    ``status``: ``scheduled``, ``cancelled``, or ``held`` once its attendance is closed."""

    __tablename__ = "occurrences"
    __table_args__ = (
        Index("ix_occurrences_tutor_starts", "tutor_id", "starts_at"),
        Index("ix_occurrences_series_starts", "series_id", "starts_at"),
        Index("ix_occurrences_school_starts", "school_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    series_id: Mapped[str] = mapped_column(String(32), ForeignKey("booking_series.id"))
    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"))
    tutor_id: Mapped[str] = mapped_column(String(64), ForeignKey("tutor_profiles.tutor_id"))
    local_day: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    original_starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # as first booked
    status: Mapped[str] = mapped_column(String(16))  # scheduled | cancelled | held
    cancelled_by: Mapped[str | None] = mapped_column(String(64))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    tutor_status: Mapped[str | None] = mapped_column(String(16))


class ScheduleChangeRow(Base):
    """The history of a series: who changed what, when and why (never rewritten)."""

    __tablename__ = "schedule_changes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    series_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("booking_series.id"), index=True
    )
    occurrence_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="", server_default=EMPTY)
    detail: Mapped[str] = mapped_column(Text, default="", server_default=EMPTY)


class AttendanceRow(Base):
    """A student's attendance of one occurrence (present | late | absent)."""

    __tablename__ = "attendance"

    occurrence_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("occurrences.id"), primary_key=True
    )
    student_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("students.sourced_id"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    marked_by: Mapped[str] = mapped_column(String(64))
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParentLinkRow(Base):
    """A parent's single-child enrolment link; ``id`` is the SHA-256 of the link's secret.
    ``offer_id`` ``None``: every home-based offer open to the child in ``language``.
    ``expired_at``: when the links job found it past ``expires_at`` unused; the row (and
    so the hash) is deleted once it has been expired for the retention period."""

    __tablename__ = "parent_links"
    __table_args__ = (Index("ix_parent_links_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    student_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("students.sourced_id"), index=True
    )
    offer_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("programme_offers.id"))
    language: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CalendarFeedRow(Base):
    """An iCalendar feed's token (SHA-256 hex) and whose schedule it shows; its public id
    is the hash's first 16 hex digits. ``last_used_at`` is updated at most hourly."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (Index("ix_calendar_feeds_owner", "owner_kind", "owner_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # student | tutor | staff
    owner_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


programme_offers = metadata.tables["programme_offers"]
school_settings = metadata.tables["school_settings"]
bell_schedules = metadata.tables["bell_schedules"]
school_calendar_days = metadata.tables["school_calendar_days"]
tutor_profiles = metadata.tables["tutor_profiles"]
availability_windows = metadata.tables["availability_windows"]
availability_exceptions = metadata.tables["availability_exceptions"]
enrolments = metadata.tables["enrolments"]
tutoring_groups = metadata.tables["tutoring_groups"]
group_members = metadata.tables["group_members"]
booking_series = metadata.tables["booking_series"]
booking_students = metadata.tables["booking_students"]
occurrences = metadata.tables["occurrences"]
schedule_changes = metadata.tables["schedule_changes"]
attendance = metadata.tables["attendance"]
parent_links = metadata.tables["parent_links"]
calendar_feeds = metadata.tables["calendar_feeds"]
