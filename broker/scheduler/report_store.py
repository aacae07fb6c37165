"""The SQL of the scheduler's district report (``GET /api/stats/scheduled``): booked
tutoring aggregated in the database per school, programme offer and ISO week, so a whole
district's term is answered in a few rows (:mod:`broker.scheduler.reports` adds the
definitions' arithmetic and the policy).

Every query takes :class:`broker.stats.Filters`, read as for the rest of the statistics:
``start``/``end`` bound the occurrence's start (``[start, end)``, aware), ``school_id``,
``region`` (the school's), ``vendor`` (the offer's), ``language`` (the series') and
``grade`` (the student's; for the per-occurrence figures, a series with a student of that
grade). A week is keyed by its Monday (the occurrence's local day), computed by the
database: ``date_trunc('week', ...)`` on PostgreSQL, ``date(..., 'weekday 0', '-6 days')``
on SQLite.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.db import scheduler_models as m
from broker.db.models import metadata
from broker.stats import Filters

Row = dict[str, Any]
occ, ser, who, att, offers = (m.occurrences, m.booking_series, m.booking_students,
                              m.attendance, m.programme_offers)
schools = metadata.tables["schools"]
students = metadata.tables["students"]
CANCELLED = "cancelled"


def _monday(dialect: str) -> sa.ColumnElement[Any]:
    """The Monday of the occurrence's local day, on either database."""
    if dialect == "postgresql":
        # as a timestamp without zone, so the session's TimeZone plays no part
        return sa.cast(sa.func.date_trunc("week", sa.cast(occ.c.local_day, sa.DateTime)),
                       sa.Date)
    return sa.func.date(occ.c.local_day, "weekday 0", "-6 days")


def as_date(value: Any) -> date:
    """A week key as a date (SQLite answers text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _where(f: Filters, student: sa.ColumnElement[Any] | None = None
           ) -> list[sa.ColumnElement[bool]]:
    """The filters on an occurrence joined to its series and offer; ``grade`` on ``student``
    (a student column of the query) or, without one, on the series' students."""
    where: list[sa.ColumnElement[bool]] = []
    if f.start is not None:
        where.append(occ.c.starts_at >= f.start)
    if f.end is not None:
        where.append(occ.c.starts_at < f.end)
    if f.school_id is not None:
        where.append(occ.c.school_id == f.school_id)
    if f.region is not None:
        where.append(occ.c.school_id.in_(
            sa.select(schools.c.id).where(schools.c.region == f.region)))
    if f.vendor is not None:
        where.append(offers.c.vendor == f.vendor)
    if f.language is not None:
        where.append(ser.c.language == f.language)
    if f.grade is not None:
        where.append(_of_grade(student, f.grade) if student is not None else ser.c.id.in_(
            sa.select(who.c.series_id).where(_of_grade(who.c.student_id, f.grade))))
    return where


def _of_grade(student: sa.ColumnElement[Any], grade: int) -> sa.ColumnElement[bool]:
    return student.in_(sa.select(students.c.sourced_id).where(students.c.grade == grade))


def _occurrences() -> Any:
    return occ.join(ser, ser.c.id == occ.c.series_id).join(offers, offers.c.id == ser.c.offer_id)


def _student_weeks(dialect: str, f: Filters) -> sa.Subquery:
    """One row per school, offer, student and week the student was booked in (a cancelled
    occurrence included): sessions attended (present or late) and their minutes, marks,
    absences, and the offer's weekly target.

    Two narrow sums, stacked and added up (no join between them, whose size a planner
    could misjudge): the weeks each series had an occurrence in, times its students
    (booked), and the attendance rows per student and week (attended). The database never
    joins every student to every occurrence."""
    week = _monday(dialect).label("week")
    zero = sa.literal(0, sa.Integer)
    series_weeks = (
        sa.select(occ.c.series_id, week).select_from(_occurrences())
        .where(*_where(f)).group_by(occ.c.series_id, week).subquery("series_weeks")
    )
    booked = (
        sa.select(ser.c.offer_id, ser.c.school_id, who.c.student_id, series_weeks.c.week,
                  sa.literal(1, sa.Integer).label("booked"), zero.label("sessions"),
                  zero.label("minutes"), zero.label("marked"), zero.label("absent"))
        .select_from(series_weeks.join(ser, ser.c.id == series_weeks.c.series_id)
                     .join(who, who.c.series_id == ser.c.id))
        .where(*([] if f.grade is None else [_of_grade(who.c.student_id, f.grade)]))
    )
    came = att.c.status.in_(("present", "late"))
    attended = (
        sa.select(ser.c.offer_id, ser.c.school_id, att.c.student_id, week,
                  zero.label("booked"),
                  sa.func.sum(sa.case((came, 1), else_=0)).label("sessions"),
                  sa.func.sum(sa.case((came, ser.c.minutes), else_=0)).label("minutes"),
                  sa.func.count().label("marked"),
                  sa.func.sum(sa.case((att.c.status == "absent", 1), else_=0)).label("absent"))
        .select_from(att.join(_occurrences(), occ.c.id == att.c.occurrence_id))
        .where(occ.c.status != CANCELLED, *_where(f, att.c.student_id))
        .group_by(ser.c.offer_id, ser.c.school_id, att.c.student_id, week)
    )
    both = sa.union_all(booked, attended).subquery("both_sums")
    keys = (both.c.offer_id, both.c.school_id, both.c.student_id, both.c.week)
    summed = (
        sa.select(*keys, *(sa.func.sum(both.c[name]).label(name)
                           for name in ("sessions", "minutes", "marked", "absent")))
        .group_by(*keys).having(sa.func.max(both.c.booked) == 1).subquery("summed")
    )
    return (
        sa.select(
            summed.c.school_id, summed.c.offer_id, summed.c.student_id, summed.c.week,
            offers.c.min_sessions_per_week.label("target_sessions"),
            (offers.c.min_sessions_per_week * offers.c.session_minutes).label("target_minutes"),
            summed.c.sessions, summed.c.minutes, summed.c.marked, summed.c.absent,
        )
        .select_from(summed.join(offers, offers.c.id == summed.c.offer_id))
        .subquery("student_weeks")
    )


