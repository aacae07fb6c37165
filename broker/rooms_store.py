"""The SQL of booked sessions' rooms (:mod:`broker.rooms`): which occurrences are due to
open or close, opening a batch in one transaction, closing one, joining, and the reads
the broker's edge needs. Nothing here decides anything: the lead, the overrun and who may
enter are :mod:`broker.rooms`'.

Guarantees:

* :func:`open_batch` writes a batch of rooms (sessions and their participants) in **one**
  transaction, and a room whose occurrence already has one is skipped by the unique
  ``booking`` column (``ON CONFLICT DO NOTHING``), so two runs, or two workers racing,
  open each occurrence's room once; only the rooms this call inserted are returned.
* :func:`close` ends a room at most once (guarded by ``ended_at IS NULL``) and clears the
  participants' first names in the same transaction.
* :func:`rooms` returns each room's people as the database says now (the occurrence's
  tutor, the series' students) next to its session row; :func:`sync_people` brings the
  row up to them idempotently (processes racing write the same values).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db import scheduler_models as m
from broker.db.engine import dialect_insert
from broker.db.models import metadata
from broker.db.reader import Reader
from broker.round_trips import padded_params

Row = dict[str, Any]

sessions = metadata.tables["tutoring_sessions"]
participants = metadata.tables["session_participants"]
schools = metadata.tables["schools"]
students = metadata.tables["students"]

SCHEDULED = "scheduled"
PEOPLE_BATCH = 16  # people per statement when connecting people are looked up together


async def _all(conn: AsyncConnection, query: Any) -> list[Row]:
    return [dict(r) for r in (await conn.execute(query)).mappings().all()]


# -- opening -----------------------------------------------------------------------------
async def due_to_open(conn: AsyncConnection, opens_before: datetime, now: datetime,
                      limit: int) -> list[Row]:
    """Scheduled occurrences starting by ``opens_before`` and not yet ended at ``now``
    that have no room, soonest first, each with what its room is made of: the series'
    subject and language, the offer's programme and vendor, the tutor's display name, the
    school's kind, and ``students`` (roster id, grade)."""
    occ, ser, offer, prof = m.occurrences, m.booking_series, m.programme_offers, m.tutor_profiles
    has_room = sa.exists().where(sessions.c.booking == occ.c.id)
    rows = await _all(conn, sa.select(
        occ.c.id, occ.c.series_id, occ.c.school_id, occ.c.tutor_id, occ.c.starts_at,
        occ.c.ends_at, ser.c.subject, ser.c.language, offer.c.programme, offer.c.vendor,
        prof.c.display_name.label("tutor_name"), schools.c.kind.label("school_kind"),
    ).join(ser, ser.c.id == occ.c.series_id).join(offer, offer.c.id == ser.c.offer_id)
        .outerjoin(prof, prof.c.tutor_id == occ.c.tutor_id)
        .outerjoin(schools, schools.c.id == occ.c.school_id)
        .where(occ.c.status == SCHEDULED, occ.c.starts_at <= opens_before,
               occ.c.ends_at > now, ~has_room)
        .order_by(occ.c.starts_at, occ.c.id).limit(limit))
    who = m.booking_students
    series_ids = sorted({r["series_id"] for r in rows}) or [""]
    found = await _all(conn, sa.select(who.c.series_id, who.c.student_id, students.c.grade)
                       .outerjoin(students, students.c.sourced_id == who.c.student_id)
                       .where(who.c.series_id.in_(series_ids)).order_by(who.c.student_id))
    by_series: dict[str, list[Row]] = defaultdict(list)
    for f in found:
        by_series[f["series_id"]].append({"student_id": f["student_id"], "grade": f["grade"]})
    for r in rows:
        r["students"] = by_series[r["series_id"]]
    return rows


async def open_batch(engine: AsyncEngine, rooms: Sequence[Row],
                     people: Sequence[Row]) -> set[str]:
    """Insert ``rooms`` (session rows) and the ``people`` (participant rows) of those that
    were inserted, in one transaction; return the ids of the sessions inserted (a room
    whose occurrence already has one is skipped)."""
    if not rooms:
        return set()
    async with engine.begin() as conn:
        stmt = dialect_insert(conn, sessions).on_conflict_do_nothing(index_elements=["booking"])
        made = {str(r[0]) for r in (await conn.execute(
            stmt.returning(sessions.c.id), list(rooms))).all()}
        mine = [p for p in people if p["session_id"] in made]
        if mine:
            await conn.execute(participants.insert(), mine)
    return made


