"""The scheduler's SQL: read models and writes on one ``AsyncConnection`` each, so the
service composes them inside one transaction (a booking and its occurrences, history and
outbox notices commit together or not at all).

No policy here: who may do what and which rules apply are :mod:`broker.scheduler.service`
and :mod:`broker.scheduler.rules`. The outbox is written through :mod:`broker.outbox`
(``enqueue``, ``withdraw``), its one place.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.db import scheduler_models as m
from broker.db.models import metadata
from broker.db.types import UTCDateTime
from broker.scheduler.rules import MAX_SESSION_MIN, Availability, Bell, Busy, SchoolRules

Row = dict[str, Any]
SCHEDULED = "scheduled"
students = metadata.tables["students"]
schools = metadata.tables["schools"]
users = metadata.tables["users"]


def _csv(values: Iterable[str]) -> str:
    return ",".join(sorted(set(values)))


def split(text: str | None) -> list[str]:
    """The codes of a comma-separated column."""
    return [x for x in (text or "").split(",") if x]


async def _one(conn: AsyncConnection, query: sa.Select[Any]) -> Row | None:
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def _all(conn: AsyncConnection, query: sa.Select[Any]) -> list[Row]:
    return [dict(r) for r in (await conn.execute(query)).mappings().all()]


# -- locking -------------------------------------------------------------------------------
async def lock_people(conn: AsyncConnection, tutor_ids: Iterable[str],
                      student_ids: Iterable[str]) -> None:
    """Serialise bookings that touch the same people, before their conflicts are read.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the tutors' profiles and the students' rows,
    in id order (no deadlock between two bookings). SQLite: a no-op write first, which
    takes the database's single write lock, so the reads that follow see every committed
    booking and no other booking can commit before this one does. The no-op sets a column
    that no foreign key references: setting the key itself made SQLite look for the
    tutor's rows in every child table, two of them without an index on ``tutor_id``, so
    the lock cost a scan of all the series and groups (8 ms at half a term and growing).
    """
    tutors = sorted(set(tutor_ids))
    learners = sorted(set(student_ids))
    if conn.dialect.name == "sqlite":
        await conn.execute(
            sa.update(m.tutor_profiles)
            .where(m.tutor_profiles.c.tutor_id.in_(tutors or [""]))
            .values(display_name=m.tutor_profiles.c.display_name)
        )
        return
    if tutors:
        await conn.execute(
            sa.select(m.tutor_profiles.c.tutor_id)
            .where(m.tutor_profiles.c.tutor_id.in_(tutors))
            .order_by(m.tutor_profiles.c.tutor_id).with_for_update()
        )
    if learners:
        await conn.execute(
            sa.select(students.c.sourced_id).where(students.c.sourced_id.in_(learners))
            .order_by(students.c.sourced_id).with_for_update()
        )


# -- programme offers ----------------------------------------------------------------------
async def insert_offer(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(m.programme_offers.insert().values(**values))


async def offer(conn: AsyncConnection, offer_id: str) -> Row | None:
    return await _one(conn, sa.select(m.programme_offers).where(
        m.programme_offers.c.id == offer_id))


async def offers(conn: AsyncConnection, *, vendor: str | None = None,
                 programme: str | None = None) -> list[Row]:
    query = sa.select(m.programme_offers).order_by(m.programme_offers.c.id)
    if vendor is not None:
        query = query.where(m.programme_offers.c.vendor == vendor)
    if programme is not None:
        query = query.where(m.programme_offers.c.programme == programme)
    return await _all(conn, query)


# -- schools ---------------------------------------------------------------------------------
async def school_exists(conn: AsyncConnection, school_id: str) -> bool:
    return await _one(conn, sa.select(schools.c.id).where(schools.c.id == school_id)) is not None


async def replace_bells(conn: AsyncConnection, school_id: str, zone: str,
                        after_school_end: int, bells: Mapping[int, Bell]) -> None:
    """The school's zone, after-school end and whole weekly bell schedule, replaced."""
    await conn.execute(sa.delete(m.bell_schedules).where(
        m.bell_schedules.c.school_id == school_id))
    await conn.execute(sa.delete(m.school_settings).where(
        m.school_settings.c.school_id == school_id))
    await conn.execute(m.school_settings.insert().values(
        school_id=school_id, timezone=zone, after_school_end=after_school_end))
    if bells:
        await conn.execute(m.bell_schedules.insert(), [
            {"school_id": school_id, "weekday": d, "dismissal": b.dismissal,
             "minimum_dismissal": b.minimum_dismissal} for d, b in sorted(bells.items())
        ])


def _school_reads() -> tuple[sa.Select[Any], sa.Select[Any]]:
    settings, bells, days = m.school_settings, m.bell_schedules, m.school_calendar_days
    return (
        sa.select(settings.c.timezone, settings.c.after_school_end, bells.c.weekday,
                  bells.c.dismissal, bells.c.minimum_dismissal)
        .select_from(settings.outerjoin(bells, bells.c.school_id == settings.c.school_id))
        .where(settings.c.school_id == sa.bindparam("school")),
        sa.select(days.c.day, days.c.kind).where(
            days.c.school_id == sa.bindparam("school"), days.c.day >= sa.bindparam("first"),
            days.c.day <= sa.bindparam("last")),
    )


_SCHOOL_READS = _school_reads()  # built once: a booking reads them every time


