"""The school directory and students as stored in the database, back as routing's values.

``groups`` is stored as a comma-separated, sorted subset of ``SWD,EL,RFEP``;
:func:`encode_groups` / :func:`decode_groups` are the one place that format lives.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from broker.db.engine import create_engine, session_factory
from broker.db.models import SchoolRow, StudentRow
from broker.settings import Settings
from routing.schools import School, SchoolDirectory, SchoolKind, Student, StudentGroup

_GROUP_ORDER = {g: i for i, g in enumerate(StudentGroup)}


def encode_groups(groups: Iterable[StudentGroup]) -> str:
    """``{EL, SWD}`` -> ``"SWD,EL"`` (the enum's order, so equal sets give equal text)."""
    return ",".join(g.value for g in sorted(groups, key=_GROUP_ORDER.__getitem__))


def decode_groups(text: str) -> frozenset[StudentGroup]:
    """``"SWD,EL"`` -> ``{SWD, EL}``; unknown names are ignored."""
    names = {g.value for g in StudentGroup}
    return frozenset(StudentGroup(p) for p in text.split(",") if p in names)


def school_from_row(row: SchoolRow) -> School:
    return School(
        id=row.id,
        name=row.name,
        region=row.region,
        low_grade=row.low_grade,
        high_grade=row.high_grade,
        kind=SchoolKind(row.kind),
    )


def student_from_row(row: StudentRow) -> Student:
    return Student(
        sis_id=row.sis_id,
        school_id=row.school_id,
        grade=row.grade,
        groups=decode_groups(row.groups),
        given_name=row.given_name,
        family_name=row.family_name,
        sourced_id=row.sourced_id,
    )


async def load_school_directory_from(
    sessions: async_sessionmaker[AsyncSession],
) -> SchoolDirectory:
    """Every school in the database as an immutable :class:`SchoolDirectory` (a snapshot)."""
    async with sessions() as session:
        rows = (await session.execute(select(SchoolRow))).scalars().all()
    return SchoolDirectory({row.id: school_from_row(row) for row in rows})


async def load_school_directory(settings: Settings) -> SchoolDirectory:
    """Open the configured database, read the directory, close the engine again."""
    engine = create_engine(settings.database_url)
    try:
        return await load_school_directory_from(session_factory(engine))
    finally:
        await engine.dispose()


async def find_student(session: AsyncSession, sis_id: str) -> Student | None:
    """The rostered student whose SIS number is ``sis_id``, or None.

    The SIS number is what a launch sends (``custom.student_id``): OneRoster's
    ``identifier``, or ``sourcedId`` for a student imported without one. Only that column
    is searched: a roster key (``sourcedId``) that is not also the student's SIS number
    finds nobody, so one student's key can never be taken for another's SIS number.
    """
    row = await session.scalar(select(StudentRow).where(StudentRow.sis_id == sis_id))
    return None if row is None else student_from_row(row)


async def student_by_sis(engine: AsyncEngine, sis_id: str) -> Student | None:
    """:func:`find_student` on its own short-lived session of ``engine``."""
    async with session_factory(engine)() as session:
        return await find_student(session, sis_id[:64])
