"""Roster import on SQLite and PostgreSQL: demo bundle, all or nothing, replace, directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import SchoolRow, StudentRow, create_schema, session_factory
from broker.db.models import metadata
from broker.directory import (
    decode_groups,
    encode_groups,
    find_student,
    load_school_directory,
    load_school_directory_from,
)
from broker.errors import ImportFailed
from broker.roster_import import import_roster_into, write_roster
from broker.settings import Settings
from routing.errors import DataFileError
from routing.oneroster import Roster
from routing.schools import School, SchoolKind, Student, StudentGroup
from web.cli import main as cli_main
from web.commands.demo_seed import DEMO_BUNDLE, seed


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        schools = await conn.scalar(select(func.count()).select_from(SchoolRow))
        students = await conn.scalar(select(func.count()).select_from(StudentRow))
    return int(schools or 0), int(students or 0)


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncEngine:
    await create_schema(engine)
    return engine


def copy_demo(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, target)
    return target


async def test_demo_bundle_imports_and_reads_back(schema: AsyncEngine) -> None:
    result = await import_roster_into(schema, DEMO_BUNDLE)
    assert (result.schools, result.students) == await counts(schema)
    assert result.schools == 41 and result.students > 300
    directory = await load_school_directory_from(session_factory(schema))
    assert len(directory) == 41
    va = next(s for s in directory if s.kind is SchoolKind.VIRTUAL_ACADEMY)
    assert (va.low_grade, va.high_grade, va.span) == (0, 12, "K-12")
    async with session_factory(schema)() as session:
        student = await find_student(session, "SIS00002")  # the demo LMS's student_id
        assert await find_student(session, "nobody") is None
        assert await find_student(session, "demo-stu-00002") is None  # a key, not an SIS id
    assert student is not None and student.school_id == "demo-sch-1001"
    assert student.sourced_id == "demo-stu-00002"
    assert student.groups == {StudentGroup.SWD, StudentGroup.EL}
    # idempotent: the same bundle again leaves the same rows
    again = await import_roster_into(schema, DEMO_BUNDLE)
    assert (again.schools, again.students) == await counts(schema)


async def test_launch_ids_match_the_identifier_not_the_sourced_id(
    schema: AsyncEngine, tmp_path: Path
) -> None:
    """Schoology sends the SIS number (OneRoster ``identifier``), never the ``sourcedId``."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "orgs.csv").write_text(
        "sourcedId,name,type,parentSourcedId\nsch-9f2c,Elm Elementary,school,\n"
    )
    (bundle / "users.csv").write_text(
        "sourcedId,orgSourcedIds,role,givenName,grades,identifier\n"
        "6c1d-4e0b,sch-9f2c,student,Ann,04,SIS00070\n"
        "SIS00071,sch-9f2c,student,Bo,05,\n"  # no identifier: the sourcedId is the SIS id
    )
    (bundle / "demographics.csv").write_text("sourcedId,swd,el,rfep\n6c1d-4e0b,true,,\n")
    await import_roster_into(schema, bundle)
    async with session_factory(schema)() as session:
        ann = await find_student(session, "SIS00070")
        bo = await find_student(session, "SIS00071")
        by_key = await find_student(session, "6c1d-4e0b")
    assert ann == Student(
        "SIS00070", "sch-9f2c", 4, frozenset({StudentGroup.SWD}), "Ann", "", "6c1d-4e0b"
    )
    assert bo is not None and (bo.sourced_id, bo.grade) == ("SIS00071", 5)
    assert by_key is None  # the roster key alone finds nobody
    # Re-importing replaces the rows: the unique SIS number does not get in the way.
    await import_roster_into(schema, bundle)
    assert await counts(schema) == (1, 2)


async def test_bad_row_in_the_middle_writes_nothing(schema: AsyncEngine, tmp_path: Path) -> None:
    bundle = copy_demo(tmp_path)
    users = (bundle / "users.csv").read_text().splitlines(keepends=True)
    middle = len(users) // 2
    users[middle] = users[middle].rstrip("\n").rsplit(",", 2)[0] + ",7th,\n"
    (bundle / "users.csv").write_text("".join(users))
    with pytest.raises(ImportFailed) as caught:
        await import_roster_into(schema, bundle)
    assert caught.value.message.startswith(f"users.csv:{middle + 1} grades: ")
    assert caught.value.detail["line"] == middle + 1
    assert isinstance(caught.value.__cause__, DataFileError)
    assert await counts(schema) == (0, 0)


async def test_failed_import_keeps_the_previous_roster(schema: AsyncEngine, tmp_path: Path) -> None:
    await import_roster_into(schema, DEMO_BUNDLE)
    before = await counts(schema)
    bundle = copy_demo(tmp_path)
    with (bundle / "orgs.csv").open("a") as f:
        f.write("demo-sch-1001,active,,Twice,school,,demo-region-east\n")
    with pytest.raises(ImportFailed, match=r"orgs\.csv:\d+ sourcedId: duplicate"):
        await import_roster_into(schema, bundle)
    assert await counts(schema) == before