async def school_rules(conn: AsyncConnection, school_id: str, first: date | None = None,
                       last: date | None = None) -> SchoolRules | None:
    """The school's bell schedule and calendar (optionally only ``first``..``last``);
    ``None`` when its schedule was never set. Two reads: the settings with their bells,
    then the calendar."""
    with_bells, calendar_days = _SCHOOL_READS
    rows = (await conn.execute(with_bells, {"school": school_id})).all()
    if not rows:
        return None
    found = await conn.execute(calendar_days, {
        "school": school_id, "first": first or date.min, "last": last or date.max})
    return SchoolRules(
        zone=rows[0].timezone,
        after_school_end=rows[0].after_school_end,
        bells={r.weekday: Bell(r.dismissal, r.minimum_dismissal) for r in rows
               if r.weekday is not None},
        calendar={d: kind for d, kind in found.all()},
    )


async def school_zone(conn: AsyncConnection, school_id: str) -> str | None:
    row = await _one(conn, sa.select(m.school_settings.c.timezone).where(
        m.school_settings.c.school_id == school_id))
    return row["timezone"] if row else None


async def put_calendar_days(conn: AsyncConnection, school_id: str,
                            days: Sequence[tuple[date, str, str]]) -> None:
    """Insert or replace the given ``(day, kind, label)`` entries of a school's calendar."""
    if not days:
        return
    table = m.school_calendar_days
    await conn.execute(sa.delete(table).where(
        table.c.school_id == school_id, table.c.day.in_([d for d, _, _ in days])))
    await conn.execute(table.insert(), [
        {"school_id": school_id, "day": d, "kind": k, "label": label} for d, k, label in days
    ])


async def calendar(conn: AsyncConnection, school_id: str) -> list[Row]:
    table = m.school_calendar_days
    return await _all(conn, sa.select(table).where(table.c.school_id == school_id)
                      .order_by(table.c.day))


# -- tutors ------------------------------------------------------------------------------------
async def tutor(conn: AsyncConnection, tutor_id: str) -> Row | None:
    return await _one(conn, sa.select(m.tutor_profiles).where(
        m.tutor_profiles.c.tutor_id == tutor_id))


async def tutors_of(conn: AsyncConnection, vendor: str) -> list[Row]:
    return await _all(conn, sa.select(m.tutor_profiles).where(
        m.tutor_profiles.c.vendor == vendor).order_by(m.tutor_profiles.c.tutor_id))


async def put_tutor(conn: AsyncConnection, values: Row) -> None:
    table = m.tutor_profiles
    found = await tutor(conn, values["tutor_id"])
    if found is None:
        await conn.execute(table.insert().values(**values))
    else:
        await conn.execute(sa.update(table).where(table.c.tutor_id == values["tutor_id"])
                           .values(**values))


async def needs_taught_by(conn: AsyncConnection, tutor_id: str, after: datetime
                          ) -> dict[str, list[str]]:
    """Per student, the accommodations needed in the series a tutor teaches that still
    have a scheduled occurrence after ``after`` (what the tutor must keep providing)."""
    ser, who, enr, occ = m.booking_series, m.booking_students, m.enrolments, m.occurrences
    live = sa.select(occ.c.series_id).where(occ.c.status == SCHEDULED, occ.c.starts_at >= after)
    rows = await _all(conn, sa.select(who.c.student_id, enr.c.accommodations).join(
        ser, ser.c.id == who.c.series_id).join(enr, sa.and_(
            enr.c.student_id == who.c.student_id, enr.c.offer_id == ser.c.offer_id,
            enr.c.withdrawn_at.is_(None))).where(
        ser.c.tutor_id == tutor_id, ser.c.id.in_(live), enr.c.accommodations != ""))
    return {r["student_id"]: split(r["accommodations"]) for r in rows}


async def replace_availability(conn: AsyncConnection, tutor_id: str,
                               weekly: Sequence[tuple[int, int, int]],
                               exceptions: Sequence[tuple[date, bool, int | None, int | None]],
                               ) -> None:
    """A tutor's whole published availability, replaced."""
    await conn.execute(sa.delete(m.availability_windows).where(
        m.availability_windows.c.tutor_id == tutor_id))
    await conn.execute(sa.delete(m.availability_exceptions).where(
        m.availability_exceptions.c.tutor_id == tutor_id))
    if weekly:
        await conn.execute(m.availability_windows.insert(), [
            {"tutor_id": tutor_id, "weekday": d, "start_min": s, "end_min": e}
            for d, s, e in weekly
        ])
    if exceptions:
        await conn.execute(m.availability_exceptions.insert(), [
            {"tutor_id": tutor_id, "day": d, "available": a, "start_min": s, "end_min": e}
            for d, a, s, e in exceptions
        ])


def _availability_read() -> sa.CompoundSelect[Any]:
    win, exc = m.availability_windows, m.availability_exceptions
    tutor: sa.BindParameter[str] = sa.bindparam("tutor")
    return sa.union_all(
        sa.select(exc.c.day, sa.cast(sa.null(), sa.SmallInteger).label("weekday"),
                  exc.c.available, exc.c.start_min, exc.c.end_min).where(exc.c.tutor_id == tutor),
        sa.select(sa.cast(sa.null(), sa.Date), win.c.weekday, sa.cast(sa.null(), sa.Boolean),
                  win.c.start_min, win.c.end_min).where(win.c.tutor_id == tutor),
    )


_AVAILABILITY = _availability_read()


