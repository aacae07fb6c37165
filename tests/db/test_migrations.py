"""The Alembic migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import AuditLogRow, HelpRequestRow, create_engine, create_schema, metadata
from broker.db import session_factory as make_session_factory
from broker.directory import find_student
from broker.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    migrate_engine,
)
from broker.settings import Settings

pytestmark = pytest.mark.new_database  # migrations that start from an empty database


@pytest.fixture(autouse=True)
def real_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run the revisions themselves, not the suite's cached dump of them
    (tests/schema_cache.py)."""
    import broker.migrate
    from tests import schema_cache

    monkeypatch.setattr(broker.migrate, "migrate_engine", schema_cache._real)
    monkeypatch.setitem(globals(), "migrate_engine", schema_cache._real)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_migration_matches_models(database_url: str, engine: AsyncEngine) -> None:
    await migrate(Settings(database_url=database_url))
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    assert await current_revision(engine) == head_revision()


async def test_migrate_is_idempotent(database_url: str, engine: AsyncEngine) -> None:
    settings = Settings(database_url=database_url)
    await migrate(settings)
    await migrate(settings)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(metadata.tables) | {"alembic_version"} == names


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_0005_keeps_imported_students_findable_by_their_old_id(
    engine: AsyncEngine,
) -> None:
    """A roster imported before 0005 stored sourcedId as the SIS id: after the upgrade it is
    the key and, until the next import brings identifiers, the SIS number too."""
    await migrate_engine(engine, "0004")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO schools (id, name, region, low_grade, high_grade, kind) "
                "VALUES ('e1', 'Elm', 'East', 0, 5, 'elementary')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO students (sis_id, school_id, grade, groups, given_name) "
                "VALUES ('stu-1', 'e1', 3, 'EL', 'Ann'), ('stu-2', 'e1', 4, '', 'Bo')"
            )
        )
    await migrate_engine(engine)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT sourced_id, sis_id FROM students ORDER BY 1"))
        ).all()
        assert await conn.run_sync(_diff) == []
    assert [tuple(r) for r in rows] == [("stu-1", "stu-1"), ("stu-2", "stu-2")]
    async with make_session_factory(engine)() as session:
        student = await find_student(session, "stu-1")
    assert student is not None and (student.school_id, student.grade) == ("e1", 3)
    async with engine.begin() as conn:  # the SIS number is unique
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(
                    text("UPDATE students SET sis_id = 'stu-1' WHERE sourced_id = 'stu-2'")
                )
        await conn.run_sync(_downgrade, "0004")
    async with engine.connect() as conn:
        back = (await conn.execute(text("SELECT sis_id FROM students ORDER BY 1"))).all()
    assert [r[0] for r in back] == ["stu-1", "stu-2"]


async def test_create_schema_matches_models(engine: AsyncEngine) -> None:
    await create_schema(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_datetimes_come_back_aware_utc(engine: AsyncEngine) -> None:
    await create_schema(engine)
    sessions = make_session_factory(engine)
    pacific = timezone(timedelta(hours=-8))
    at = datetime(2024, 3, 1, 9, 30, tzinfo=pacific)
    naive = datetime(2024, 3, 1, 17, 45)
    async with sessions() as session, session.begin():
        session.add(
            HelpRequestRow(
                id="r1",
                student="p1",
                language="en",
                subject="math",
                status="requested",
                requested_at=at,
                queued_at=naive,
            )
        )
        session.add(AuditLogRow(at=at, actor="a", actor_role="staff", action="x", endpoint="/x"))
    async with sessions() as session:
        row = (await session.execute(select(HelpRequestRow))).scalar_one()
        log = (await session.execute(select(AuditLogRow))).scalar_one()
    assert row.requested_at == at and row.requested_at.tzinfo == UTC
    assert row.requested_at.hour == 17
    assert row.queued_at == naive.replace(tzinfo=UTC) and row.queued_at.tzinfo == UTC
    assert row.overflow is False and row.priority == 0 and row.groups == ""
    assert log.id == 1 and log.detail == ""


async def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (str(mode).lower(), fks) == ("wal", 1)
        assert busy is not None and int(busy) >= 1000
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgres://u@h/d"])
def test_create_engine_normalises_urls(url: str) -> None:
    engine = create_engine(url)
    assert engine.url.drivername in {"sqlite+aiosqlite", "postgresql+asyncpg"}