async def programme_weeks(conn: AsyncConnection, f: Filters) -> list[Row]:
    """Per school, offer and week: ``students`` booked, ``on_target`` (students whose
    attended sessions and minutes both reached the offer's weekly target), ``sessions``
    and ``minutes`` attended, ``marked``, ``absent``."""
    sw = _student_weeks(conn.dialect.name, f)
    on_target = sa.and_(sw.c.sessions >= sw.c.target_sessions,
                        sw.c.minutes >= sw.c.target_minutes)
    query = (
        sa.select(sw.c.school_id, sw.c.offer_id, sw.c.week,
                  sa.func.count().label("students"),
                  sa.func.sum(sa.case((on_target, 1), else_=0)).label("on_target"),
                  sa.func.sum(sw.c.sessions).label("sessions"),
                  sa.func.sum(sw.c.minutes).label("minutes"),
                  sa.func.sum(sw.c.marked).label("marked"),
                  sa.func.sum(sw.c.absent).label("absent"))
        .group_by(sw.c.school_id, sw.c.offer_id, sw.c.week)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def student_weeks(conn: AsyncConnection, f: Filters) -> list[Row]:
    """The rows :func:`programme_weeks` adds up, one per student and week (per-student
    records: the caller decides who may read them)."""
    sw = _student_weeks(conn.dialect.name, f)
    query = sa.select(sw).order_by(sw.c.school_id, sw.c.offer_id, sw.c.student_id, sw.c.week)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def tutor_no_shows(conn: AsyncConnection, f: Filters) -> list[Row]:
    """Per school, offer and week: occurrences (not cancelled) whose tutor side was closed
    ``absent``."""
    week = _monday(conn.dialect.name).label("week")
    query = (
        sa.select(occ.c.school_id, ser.c.offer_id, week, sa.func.count().label("tutors"))
        .select_from(_occurrences())
        .where(occ.c.status != CANCELLED, occ.c.tutor_status == "absent", *_where(f))
        .group_by(occ.c.school_id, ser.c.offer_id, week)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def groups_below(conn: AsyncConnection, f: Filters) -> list[Row]:
    """Groups that, in a week they had an occurrence (cancelled or not), had fewer
    occurrences scheduled or held than their offer's weekly target: ``sessions`` is how
    many they had; with the group's subject, grade band, language and tutor."""
    week = _monday(conn.dialect.name).label("week")
    held = sa.func.sum(sa.case((occ.c.status != CANCELLED, 1), else_=0))
    groups, tutors = m.tutoring_groups, m.tutor_profiles
    described = (groups.c.subject, groups.c.grade_band, groups.c.language, groups.c.tutor_id,
                 tutors.c.display_name)
    query = (
        sa.select(occ.c.school_id, ser.c.offer_id, ser.c.group_id, week,
                  held.label("sessions"),
                  offers.c.min_sessions_per_week.label("target_sessions"), *described)
        .select_from(_occurrences()
                     .join(groups, groups.c.id == ser.c.group_id)
                     .join(tutors, tutors.c.tutor_id == groups.c.tutor_id))
        .where(*_where(f))
        .group_by(occ.c.school_id, ser.c.offer_id, ser.c.group_id, week,
                  offers.c.min_sessions_per_week, *described)
        .having(held < offers.c.min_sessions_per_week)
        .order_by(occ.c.school_id, ser.c.offer_id, ser.c.group_id, week)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def offers_and_schools(conn: AsyncConnection, offer_ids: set[str],
                             school_ids: set[str]) -> tuple[dict[str, Row], dict[str, str]]:
    """The offers' programme, vendor and targets, and the schools' names."""
    found = {r["id"]: dict(r) for r in (await conn.execute(
        sa.select(offers.c.id, offers.c.programme, offers.c.vendor,
                  offers.c.min_sessions_per_week, offers.c.session_minutes)
        .where(offers.c.id.in_(sorted(offer_ids))))).mappings()}
    names = {r.id: r.name for r in (await conn.execute(
        sa.select(schools.c.id, schools.c.name).where(schools.c.id.in_(sorted(school_ids)))))}
    return found, names