async def availability(conn: AsyncConnection, tutor_id: str, zone: str) -> Availability:
    """A tutor's published hours (weekly windows and dated exceptions, in one read)."""
    rows = (await conn.execute(_AVAILABILITY, {"tutor": tutor_id})).all()
    weekly: dict[int, list[tuple[int, int]]] = defaultdict(list)
    extra: dict[date, list[tuple[int, int]]] = defaultdict(list)
    away: dict[date, list[tuple[int, int] | None]] = defaultdict(list)
    for day, weekday, available, start_min, end_min in rows:
        if day is None:
            weekly[weekday].append((start_min, end_min))
            continue
        span = (start_min, end_min) if start_min is not None else None
        if available and span is not None:
            extra[day].append(span)
        elif not available:
            away[day].append(span)
    return Availability(zone, dict(weekly), dict(extra), dict(away))


# -- students, enrolments, groups --------------------------------------------------------------
async def students_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Row]:
    wanted = sorted(set(ids))
    rows = await _all(conn, sa.select(students).where(students.c.sourced_id.in_(wanted)))
    return {r["sourced_id"]: r for r in rows}


async def enrolments(conn: AsyncConnection, offer_id: str,
                     student_ids: Iterable[str] | None = None,
                     school_id: str | None = None) -> dict[str, Row]:
    """The offer's enrolments that are not withdrawn, by student."""
    table = m.enrolments
    query = sa.select(table).where(table.c.offer_id == offer_id, table.c.withdrawn_at.is_(None))
    if student_ids is not None:
        query = query.where(table.c.student_id.in_(sorted(set(student_ids))))
    if school_id is not None:
        query = query.where(table.c.school_id == school_id)
    return {r["student_id"]: r for r in await _all(conn, query)}


async def insert_enrolments(conn: AsyncConnection, rows: Sequence[Row]) -> None:
    if rows:
        await conn.execute(m.enrolments.insert(), list(rows))


async def insert_group(conn: AsyncConnection, values: Row, members: Sequence[str]) -> None:
    await conn.execute(m.tutoring_groups.insert().values(**values))
    await conn.execute(m.group_members.insert(), [
        {"group_id": values["id"], "student_id": s} for s in members
    ])


_GROUP = (
    sa.select(m.tutoring_groups, m.group_members.c.student_id.label("member"))
    .select_from(m.tutoring_groups.outerjoin(
        m.group_members, m.group_members.c.group_id == m.tutoring_groups.c.id))
    .where(m.tutoring_groups.c.id == sa.bindparam("group"))
    .order_by(m.group_members.c.student_id)
)


async def group(conn: AsyncConnection, group_id: str) -> Row | None:
    """A group with its ``members`` (sorted), in one read."""
    rows = (await conn.execute(_GROUP, {"group": group_id})).mappings().all()
    if not rows:
        return None
    found = {k: v for k, v in rows[0].items() if k != "member"}
    found["members"] = [r["member"] for r in rows if r["member"] is not None]
    return found


async def add_member(conn: AsyncConnection, group_id: str, student_id: str,
                     accommodations: str) -> None:
    """A student joins a group; ``accommodations`` is the group's new union of needs."""
    await conn.execute(m.group_members.insert().values(group_id=group_id,
                                                       student_id=student_id))
    await conn.execute(sa.update(m.tutoring_groups).where(m.tutoring_groups.c.id == group_id)
                       .values(accommodations=accommodations))


async def series_of_group(conn: AsyncConnection, group_id: str) -> list[Row]:
    ser = m.booking_series
    return await _all(conn, sa.select(ser).where(ser.c.group_id == group_id).order_by(ser.c.id))


async def add_booking_student(conn: AsyncConnection, series_id: str, student_id: str) -> None:
    await conn.execute(m.booking_students.insert().values(series_id=series_id,
                                                          student_id=student_id))


async def groups_of(conn: AsyncConnection, school_id: str, offer_id: str | None) -> list[Row]:
    table = m.tutoring_groups
    query = sa.select(table).where(table.c.school_id == school_id).order_by(table.c.id)
    if offer_id is not None:
        query = query.where(table.c.offer_id == offer_id)
    found = await _all(conn, query)
    members = await _all(conn, sa.select(m.group_members).where(
        m.group_members.c.group_id.in_([g["id"] for g in found] or [""])))
    by_group: dict[str, list[str]] = defaultdict(list)
    for row in members:
        by_group[row["group_id"]].append(row["student_id"])
    for g in found:
        g["members"] = sorted(by_group[g["id"]])
    return found


# -- conflicts ---------------------------------------------------------------------------------
Span = tuple[datetime, datetime]
_REACH = timedelta(minutes=MAX_SESSION_MIN)