# -- closing -----------------------------------------------------------------------------
async def due_to_close(conn: AsyncConnection, ended_before: datetime) -> list[Row]:
    """Open rooms whose occurrence ended before ``ended_before`` or was cancelled (or is
    gone): ``id``, ``booking``, ``why`` (``scheduled_end`` or ``cancelled``)."""
    occ = m.occurrences
    rows = await _all(conn, sa.select(
        sessions.c.id, sessions.c.booking, occ.c.ends_at, occ.c.status,
    ).outerjoin(occ, occ.c.id == sessions.c.booking).where(
        sessions.c.ended_at.is_(None), sessions.c.booking.is_not(None),
        sa.or_(occ.c.id.is_(None), occ.c.status == "cancelled",
               occ.c.ends_at <= ended_before)))
    for r in rows:
        r["why"] = "cancelled" if r["status"] in (None, "cancelled") else "scheduled_end"
    return rows


async def close(engine: AsyncEngine, session_id: str, ended_at: datetime,
                reason: str) -> bool:
    """End an open room with ``reason``; clear its participants' first names. ``False``
    (nothing changed) if it had already ended."""
    async with engine.begin() as conn:
        done = await conn.execute(sessions.update().where(
            sessions.c.id == session_id, sessions.c.ended_at.is_(None),
            sessions.c.booking.is_not(None),
        ).values(ended_at=ended_at, end_reason=reason))
        if not done.rowcount:
            return False
        await conn.execute(participants.update().where(
            participants.c.session_id == session_id).values(first_name=None))
    return True


# -- reads and the join --------------------------------------------------------------------
async def open_people(engine: AsyncEngine) -> dict[str, tuple[Any, ...]]:
    """Every open room's id with what its people are now: ``(the occurrence's tutor, its
    series, how many students that series has)``. One read of the partial index of open
    booked sessions, a primary-key probe of each occurrence and a count on the prefix of
    ``booking_students``' key; a room whose value changed has new people. Exact because a
    series' ``booking_students`` rows are only ever added (a student who leaves takes the
    occurrences to a continuation series, which changes the series)."""
    occ, who = m.occurrences, m.booking_students
    count = sa.select(sa.func.count()).where(who.c.series_id == occ.c.series_id)
    async with engine.connect() as conn:
        return {str(r[0]): (r[1], r[2], int(r[3] or 0)) for r in (await conn.execute(sa.select(
            sessions.c.id, occ.c.tutor_id, occ.c.series_id, count.scalar_subquery(),
        ).outerjoin(occ, occ.c.id == sessions.c.booking).where(
            sessions.c.ended_at.is_(None), sessions.c.booking.is_not(None)))).all()}


async def sync_people(engine: AsyncEngine, rows: Sequence[Row]) -> None:
    """Bring open rooms' rows (as :func:`rooms` read them) to their occurrence's people in
    one transaction: the session's ``tutor_id`` and ``tutor_name`` to the occurrence's
    tutor, and a participant row for each of the series' students that has none
    (participants of students no longer booked stay, as a record of the room). Idempotent:
    processes racing write the same values, the inserts skip rows already there."""
    async with engine.begin() as conn:
        for r in rows:
            if r["ended_at"] is not None or r["occ_tutor"] is None:
                continue
            if r["occ_tutor"] != r["tutor_id"]:
                await conn.execute(sessions.update().where(
                    sessions.c.id == r["id"], sessions.c.ended_at.is_(None),
                ).values(tutor_id=r["occ_tutor"],
                         tutor_name=(r["occ_tutor_name"] or "Tutor")[:100]))
            there = {p["student_id"] for p in r["people"]}
            new = [{"session_id": r["id"], "student_id": s["student_id"], "grade": s["grade"],
                    "pseudonym": None, "first_name": None, "joined_at": None}
                   for s in r["students"] if s["student_id"] not in there]
            if new:
                await conn.execute(dialect_insert(conn, participants).on_conflict_do_nothing(
                    index_elements=["session_id", "student_id"]), new)


def drifted(row: Row) -> bool:
    """Whether an open room's row lags its occurrence's people (see :func:`sync_people`)."""
    if row["ended_at"] is not None or row["occ_tutor"] is None:
        return False
    there = {p["student_id"] for p in row["people"]}
    return row["occ_tutor"] != row["tutor_id"] or any(
        s["student_id"] not in there for s in row["students"])