async def test_database_refusal_rolls_back_everything(schema: AsyncEngine) -> None:
    await import_roster_into(schema, DEMO_BUNDLE)
    before = await counts(schema)
    new = School("new-school", "New", "East", 0, 5, SchoolKind.ELEMENTARY)
    orphan = Student("orphan", "no-such-school", 3)  # violates the foreign key
    with pytest.raises(ImportFailed, match="nothing was written"):
        await write_roster(schema, Roster({"new-school": new}, [orphan]))
    assert await counts(schema) == before
    directory = await load_school_directory_from(session_factory(schema))
    assert "new-school" not in directory


async def test_students_are_replaced_schools_upserted(schema: AsyncEngine) -> None:
    await import_roster_into(schema, DEMO_BUNDLE)
    renamed = School("demo-sch-1001", "Renamed", "West", 0, 6, SchoolKind.ELEMENTARY)
    extra = School("x-1", "Extra", "North", 9, 12, SchoolKind.HIGH)
    only = Student("x-stu", "x-1", 10, frozenset({StudentGroup.RFEP}), "Xi", "Yu")
    await write_roster(schema, Roster({s.id: s for s in (renamed, extra)}, [only]))
    assert await counts(schema) == (42, 1)
    directory = await load_school_directory_from(session_factory(schema))
    assert directory.get("demo-sch-1001") == renamed and directory.get("x-1") == extra
    async with session_factory(schema)() as session:
        assert await find_student(session, "x-stu") == only


async def test_demo_seed_and_directory_from_settings(
    database_url: str, engine: AsyncEngine
) -> None:
    settings = Settings(database_url=database_url)
    first = await seed(settings)
    assert await seed(settings) == first  # idempotent
    assert await counts(engine) == first
    directory = await load_school_directory(settings)
    assert len(directory) == first[0]


async def test_demo_seed_refuses_to_replace_a_real_roster(
    database_url: str, schema: AsyncEngine
) -> None:
    real = School("s", "Real", "East", 0, 5, SchoolKind.ELEMENTARY)
    await write_roster(schema, Roster({"s": real}, [Student("123", "s", 1)]))
    with pytest.raises(Exception, match="non-demo students"):
        await seed(Settings(database_url=database_url))
    assert await counts(schema) == (1, 1)


def test_cli_import_roster_reports_the_culprit_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_demo(tmp_path)
    (bundle / "users.csv").write_text(
        (bundle / "users.csv").read_text().replace("demo-sch-1002,student", "ghost,student", 1)
    )
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    assert cli_main(["import-roster", str(bundle)]) == 2
    assert "users.csv:" in capsys.readouterr().err
    assert not db.exists()  # nothing written, not even the schema
    assert cli_main(["import-roster", str(DEMO_BUNDLE)]) == 0
    assert "imported 41 schools" in capsys.readouterr().out


def test_groups_text_round_trips() -> None:
    groups = frozenset({StudentGroup.RFEP, StudentGroup.SWD})
    assert encode_groups(groups) == "SWD,RFEP"
    assert decode_groups("SWD,RFEP") == groups and decode_groups("") == frozenset()


async def _per_school_grade_groups(engine: AsyncEngine) -> tuple[dict[tuple[str, int, str], int],
                                                                 dict[tuple[str, int, str], int]]:
    """(the roster counted now, ``roster_counts``): what the staff usage report reads."""
    t = metadata.tables
    async with engine.connect() as conn:
        st = t["students"]
        counted = {
            (school, grade, groups): int(n)
            for school, grade, groups, n in await conn.execute(
                select(st.c.school_id, st.c.grade, st.c.groups, func.count())
                .group_by(st.c.school_id, st.c.grade, st.c.groups)
            )
        }
        rc = t["roster_counts"]
        kept = {
            (school, grade, groups): int(n)
            for school, grade, groups, n in await conn.execute(
                select(rc.c.school_id, rc.c.grade, rc.c.groups, rc.c.students)
            )
        }
    return counted, kept


async def test_each_import_rewrites_the_roster_counts_with_the_roster(
    schema: AsyncEngine,
) -> None:
    await import_roster_into(schema, DEMO_BUNDLE)
    counted, kept = await _per_school_grade_groups(schema)
    assert kept == counted and sum(kept.values()) > 300
    new = School("x-1", "Extra", "North", 9, 12, SchoolKind.HIGH)
    only = [Student(f"x-{i}", "x-1", 10, frozenset({StudentGroup.EL})) for i in range(3)]
    await write_roster(schema, Roster({"x-1": new}, only))
    assert await _per_school_grade_groups(schema) == ({("x-1", 10, "EL"): 3},) * 2
    with pytest.raises(ImportFailed):  # refused: the counts stay the previous roster's
        await write_roster(schema, Roster({}, [Student("orphan", "no-such-school", 3)]))
    assert await _per_school_grade_groups(schema) == ({("x-1", 10, "EL"): 3},) * 2