def _meeting(postgres: bool, cand: sa.CTE, outer: Sequence[sa.FromClause],
             columns: Sequence[sa.ColumnElement[Any]],
             person: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """``columns`` of ``outer`` with the ``id``, ``starts_at`` and ``ends_at`` of each
    scheduled occurrence (``person``: which ones are the person's, an equality on the
    first column of an index) that meets one of the candidate intervals ``cand`` (made by
    :func:`_candidate_table` from the parameters of :func:`candidates`), those in the
    expanding parameter ``skip`` left out.

    An occurrence lasts at most :data:`~broker.scheduler.rules.MAX_SESSION_MIN`, so one
    meeting ``[a, b)`` starts after ``r = a`` minus that: each interval is one bounded
    range probe of a ``(person, starts_at)`` index however long the person's term is, and
    only the occurrences that really meet a candidate come back (usually none).

    The candidates (and ``outer``) are the outer loop whatever the planner's statistics
    say: a ``LATERAL`` subquery fenced with ``OFFSET 0`` on PostgreSQL (a cached generic
    plan made while the table was small would otherwise scan every occurrence once per
    candidate), ``MATERIALIZED`` tables on SQLite, which cannot estimate ``json_each``
    (the other join order read every occurrence of the person once per candidate: ~80 ms
    instead of ~0.3 ms for a term of 90)."""
    occ = m.occurrences
    where = sa.and_(
        person, occ.c.starts_at > cand.c.r, occ.c.starts_at < cand.c.b,
        occ.c.ends_at > cand.c.a, occ.c.status == SCHEDULED,
        occ.c.id.not_in(sa.bindparam("skip", expanding=True)),
    )
    froms: sa.FromClause = cand
    for table in outer:
        froms = froms.join(table, sa.true())
    if not postgres:
        return sa.select(*columns, occ.c.id, occ.c.starts_at, occ.c.ends_at).select_from(
            froms.join(occ, where))
    hit = sa.select(occ.c.id, occ.c.starts_at, occ.c.ends_at).where(where).offset(0).lateral(
        "hit")
    return sa.select(*columns, hit.c.id, hit.c.starts_at, hit.c.ends_at).select_from(
        froms.join(hit, sa.true()))


def _candidate_table(postgres: bool) -> sa.CTE:
    """The intervals as a table ``candidates(a, b, r)`` from **one** parameter (arrays
    unnested on PostgreSQL, a JSON array on SQLite), so a statement is built and compiled
    once whatever their number; ``r``, the earliest start that can reach ``[a, b)``, is
    computed by the database (on SQLite to the whole second below, a bound no tighter)."""
    bounds: list[sa.ColumnElement[Any]]
    if postgres:
        instants = postgresql.ARRAY(UTCDateTime())
        unnested = sa.func.unnest(*(sa.bindparam(f"cand_{n}", type_=instants) for n in "ab")
                                  ).table_valued("a", "b").render_derived()
        bounds = [unnested.c.a, unnested.c.b, unnested.c.a - _REACH]
        source: sa.FromClause = unnested
    else:
        each = sa.func.json_each(sa.bindparam("cand", type_=sa.String())).table_valued("value")
        first = sa.func.json_extract(each.c.value, "$[0]")
        bounds = [first, sa.func.json_extract(each.c.value, "$[1]"),
                  sa.func.datetime(first, f"-{MAX_SESSION_MIN} minutes")]
        source = each
    return sa.select(*(c.label(n) for c, n in zip(bounds, "abr", strict=True))).select_from(
        source).cte("candidates").prefix_with("MATERIALIZED")


@dataclass(frozen=True, slots=True)
class _BusyReads:
    tutor: sa.Select[Any]
    students: sa.Select[Any]
    both: sa.CompoundSelect[Any]  # the tutor's rows have student_id NULL


def _busy_queries(postgres: bool) -> _BusyReads:
    """The tutor's, the students' and both overlap reads, built once per kind of
    database."""
    found = _BUSY.get(postgres)
    if found is None:
        occ, who = m.occurrences, m.booking_students
        cand = _candidate_table(postgres)
        mine = sa.select(who.c.series_id, who.c.student_id).where(
            who.c.student_id.in_(sa.bindparam("students", expanding=True))
        ).cte("mine").prefix_with("MATERIALIZED")  # a few rows, by the student index
        tutor = occ.c.tutor_id == sa.bindparam("tutor")
        students = _meeting(postgres, cand, [mine], [mine.c.student_id],
                            occ.c.series_id == mine.c.series_id)
        found = _BUSY[postgres] = _BusyReads(
            _meeting(postgres, cand, [], [], tutor), students, sa.union_all(
                _meeting(postgres, cand, [], [sa.null().label("student_id")], tutor),
                students))
    return found


_BUSY: dict[bool, _BusyReads] = {}


@dataclass(frozen=True, slots=True)
class Candidates:
    """Candidate intervals in the form the overlap reads take them (made once by
    :func:`candidates`, then given to :func:`tutor_busy` and :func:`student_busy`)."""

    count: int
    params: Mapping[str, Any]


def candidates(conn: AsyncConnection, spans: Sequence[Span]) -> Candidates:
    """The intervals ``spans`` (aware instants) as parameters of the overlap reads."""
    if conn.dialect.name == "postgresql":
        return Candidates(len(spans), {"cand_a": [a for a, _ in spans],
                                       "cand_b": [b for _, b in spans]})
    # SQLite: the stored instants' own text form, so text order is time order.
    text = UTCDateTime().bind_processor(conn.dialect)
    assert text is not None
    return Candidates(len(spans), {"cand": json.dumps([[text(a), text(b)] for a, b in spans])})


def _given(conn: AsyncConnection, start: datetime, end: datetime,
           spans: Sequence[Span] | Candidates | None, exclude: Iterable[str]) -> dict[str, Any]:
    if spans is None:
        spans = [(start, end)]
    found = spans if isinstance(spans, Candidates) else candidates(conn, spans)
    return {**found.params, "skip": list(exclude)}


def _none(spans: Sequence[Span] | Candidates | None) -> bool:
    return spans is not None and (spans.count if isinstance(spans, Candidates)
                                  else len(spans)) == 0


async def tutor_busy(conn: AsyncConnection, tutor_id: str, start: datetime, end: datetime,
                     exclude: Iterable[str] = (), *,
                     spans: Sequence[Span] | Candidates | None = None) -> list[Busy]:
    """The tutor's scheduled occurrences meeting ``[start, end)``; with ``spans`` (the
    candidate sessions, all inside ``[start, end)``) only those meeting one of them, which
    is all an overlap check needs and reads a handful of rows instead of a whole term."""
    if _none(spans):
        return []
    query = _busy_queries(conn.dialect.name == "postgresql").tutor
    params = _given(conn, start, end, spans, exclude) | {"tutor": tutor_id}
    found = {r[0]: Busy(r[1], r[2], r[0]) for r in (await conn.execute(query, params)).all()}
    return list(found.values())


async def student_busy(conn: AsyncConnection, student_ids: Iterable[str], start: datetime,
                       end: datetime, exclude: Iterable[str] = (), *,
                       spans: Sequence[Span] | Candidates | None = None
                       ) -> dict[str, list[Busy]]:
    """Per student, their scheduled occurrences meeting ``[start, end)`` (or, with
    ``spans``, one of them; see :func:`tutor_busy`)."""
    learners = sorted(set(student_ids))
    if not learners or _none(spans):
        return {}
    query = _busy_queries(conn.dialect.name == "postgresql").students
    params = _given(conn, start, end, spans, exclude) | {"students": learners}
    out: dict[str, dict[str, Busy]] = defaultdict(dict)
    for student, occurrence_id, starts, ends in (await conn.execute(query, params)).all():
        out[student][occurrence_id] = Busy(starts, ends, occurrence_id)
    return {s: list(found.values()) for s, found in out.items()}


async def busy(conn: AsyncConnection, tutor_id: str, student_ids: Iterable[str],
               spans: Candidates, exclude: Iterable[str] = ()
               ) -> tuple[list[Busy], dict[str, list[Busy]]]:
    """:func:`tutor_busy` and :func:`student_busy` for the same candidates, in one read
    (what a booking's overlap check asks)."""
    learners = sorted(set(student_ids))
    if spans.count == 0:
        return [], {}
    params = {**spans.params, "skip": list(exclude), "tutor": tutor_id,
              "students": learners or [""]}
    tutor: dict[str, Busy] = {}
    out: dict[str, dict[str, Busy]] = defaultdict(dict)
    query = _busy_queries(conn.dialect.name == "postgresql").both
    for student, occurrence_id, starts, ends in (await conn.execute(query, params)).all():
        found = Busy(starts, ends, occurrence_id)
        if student is None:
            tutor[occurrence_id] = found
        else:
            out[student][occurrence_id] = found
    return list(tutor.values()), {s: list(f.values()) for s, f in out.items()}


# -- series and occurrences ------------------------------------------------------------------
async def insert_series(conn: AsyncConnection, values: Row, student_ids: Sequence[str],
                        occurrence_rows: Sequence[Row]) -> None:
    await conn.execute(m.booking_series.insert(), values)
    await conn.execute(m.booking_students.insert(), [
        {"series_id": values["id"], "student_id": s} for s in student_ids
    ])
    await conn.execute(m.occurrences.insert(), list(occurrence_rows))


async def series(conn: AsyncConnection, series_id: str) -> Row | None:
    found = await _one(conn, sa.select(m.booking_series).where(
        m.booking_series.c.id == series_id))
    if found is not None:
        found["students"] = await series_students(conn, series_id)
    return found


async def series_students(conn: AsyncConnection, series_id: str) -> list[str]:
    who = m.booking_students
    return [r["student_id"] for r in await _all(
        conn, sa.select(who.c.student_id).where(who.c.series_id == series_id)
        .order_by(who.c.student_id))]


async def occurrence(conn: AsyncConnection, occurrence_id: str) -> Row | None:
    return await _one(conn, sa.select(m.occurrences).where(m.occurrences.c.id == occurrence_id))


async def occurrences_of(conn: AsyncConnection, series_id: str) -> list[Row]:
    occ = m.occurrences
    return await _all(conn, sa.select(occ).where(occ.c.series_id == series_id)
                      .order_by(occ.c.starts_at))


async def scheduled_from(conn: AsyncConnection, series_id: str, starts_at: datetime) -> list[Row]:
    """The series' scheduled occurrences starting at or after ``starts_at``."""
    occ = m.occurrences
    return await _all(conn, sa.select(occ).where(
        occ.c.series_id == series_id, occ.c.status == SCHEDULED, occ.c.starts_at >= starts_at,
    ).order_by(occ.c.starts_at))


async def scheduled_of(conn: AsyncConnection, school_id: str, programme: str, *,
                       days: Iterable[date] | None = None,
                       after: datetime | None = None) -> list[Row]:
    """The school's scheduled occurrences of ``programme`` on the given local days or
    starting at or after ``after``."""
    occ, ser, offers = m.occurrences, m.booking_series, m.programme_offers
    query = sa.select(occ).join(ser, ser.c.id == occ.c.series_id).join(
        offers, offers.c.id == ser.c.offer_id).where(
        occ.c.school_id == school_id, occ.c.status == SCHEDULED,
        offers.c.programme == programme,
    ).order_by(occ.c.starts_at)
    if days is not None:
        query = query.where(occ.c.local_day.in_(sorted(set(days))))
    if after is not None:
        query = query.where(occ.c.starts_at >= after)
    return await _all(conn, query)


async def cancel_occurrences(conn: AsyncConnection, ids: Sequence[str], by: str,
                             reason: str) -> None:
    if ids:
        await conn.execute(sa.update(m.occurrences).where(
            m.occurrences.c.id.in_(list(ids)), m.occurrences.c.status == SCHEDULED,
        ).values(status="cancelled", cancelled_by=by, cancel_reason=reason))


async def move_occurrence(conn: AsyncConnection, occurrence_id: str, values: Row) -> None:
    await conn.execute(sa.update(m.occurrences).where(m.occurrences.c.id == occurrence_id)
                       .values(**values))


async def add_changes(conn: AsyncConnection, rows: Sequence[Row]) -> None:
    if rows:
        await conn.execute(m.schedule_changes.insert(), list(rows))


async def changes(conn: AsyncConnection, series_id: str) -> list[Row]:
    table = m.schedule_changes
    return await _all(conn, sa.select(table).where(table.c.series_id == series_id)
                      .order_by(table.c.at, table.c.id))


def _with_series() -> sa.Select[Any]:
    """Occurrences joined to their series' group, subject, language, offer and zone."""
    occ, ser = m.occurrences, m.booking_series
    return sa.select(
        occ, ser.c.group_id, ser.c.subject, ser.c.language, ser.c.offer_id, ser.c.timezone,
    ).join(ser, ser.c.id == occ.c.series_id).order_by(occ.c.starts_at)


async def _in_period(conn: AsyncConnection, who: sa.ColumnElement[bool], start: datetime,
                     end: datetime) -> list[Row]:
    occ = m.occurrences
    rows = await _all(conn, _with_series().where(
        who, occ.c.starts_at >= start, occ.c.starts_at < end))
    await _attach_students(conn, rows)
    return rows


async def school_occurrences(conn: AsyncConnection, school_id: str, start: datetime,
                             end: datetime) -> list[Row]:
    """A school's occurrences in ``[start, end)``, with their series' group, subject and
    students (the week view)."""
    return await _in_period(conn, m.occurrences.c.school_id == school_id, start, end)


async def tutor_occurrences(conn: AsyncConnection, tutor_id: str, start: datetime,
                            end: datetime) -> list[Row]:
    """The occurrences a tutor holds (booked or as a substitute) starting in
    ``[start, end)``, with their series' subject, zone and students."""
    return await _in_period(conn, m.occurrences.c.tutor_id == tutor_id, start, end)


async def student_occurrences(conn: AsyncConnection, student_id: str) -> list[Row]:
    """Every occurrence of the series a student is booked in (the term view)."""
    who = m.booking_students
    return await _all(conn, _with_series().join(who, who.c.series_id == m.booking_series.c.id)
                      .where(who.c.student_id == student_id))


async def _attach_students(conn: AsyncConnection, rows: list[Row]) -> None:
    who = m.booking_students
    series_ids = sorted({r["series_id"] for r in rows})
    found = await _all(conn, sa.select(who).where(who.c.series_id.in_(series_ids or [""])))
    by_series: dict[str, list[str]] = defaultdict(list)
    for r in found:
        by_series[r["series_id"]].append(r["student_id"])
    for r in rows:
        r["students"] = sorted(by_series[r["series_id"]])


# -- attendance --------------------------------------------------------------------------------
async def put_attendance(conn: AsyncConnection, occurrence_id: str,
                         marks: Mapping[str, str], by: str, at: datetime) -> None:
    """Set (insert or replace) students' attendance of one occurrence."""
    table = m.attendance
    if not marks:
        return
    await conn.execute(sa.delete(table).where(
        table.c.occurrence_id == occurrence_id, table.c.student_id.in_(sorted(marks))))
    await conn.execute(table.insert(), [
        {"occurrence_id": occurrence_id, "student_id": s, "status": st, "marked_by": by,
         "marked_at": at} for s, st in sorted(marks.items())
    ])


async def attendance_of(conn: AsyncConnection, occurrence_id: str) -> dict[str, str]:
    table = m.attendance
    rows = await _all(conn, sa.select(table).where(table.c.occurrence_id == occurrence_id))
    return {r["student_id"]: r["status"] for r in rows}


async def ended_unclosed(conn: AsyncConnection, before: datetime, limit: int) -> list[Row]:
    """Scheduled occurrences that ended before ``before`` (attendance not yet closed)."""
    occ = m.occurrences
    return await _all(conn, sa.select(occ).where(
        occ.c.status == SCHEDULED, occ.c.ends_at <= before,
    ).order_by(occ.c.ends_at).limit(limit))


async def report_rows(conn: AsyncConnection, school_id: str, offer_id: str,
                      start: datetime, end: datetime) -> list[Row]:
    """One row per (occurrence, student) of the school's offer in ``[start, end)``, with
    the occurrence's status and tutor side and the student's attendance (or ``None``)."""
    occ, ser, who, att = m.occurrences, m.booking_series, m.booking_students, m.attendance
    query = (
        sa.select(occ.c.id, occ.c.series_id, occ.c.local_day, occ.c.starts_at, occ.c.ends_at,
                  occ.c.status, occ.c.tutor_status, ser.c.group_id, who.c.student_id,
                  att.c.status.label("attendance"))
        .join(ser, ser.c.id == occ.c.series_id)
        .join(who, who.c.series_id == ser.c.id)
        .outerjoin(att, sa.and_(att.c.occurrence_id == occ.c.id,
                                att.c.student_id == who.c.student_id))
        .where(occ.c.school_id == school_id, ser.c.offer_id == offer_id,
               occ.c.starts_at >= start, occ.c.starts_at < end)
    )
    return await _all(conn, query)


# -- people to tell ----------------------------------------------------------------------------
async def staff_to_alert(conn: AsyncConnection, school_id: str, vendor: str) -> list[Row]:
    """The school's designees (school-scoped staff) and the vendor's managers (enabled)."""
    return await _all(conn, sa.select(users.c.id, users.c.scope).where(
        users.c.role == "staff", users.c.disabled.is_(False),
        sa.or_(sa.and_(users.c.scope == "school", users.c.scope_id == school_id),
               sa.and_(users.c.scope == "vendor", users.c.scope_id == vendor)),
    ).order_by(users.c.id))


# -- parent links and feeds --------------------------------------------------------------------
async def insert_parent_link(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(m.parent_links.insert().values(**values))


async def parent_link(conn: AsyncConnection, link_hash: str) -> Row | None:
    return await _one(conn, sa.select(m.parent_links).where(m.parent_links.c.id == link_hash))


async def use_parent_link(conn: AsyncConnection, link_hash: str, at: datetime) -> bool:
    """Mark the link used; ``False`` if it was already used or revoked (a race lost)."""
    table = m.parent_links
    done = await conn.execute(sa.update(table).where(
        table.c.id == link_hash, table.c.used_at.is_(None), table.c.revoked_at.is_(None),
    ).values(used_at=at))
    return bool(done.rowcount)


async def revoke_parent_links(conn: AsyncConnection, student_id: str, at: datetime) -> int:
    """Withdraw a student's unused links."""
    table = m.parent_links
    done = await conn.execute(sa.update(table).where(
        table.c.student_id == student_id, table.c.used_at.is_(None),
        table.c.revoked_at.is_(None)).values(revoked_at=at))
    return int(done.rowcount)


async def insert_feed(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(m.calendar_feeds.insert().values(**values))


async def feed(conn: AsyncConnection, token_hash: str) -> Row | None:
    return await _one(conn, sa.select(m.calendar_feeds).where(
        m.calendar_feeds.c.token_hash == token_hash))


async def revoke_feeds(conn: AsyncConnection, owner_kind: str, owner_id: str,
                       at: datetime) -> int:
    table = m.calendar_feeds
    done = await conn.execute(sa.update(table).where(
        table.c.owner_kind == owner_kind, table.c.owner_id == owner_id,
        table.c.revoked_at.is_(None)).values(revoked_at=at))
    return int(done.rowcount)


async def starting_between(conn: AsyncConnection, start: datetime, end: datetime,
                           limit: int) -> list[Row]:
    """Scheduled occurrences starting in ``(start, end]`` with their series' zone, students
    and the students' languages (from their enrolments), soonest first."""
    occ, ser, who, enr = m.occurrences, m.booking_series, m.booking_students, m.enrolments
    rows = await _all(conn, sa.select(occ, ser.c.timezone, ser.c.offer_id).join(
        ser, ser.c.id == occ.c.series_id).where(
        occ.c.status == SCHEDULED, occ.c.starts_at > start, occ.c.starts_at <= end,
    ).order_by(occ.c.starts_at).limit(limit))
    series_ids = sorted({r["series_id"] for r in rows})
    people = await _all(conn, sa.select(who.c.series_id, who.c.student_id, enr.c.language)
                        .join(ser, ser.c.id == who.c.series_id)
                        .outerjoin(enr, sa.and_(enr.c.student_id == who.c.student_id,
                                                enr.c.offer_id == ser.c.offer_id,
                                                enr.c.withdrawn_at.is_(None)))
                        .where(who.c.series_id.in_(series_ids or [""]))
                        .order_by(who.c.student_id))
    by_series: dict[str, list[Row]] = defaultdict(list)
    for p in people:
        by_series[p["series_id"]].append(p)
    for r in rows:
        found = by_series[r["series_id"]]
        r["students"] = [p["student_id"] for p in found]
        r["languages"] = [p["language"] or "en" for p in found]
    return rows


async def feed_series(conn: AsyncConnection, owner_kind: str, owner_id: str) -> list[Row]:
    """The series a student is booked in or a tutor teaches (including series in which
    they substitute once), each with its occurrences (by original start) and how many
    changes its history holds."""
    ser, who, occ, hist = m.booking_series, m.booking_students, m.occurrences, m.schedule_changes
    ids: sa.Select[Any] | sa.CompoundSelect[Any]
    if owner_kind == "student":
        ids = sa.select(who.c.series_id).where(who.c.student_id == owner_id)
    else:
        ids = sa.union(
            sa.select(ser.c.id).where(ser.c.tutor_id == owner_id),
            sa.select(occ.c.series_id).where(occ.c.tutor_id == owner_id),
        )
    found = await _all(conn, sa.select(ser).where(ser.c.id.in_(ids)).order_by(ser.c.id))
    keys = [s["id"] for s in found] or [""]
    occurrences = await _all(conn, sa.select(occ).where(occ.c.series_id.in_(keys))
                             .order_by(occ.c.original_starts_at))
    counts: dict[str, int] = {row[0]: int(row[1]) for row in (await conn.execute(
        sa.select(hist.c.series_id, sa.func.count()).where(hist.c.series_id.in_(keys))
        .group_by(hist.c.series_id))).all()}
    by_series: dict[str, list[Row]] = defaultdict(list)
    for o in occurrences:
        by_series[o["series_id"]].append(o)
    for s in found:
        s["occurrences"] = by_series[s["id"]]
        s["changes"] = int(counts.get(s["id"], 0))
    return found


# == leaving, withdrawals, feeds by id, the parent links job ===================================
# (issue #11's changes and safeguards: broker/scheduler/leaving.py, feeds.py, parents.py)
async def groups_with(conn: AsyncConnection, student_id: str, offer_id: str) -> list[Row]:
    """The groups of ``offer_id`` that ``student_id`` is a member of, with their members."""
    grp, mem = m.tutoring_groups, m.group_members
    ids = [r["id"] for r in await _all(conn, sa.select(grp.c.id).join(
        mem, mem.c.group_id == grp.c.id).where(
        mem.c.student_id == student_id, grp.c.offer_id == offer_id).order_by(grp.c.id))]
    return [g for g in [await group(conn, i) for i in ids] if g is not None]


async def remove_member(conn: AsyncConnection, group_id: str, student_id: str,
                        accommodations: str) -> None:
    """A student leaves a group; ``accommodations`` is the remaining members' union."""
    await conn.execute(sa.delete(m.group_members).where(
        m.group_members.c.group_id == group_id, m.group_members.c.student_id == student_id))
    await conn.execute(sa.update(m.tutoring_groups).where(m.tutoring_groups.c.id == group_id)
                       .values(accommodations=accommodations))


async def series_booked_for(conn: AsyncConnection, student_id: str, offer_id: str
                            ) -> list[Row]:
    """Every series of ``offer_id`` booked for ``student_id`` (a group's, alone or not, or
    a home-based one), with its students."""
    ser, who = m.booking_series, m.booking_students
    found = await _all(conn, sa.select(ser).join(who, who.c.series_id == ser.c.id).where(
        who.c.student_id == student_id, ser.c.offer_id == offer_id).order_by(ser.c.id))
    for s in found:
        s["students"] = await series_students(conn, s["id"])
    return found


async def continue_series(conn: AsyncConnection, values: Row, student_ids: Sequence[str],
                          occurrence_ids: Sequence[str]) -> None:
    """A new series ``values`` for ``student_ids`` takes over the given occurrences (their
    ids, times, status and attendance stay; only the series they belong to changes)."""
    await conn.execute(m.booking_series.insert().values(**values))
    if student_ids:
        await conn.execute(m.booking_students.insert(), [
            {"series_id": values["id"], "student_id": s} for s in student_ids
        ])
    if occurrence_ids:
        await conn.execute(sa.update(m.occurrences).where(
            m.occurrences.c.id.in_(list(occurrence_ids))).values(series_id=values["id"]))


async def enrolment_row(conn: AsyncConnection, offer_id: str, student_id: str) -> Row | None:
    """The student's enrolment in the offer that is not withdrawn, or ``None``."""
    return (await enrolments(conn, offer_id, [student_id])).get(student_id)


async def enrolment_history(conn: AsyncConnection, student_id: str) -> list[Row]:
    """Every enrolment of a student, withdrawn ones included, oldest first."""
    table = m.enrolments
    return await _all(conn, sa.select(table).where(table.c.student_id == student_id)
                      .order_by(table.c.enrolled_at, table.c.id))


async def withdraw_enrolment(conn: AsyncConnection, enrolment_id: str, by: str, at: datetime,
                             reason: str) -> bool:
    """Mark an enrolment withdrawn; ``False`` if it already was (a race lost)."""
    table = m.enrolments
    done = await conn.execute(sa.update(table).where(
        table.c.id == enrolment_id, table.c.withdrawn_at.is_(None),
    ).values(withdrawn_at=at, withdrawn_by=by[:64], withdraw_reason=reason[:200]))
    return bool(done.rowcount)


async def feeds_of(conn: AsyncConnection, owner_kind: str, owner_id: str) -> list[Row]:
    """An owner's feeds that are not revoked, newest first (hash, created, last used)."""
    table = m.calendar_feeds
    return await _all(conn, sa.select(table).where(
        table.c.owner_kind == owner_kind, table.c.owner_id == owner_id,
        table.c.revoked_at.is_(None),
    ).order_by(table.c.created_at.desc(), table.c.token_hash))


async def revoke_feed(conn: AsyncConnection, token_hash: str, at: datetime) -> int:
    """Revoke one feed by its token's hash (0 if unknown or already revoked)."""
    table = m.calendar_feeds
    done = await conn.execute(sa.update(table).where(
        table.c.token_hash == token_hash, table.c.revoked_at.is_(None)).values(revoked_at=at))
    return int(done.rowcount)


async def touch_feed(conn: AsyncConnection, token_hash: str, at: datetime,
                     unless_after: datetime) -> None:
    """Record a feed's use at ``at``, unless one was recorded after ``unless_after``."""
    table = m.calendar_feeds
    await conn.execute(sa.update(table).where(
        table.c.token_hash == token_hash,
        sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at <= unless_after),
    ).values(last_used_at=at))


async def links_to_expire(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Ids of links past their expiry, never used or revoked, not yet marked expired."""
    table = m.parent_links
    return [r["id"] for r in await _all(conn, sa.select(table.c.id).where(
        table.c.expires_at <= now, table.c.used_at.is_(None), table.c.revoked_at.is_(None),
        table.c.expired_at.is_(None),
    ).order_by(table.c.expires_at, table.c.id).limit(limit))]


async def mark_links_expired(conn: AsyncConnection, ids: Sequence[str], now: datetime) -> int:
    """Mark the given links expired (again checking that they still qualify)."""
    table = m.parent_links
    if not ids:
        return 0
    done = await conn.execute(sa.update(table).where(
        table.c.id.in_(list(ids)), table.c.expires_at <= now, table.c.used_at.is_(None),
        table.c.revoked_at.is_(None), table.c.expired_at.is_(None),
    ).values(expired_at=now))
    return int(done.rowcount)


async def links_to_purge(conn: AsyncConnection, expired_before: datetime,
                         limit: int) -> list[str]:
    """Ids (hashes) of links whose expiry is before ``expired_before``."""
    table = m.parent_links
    return [r["id"] for r in await _all(conn, sa.select(table.c.id).where(
        table.c.expires_at < expired_before).order_by(table.c.expires_at, table.c.id)
        .limit(limit))]


async def delete_links(conn: AsyncConnection, ids: Sequence[str], expired_before: datetime
                       ) -> int:
    """Delete the given links (their hashes), if still expired before ``expired_before``."""
    table = m.parent_links
    if not ids:
        return 0
    done = await conn.execute(sa.delete(table).where(
        table.c.id.in_(list(ids)), table.c.expires_at < expired_before))
    return int(done.rowcount)