async def rooms(engine: AsyncEngine, ids: Iterable[str]) -> list[Row]:
    """Rooms (open or ended) by session id, each with its occurrence's ``starts_at`` and
    ``ends_at``, ``people`` (its participant rows) and what the database says of its
    people now: ``occ_tutor`` and ``occ_tutor_name`` (the occurrence's tutor, a substitute
    included) and ``students`` (the series' students, roster id and grade)."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    async with engine.connect() as conn:
        return await _rooms(conn, wanted)


async def _rooms(conn: AsyncConnection, wanted: list[str]) -> list[Row]:
    occ, prof, who = m.occurrences, m.tutor_profiles, m.booking_students
    out: list[Row] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        found = await _all(conn, sa.select(
            sessions, occ.c.starts_at, occ.c.ends_at, occ.c.series_id,
            occ.c.tutor_id.label("occ_tutor"), prof.c.display_name.label("occ_tutor_name"),
        ).outerjoin(occ, occ.c.id == sessions.c.booking)
            .outerjoin(prof, prof.c.tutor_id == occ.c.tutor_id).where(
            sessions.c.id.in_(chunk), sessions.c.booking.is_not(None)))
        people = await _all(conn, sa.select(participants).where(
            participants.c.session_id.in_(chunk)).order_by(participants.c.student_id))
        series_ids = sorted({r["series_id"] for r in found if r["series_id"]}) or [""]
        booked = await _all(conn, sa.select(who.c.series_id, who.c.student_id, students.c.grade)
                            .outerjoin(students, students.c.sourced_id == who.c.student_id)
                            .where(who.c.series_id.in_(series_ids)).order_by(who.c.student_id))
        by_session: dict[str, list[Row]] = defaultdict(list)
        for p in people:
            by_session[p["session_id"]].append(p)
        by_series: dict[str, list[Row]] = defaultdict(list)
        for b in booked:
            by_series[b["series_id"]].append({"student_id": b["student_id"], "grade": b["grade"]})
        for r in found:
            r["people"] = by_session[r["id"]]
            r["students"] = by_series[r["series_id"]] if r["series_id"] else []
        out += found
    return out


async def person_rooms(engine: AsyncEngine, reader: Reader, now: datetime, until: datetime,
                       *, tutor: str | None = None,
                       student: str | None = None) -> tuple[list[Row], Row | None]:
    """What a connecting tutor (scheduler id) or student (roster id) is told: their open
    rooms (as :func:`rooms`), or, with none, their next occurrence (scheduled, not ended by
    ``now``, starting by ``until``, never had a room). Every connect asks, and almost
    nobody has a room open, so both questions go to the hot-path ``reader`` in one
    hand-off (:mod:`broker.db.reader`: statements built once); the rooms themselves, when
    there are some, are read through ``engine``."""
    if tutor is None and student is None:
        return [], None
    role, who = ("tutor", tutor) if tutor is not None else ("student", student)
    open_ids, upcoming = await reader.batch([
        (_OPEN_ROOMS_OF[role], {"who": who}),
        (_NEXT_OCCURRENCE[role], {"who": who, "now": now, "until": until}),
    ])
    if open_ids:
        async with engine.connect() as conn:
            return await _rooms(conn, sorted(str(r["id"]) for r in open_ids)), None
    return [], upcoming[0] if upcoming else None


async def people_rooms(engine: AsyncEngine, reader: Reader, now: datetime, until: datetime,
                       role: str, people: Sequence[str]) -> list[tuple[list[Row], Row | None]]:
    """:func:`person_rooms` for many people of one ``role`` ("tutor" or "student") at once,
    in the order given (repeats allowed), each answer a copy of its own: both questions
    go as one statement per :data:`PEOPLE_BATCH` people, in one hand-off (a crowd
    reconnecting after a restart: 2 statements per 16 people, not 2 each). Alone, the
    single statements, as cheap as before. The rooms of the few with one open are read as
    :func:`person_rooms` reads them (one read per such person, over one connection)."""
    unique = list(dict.fromkeys(people))
    if len(unique) == 1:
        answers = {unique[0]: await person_rooms(engine, reader, now, until,
                                                 **{role: unique[0]})}
    else:
        answers = await _answers_of_many(engine, reader, now, until, role, unique)
    out = []
    for who in people:
        rows, nxt = answers[who]
        out.append(([dict(r) for r in rows], None if nxt is None else dict(nxt)))
    return out


async def _answers_of_many(engine: AsyncEngine, reader: Reader, now: datetime,
                           until: datetime, role: str,
                           unique: list[str]) -> dict[str, tuple[list[Row], Row | None]]:
    """:func:`people_rooms`'s answers for two or more distinct people, by person."""
    queries: list[tuple[Any, dict[str, Any]]] = []
    for given in padded_params(unique, PEOPLE_BATCH, "w"):
        queries.append((_OPEN_ROOMS_OF_MANY[role], given))
        queries.append((_NEXT_OCCURRENCE_OF_MANY[role], {**given, "now": now, "until": until}))
    found = await reader.batch(queries)
    open_ids: dict[str, list[str]] = defaultdict(list)
    for rows in found[0::2]:
        for r in rows:
            open_ids[r["who"]].append(str(r["id"]))
    soonest: dict[str, Row] = {}
    for rows in found[1::2]:
        for r in rows:  # the first to start (then by id), as the single statement's order
            had = soonest.get(r["who"])
            if had is None or (r["starts_at"], r["id"]) < (had["starts_at"], had["id"]):
                soonest[r["who"]] = r
    answers: dict[str, tuple[list[Row], Row | None]] = {}
    for who in unique:
        nxt = soonest.get(who)
        answers[who] = ([], None if nxt is None else _without_who(nxt))
    if open_ids:  # the few in a room now: their rooms, as person_rooms reads them
        async with engine.connect() as conn:
            for who, ids in open_ids.items():
                answers[who] = (await _rooms(conn, sorted(set(ids))), None)
    return answers


