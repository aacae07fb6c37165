"""Load a OneRoster v1.1 CSV bundle into the database: all or nothing.

Guarantees:
- **Nothing is written unless the whole bundle is good.** Every file is parsed first
  (:func:`routing.oneroster.parse_oneroster`); the first bad row raises
  :class:`~broker.errors.ImportFailed` naming ``file:line field`` and the database is not
  touched. The write is then **one transaction**: if the database refuses anything, it is
  rolled back and the previous roster stays as it was.
- **Replace semantics.** A OneRoster bulk bundle is the district's whole roster, so the
  ``students`` table is *replaced*: after an import it holds exactly the bundle's students
  (a student absent from the bundle has left the district, and their data goes with them).
  ``schools`` are *upserted*: every school in the bundle is inserted or updated (name,
  region, span, kind); schools not in the bundle are kept, because help requests and
  sessions name them and ``schools.csv`` may have added them.
- The counts per school, grade and groups (:mod:`broker.roster_counts`) are rewritten in
  the same transaction, so they always describe the committed roster.
- **Idempotent**: importing the same bundle twice leaves the same rows.
- Fast: students go in with ``executemany`` in chunks on SQLite and with ``COPY`` on
  PostgreSQL (a 400,000-student bundle imports well under a minute; see bench/RESULTS.md).
  Readers are not blocked: they see the old roster until the transaction commits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import roster_counts
from broker.db.engine import create_engine
from broker.db.models import SchoolRow, StudentRow
from broker.directory import encode_groups
from broker.errors import ImportFailed
from broker.settings import Settings
from routing.errors import DataFileError
from routing.oneroster import DEMOGRAPHICS, ORGS, USERS, Roster, parse_oneroster
from routing.schools import School, Student

CHUNK = 20_000
STUDENT_COLUMNS = (
    "sourced_id", "sis_id", "school_id", "grade", "groups", "given_name", "family_name"
)


@dataclass(frozen=True, slots=True)
class ImportResult:
    schools: int
    students: int
    warnings: list[str] = field(default_factory=list)
    parse_seconds: float = 0.0
    write_seconds: float = 0.0


def failure(exc: DataFileError) -> ImportFailed:
    """An :class:`ImportFailed` whose message reads ``file:line field: message``."""
    where = f"{exc.file}:{exc.line}" + (f" field {exc.field!r}" if exc.field else "")
    reason = exc.message.removeprefix(f"{where}: ")
    head = f"{exc.file}:{exc.line}" + (f" {exc.field}" if exc.field else "")
    return ImportFailed(
        f"{head}: {reason}", file=exc.file, line=exc.line, field=exc.field, reason=exc.code
    )


def read_roster(directory: Path) -> Roster:
    """Open the bundle's files in ``directory`` and parse them (no database involved).

    Raises :class:`ImportFailed` for a missing directory, file or any bad row.
    """
    if not directory.is_dir():
        raise ImportFailed(f"{directory}: not a directory", file=str(directory))
    with ExitStack() as stack:
        files = {}
        for name in (ORGS, USERS, DEMOGRAPHICS):
            path = directory / name
            if path.is_file():
                files[name] = stack.enter_context(path.open(newline="", encoding="utf-8-sig"))
        try:
            return parse_oneroster(files)
        except DataFileError as exc:
            raise failure(exc) from exc
        except UnicodeDecodeError as exc:
            raise ImportFailed(f"bundle is not UTF-8: {exc}") from exc


def _school_values(school: School) -> dict[str, Any]:
    return {
        "id": school.id,
        "name": school.name,
        "region": school.region,
        "low_grade": school.low_grade,
        "high_grade": school.high_grade,
        "kind": school.kind.value,
    }


def _student_tuple(student: Student) -> tuple[str, str, str, int, str, str, str]:
    return (
        student.sourced_id,
        student.sis_id,
        student.school_id,
        student.grade,
        encode_groups(student.groups) if student.groups else "",
        student.given_name,
        student.family_name,
    )


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def _upsert_schools(conn: AsyncConnection, schools: Iterable[School]) -> None:
    values = [_school_values(s) for s in schools]
    if not values:
        return
    dialect = conn.dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SchoolRow)
    updates = {c: stmt.excluded[c] for c in ("name", "region", "low_grade", "high_grade", "kind")}
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=updates), values)


async def _insert_students(conn: AsyncConnection, students: list[Student]) -> None:
    rows = (_student_tuple(s) for s in students)
    if conn.dialect.name == "postgresql":
        # COPY on the same connection, inside the transaction the statements before this
        # one have already begun (so it is rolled back with them).
        import asyncpg

        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            for chunk in _chunks(rows, CHUNK * 5):
                await driver.copy_records_to_table(
                    StudentRow.__tablename__, records=chunk, columns=STUDENT_COLUMNS
                )
        except asyncpg.PostgresError as exc:
            raise _refused(exc) from exc
        return
    stmt = insert(StudentRow)
    for chunk in _chunks(rows, CHUNK):
        await conn.execute(stmt, [dict(zip(STUDENT_COLUMNS, row, strict=True)) for row in chunk])


async def write_roster(engine: AsyncEngine, roster: Roster) -> None:
    """Write a parsed roster in ONE transaction: upsert its schools, replace all students.

    Raises :class:`ImportFailed` (after rollback: nothing changed) if the database refuses.
    """
    try:
        async with engine.begin() as conn:
            await _upsert_schools(conn, roster.schools.values())
            await conn.execute(delete(StudentRow))
            await _insert_students(conn, roster.students)
            await roster_counts.refresh(conn)  # the enrolment the staff reports read
    except DBAPIError as exc:
        raise _refused(exc.orig) from exc


def _refused(cause: object) -> ImportFailed:
    return ImportFailed(f"the database refused the roster; nothing was written: {cause}")


async def import_roster_into(engine: AsyncEngine, directory: Path) -> ImportResult:
    """Parse the bundle in ``directory`` (in a worker thread), then write it (all or nothing)."""
    started = time.perf_counter()
    roster = await asyncio.to_thread(read_roster, directory)
    parsed = time.perf_counter()
    await write_roster(engine, roster)
    return ImportResult(
        schools=len(roster.schools),
        students=len(roster.students),
        warnings=roster.warnings,
        parse_seconds=parsed - started,
        write_seconds=time.perf_counter() - parsed,
    )


async def import_roster(settings: Settings, directory: Path) -> ImportResult:
    """Import the bundle in ``directory`` into ``settings.database_url`` (schema must exist)."""
    engine = create_engine(settings.database_url)
    try:
        return await import_roster_into(engine, directory)
    finally:
        await engine.dispose()


async def count_students_outside(engine: AsyncEngine, key_prefix: str) -> int:
    """How many rostered students have a roster key (``sourcedId``) not starting with
    ``key_prefix`` (demo-seed refuses to replace a real roster)."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(StudentRow)
            .where(StudentRow.sourced_id.not_like(f"{key_prefix}%"))
        )
    return int(count or 0)