def _without_who(row: Row) -> Row:
    return {k: v for k, v in row.items() if k != "who"}


def _of_whom(query: sa.Select[Any], role: str, many: bool, tutor: sa.Column[Any],
             student: sa.Column[Any], via: Any) -> sa.Select[Any]:
    """``query`` narrowed to one person, ``who``: a tutor by the ``tutor`` column, a
    student by the ``student`` column of its table, joined ``via``; or, ``many``, to up to
    :data:`PEOPLE_BATCH` people (``w0``...), each row with its ``who``."""
    if role == "tutor":
        who = tutor
    else:
        query = query.join(student.table, via)
        who = student
    if many:
        people: list[Any] = [sa.bindparam(f"w{i}") for i in range(PEOPLE_BATCH)]
        return query.add_columns(who.label("who")).where(who.in_(people))
    return query.where(who == sa.bindparam("who"))


def _open_rooms_of(role: str, *, many: bool = False) -> sa.Select[Any]:
    """The open rooms of a tutor (their scheduler id) or a student (roster id): ``who``;
    ``many``: of up to :data:`PEOPLE_BATCH` people (``w0``...), each row with its ``who``."""
    query = sa.select(sessions.c.id).where(
        sessions.c.ended_at.is_(None), sessions.c.booking.is_not(None))
    return _of_whom(query, role, many, sessions.c.tutor_id, participants.c.student_id,
                    participants.c.session_id == sessions.c.id)


def _next_occurrence(role: str, *, many: bool = False) -> sa.Select[Any]:
    """The next scheduled occurrence of ``who`` that has not ended by ``now``, starts by
    ``until`` and has had no room yet (one its tutor ended early is not "next" again), with
    its series' subject and language and its offer's programme. ``many``: every such
    occurrence of up to :data:`PEOPLE_BATCH` people (``w0``...), each row with its ``who``
    (the caller keeps each one's first)."""
    occ, ser, offer = m.occurrences, m.booking_series, m.programme_offers
    booked = m.booking_students
    had_room = sa.exists().where(sessions.c.booking == occ.c.id)
    query = sa.select(
        occ.c.id, occ.c.starts_at, occ.c.ends_at, ser.c.subject, ser.c.language,
        offer.c.programme, offer.c.vendor,
    ).join(ser, ser.c.id == occ.c.series_id).join(offer, offer.c.id == ser.c.offer_id).where(
        occ.c.status == SCHEDULED, occ.c.ends_at > sa.bindparam("now"),
        occ.c.starts_at <= sa.bindparam("until"), ~had_room,
    )
    narrowed = _of_whom(query, role, many, occ.c.tutor_id, booked.c.student_id,
                        booked.c.series_id == ser.c.id)
    return narrowed if many else narrowed.order_by(occ.c.starts_at).limit(1)


ROLES = ("tutor", "student")
_OPEN_ROOMS_OF = {role: _open_rooms_of(role) for role in ROLES}
_NEXT_OCCURRENCE = {role: _next_occurrence(role) for role in ROLES}
_OPEN_ROOMS_OF_MANY = {role: _open_rooms_of(role, many=True) for role in ROLES}
_NEXT_OCCURRENCE_OF_MANY = {role: _next_occurrence(role, many=True) for role in ROLES}


async def join(engine: AsyncEngine, session_id: str, student_id: str, pseudonym: str,
               first_name: str | None, at: datetime) -> None:
    """Record a student's join: their pseudonym and first name (for the others to see),
    and the first time they joined."""
    async with engine.begin() as conn:
        await conn.execute(participants.update().where(
            participants.c.session_id == session_id, participants.c.student_id == student_id,
        ).values(pseudonym=pseudonym, first_name=first_name, joined_at=sa.func.coalesce(
            participants.c.joined_at,
            sa.bindparam("at", at, type_=participants.c.joined_at.type))))
