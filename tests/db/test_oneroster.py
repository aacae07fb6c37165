"""The OneRoster v1.1 parser (pure): spans, kinds, regions, groups, and every bad row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from routing.errors import DataFileError, DuplicateIdError
from routing.oneroster import parse_oneroster
from routing.school_csv import parse_schools_csv
from routing.schools import SchoolKind, StudentGroup

DEMO = Path(__file__).resolve().parents[2] / "broker" / "data" / "demo"

ORGS = [
    "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "d1,active,,Demo District,district,,",
    "r1,active,,Local District East,local,,d1",
    "e1,active,,Elm Elementary,school,,r1",
    "m1,active,,Mid Middle School,school,,r1",
    "k8,active,,Kay Eight Academy,school,,d1",
    "empty,active,,No Students Yet,school,,r1",
]
USERS_HEADER = "sourcedId,status,enabledUser,orgSourcedIds,role,givenName,familyName,grades"
USERS = [
    USERS_HEADER,
    "s1,active,true,e1,student,Ann,One,KG",
    's2,active,true,"d1,e1",student,Bo,Two,"03,04"',
    "s3,active,true,e1,student,Cy,Three,5",
    "t1,active,true,e1,teacher,Tea,Cher,",
    "s4,active,true,m1,student,Di,Four,06",
    "s5,active,true,m1,student,Ed,Five,08",
    "s6,active,true,k8,student,Fi,Six,K",
    "s7,active,true,k8,student,Gu,Seven,8",
    "gone,tobedeleted,true,e1,student,Old,Row,XX",
]
DEMOGRAPHICS = [
    "sourcedId,status,birthDate,swd,el,rfep",
    "s1,active,,true,false,false",
    "s2,active,,false,TRUE,",
    "s3,active,,1,0,yes",
    "t1,active,,true,false,false",
]


def bundle(
    orgs: list[str] = ORGS, users: list[str] = USERS, demo: list[str] | None = DEMOGRAPHICS
) -> dict[str, list[str]]:
    files = {"orgs.csv": orgs, "users.csv": users}
    if demo is not None:
        files["demographics.csv"] = demo
    return files


def test_spans_kinds_regions_and_groups_are_derived() -> None:
    roster = parse_oneroster(bundle())
    e1, m1, k8 = roster.schools["e1"], roster.schools["m1"], roster.schools["k8"]
    assert (e1.low_grade, e1.high_grade, e1.kind, e1.region) == (
        0,
        5,
        SchoolKind.ELEMENTARY,
        "East",
    )
    assert (m1.low_grade, m1.high_grade, m1.kind) == (6, 8, SchoolKind.MIDDLE)
    assert (k8.low_grade, k8.high_grade, k8.kind, k8.region) == (0, 8, SchoolKind.SPAN, "")
    assert "empty" not in roster.schools and any("empty" in w for w in roster.warnings)
    by_id = {s.sis_id: s for s in roster.students}
    assert set(by_id) == {"s1", "s2", "s3", "s4", "s5", "s6", "s7"}  # no teacher, no deleted
    assert by_id["s2"].school_id == "e1" and by_id["s2"].grade == 3  # first school, first grade
    assert by_id["s1"].groups == {StudentGroup.SWD}
    assert by_id["s2"].groups == {StudentGroup.EL}
    assert by_id["s3"].groups == {StudentGroup.SWD, StudentGroup.RFEP}
    assert by_id["s4"].groups == frozenset() and by_id["s1"].given_name == "Ann"


def test_span_kind_and_region_columns_win_when_given() -> None:
    orgs = [
        "sourcedId,name,type,parentSourcedId,lowGrade,highGrade,kind,region",
        "a,Alpha,school,,KG,06,,West",
        "b,Beta Continuation High,school,,09,12,,",
        "c,Gamma Virtual Academy,school,,,,,",
        "d,Delta,school,,,,options,North",
    ]
    users = [
        USERS_HEADER,
        "u1,active,true,a,student,,,3",
        "u2,active,true,c,student,,,KG",
        "u3,active,true,c,student,,,12",
        "u4,active,true,d,student,,,10",
    ]
    roster = parse_oneroster(bundle(orgs, users, None))
    a, b, c, d = (roster.schools[x] for x in "abcd")
    assert (a.low_grade, a.high_grade, a.kind, a.region) == (0, 6, SchoolKind.ELEMENTARY, "West")
    assert (b.low_grade, b.high_grade, b.kind) == (9, 12, SchoolKind.OPTIONS)  # no students
    assert (c.low_grade, c.high_grade, c.kind) == (0, 12, SchoolKind.VIRTUAL_ACADEMY)
    assert (d.kind, d.region, d.low_grade) == (SchoolKind.OPTIONS, "North", 10)


def test_demo_bundle_derives_exactly_the_demo_schools_csv() -> None:
    files = {
        name: (DEMO / "oneroster" / name).open(newline="", encoding="utf-8")
        for name in ("orgs.csv", "users.csv", "demographics.csv")
    }
    try:
        roster = parse_oneroster(files)
    finally:
        for f in files.values():
            f.close()
    with (DEMO / "schools.csv").open(newline="", encoding="utf-8") as f:
        expected = list(csv.DictReader(f))
    assert roster.warnings == []
    assert len(roster.schools) == len(expected) >= 40
    label = {0: "K"}
    for row in expected:
        school = roster.schools[row["id"]]
        got = (school.name, school.region, school.kind.value)
        assert got == (row["name"], row["region"], row["kind"])
        assert label.get(school.low_grade, str(school.low_grade)) == row["low_grade"]
        assert label.get(school.high_grade, str(school.high_grade)) == row["high_grade"]
    from_csv = parse_schools_csv((DEMO / "schools.csv").read_text(encoding="utf-8"))
    assert set(from_csv) == set(roster.schools.values())
    kinds = {s.kind for s in roster.schools.values()}
    assert kinds == set(SchoolKind)
    assert {s.region for s in roster.schools.values()} == {"East", "North", "South", "West"}
    n = len(roster.students)
    assert 300 <= n <= 600
    rate = {g: sum(g in s.groups for s in roster.students) / n for g in StudentGroup}
    assert 0.10 < rate[StudentGroup.SWD] < 0.20
    assert 0.13 < rate[StudentGroup.EL] < 0.23
    assert 0.20 < rate[StudentGroup.RFEP] < 0.32
    assert not any({StudentGroup.EL, StudentGroup.RFEP} <= s.groups for s in roster.students)


def _with_user_row(row: str, at: int = 3) -> list[str]:
    return [*USERS[:at], row, *USERS[at:]]


@pytest.mark.parametrize(
    ("files", "file", "line", "field"),
    [
        (bundle(users=_with_user_row("x1,active,true,e1,student,,,13")), "users.csv", 4, "grades"),
        (bundle(users=_with_user_row("x1,active,true,e1,student,,,")), "users.csv", 4, "grades"),
        (
            bundle(users=_with_user_row("x1,active,true,nope,student,,,KG")),
            "users.csv",
            4,
            "orgSourcedIds",
        ),
        (
            bundle(users=_with_user_row("x1,active,true,d1,student,,,KG")),
            "users.csv",
            4,
            "orgSourcedIds",
        ),
        (bundle(users=_with_user_row("x1,active,e1,student,KG")), "users.csv", 4, None),
        (bundle(users=[USERS[0].replace("grades", "grade")]), "users.csv", 1, "grades"),
        (bundle(orgs=[*ORGS, "z,active,,Zed,school,,missing"]), "orgs.csv", 8, "parentSourcedId"),
        (bundle(orgs=[ORGS[0].replace(",type,", ",kind_of,")]), "orgs.csv", 1, "type"),
        (
            bundle(demo=[*DEMOGRAPHICS, "s4,active,,maybe,false,false"]),
            "demographics.csv",
            6,
            "swd",
        ),
        (
            bundle(users=_with_user_row("x" * 65 + ",active,true,e1,student,,,KG")),
            "users.csv",
            4,
            "sourcedId",
        ),
        ({"orgs.csv": ORGS}, "users.csv", 0, None),
    ],
)
def test_bad_rows_name_file_line_and_field(
    files: dict[str, list[str]], file: str, line: int, field: str | None
) -> None:
    with pytest.raises(DataFileError) as caught:
        parse_oneroster(files)
    assert (caught.value.file, caught.value.line, caught.value.field) == (file, line, field)
    assert f"{file}:{line}" in str(caught.value)


def test_line_numbers_count_physical_lines_of_quoted_newlines() -> None:
    text = "\n".join(
        [
            USERS_HEADER,
            's1,active,true,e1,student,"two',
            'lines",Y,KG',
            "x2,active,true,e1,student,,,ZZ",
        ]
    )
    with pytest.raises(DataFileError) as caught:
        parse_oneroster(bundle(users=text.splitlines(keepends=True)))
    assert (caught.value.line, caught.value.field) == (4, "grades")


@pytest.mark.parametrize(
    ("files", "file", "line"),
    [
        (bundle(users=[*USERS, "s3,active,true,e1,student,,,KG"]), "users.csv", 11),
        (bundle(users=[*USERS, "t1,active,true,e1,teacher,,,"]), "users.csv", 11),
        (bundle(orgs=[*ORGS, "e1,active,,Again,school,,r1"]), "orgs.csv", 8),
        (bundle(demo=[*DEMOGRAPHICS, "s1,active,,false,false,false"]), "demographics.csv", 6),
    ],
)
def test_duplicate_ids(files: dict[str, list[str]], file: str, line: int) -> None:
    with pytest.raises(DuplicateIdError) as caught:
        parse_oneroster(files)
    assert (caught.value.file, caught.value.line, caught.value.field) == (file, line, "sourcedId")


def test_bom_and_header_case_are_tolerated() -> None:
    orgs = ["\ufeffSOURCEDID,Name,TYPE,parentsourcedid", "e1,Elm Elementary,school,"]
    users = ["\ufeff" + USERS_HEADER.upper(), "s1,active,true,e1,student,A,B,01"]
    roster = parse_oneroster(bundle(orgs, users, None))
    assert roster.schools["e1"].low_grade == 1 and roster.students[0].given_name == "A"


ID_USERS_HEADER = USERS_HEADER + ",identifier"


def test_sis_number_is_the_identifier_else_the_sourced_id() -> None:
    users = [
        ID_USERS_HEADER,
        "a7f3-guid,active,true,e1,student,Ann,One,KG,SIS00070",  # the two columns differ
        "s2,active,true,e1,student,Bo,Two,03,",  # no identifier: the sourcedId stands in
        "t1,active,true,e1,teacher,Tea,Cher,,SIS00070",  # not a student: never compared
    ]
    roster = parse_oneroster(bundle(users=users, demo=None))
    ann, bo = roster.students
    assert (ann.sis_id, ann.sourced_id, ann.given_name) == ("SIS00070", "a7f3-guid", "Ann")
    assert (bo.sis_id, bo.sourced_id) == ("s2", "s2")
    # A bundle without the column at all: every SIS number is the sourcedId.
    assert {(s.sis_id, s.sourced_id) for s in parse_oneroster(bundle()).students} == {
        (f"s{i}", f"s{i}") for i in range(1, 8)
    }


def test_groups_follow_the_sourced_id_not_the_identifier() -> None:
    users = [ID_USERS_HEADER, "s1,active,true,e1,student,Ann,One,KG,SIS1"]
    (ann,) = parse_oneroster(bundle(users=users)).students
    assert ann.groups == {StudentGroup.SWD}  # demographics.csv names s1 by its sourcedId


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (["s1,active,true,e1,student,,,KG,SIS1", "s2,active,true,e1,student,,,KG,SIS1"], 3),
        # an empty identifier falls back to the sourcedId, which is another's SIS number
        (["s1,active,true,e1,student,,,KG,s2", "s2,active,true,e1,student,,,KG,"], 3),
    ],
)
def test_two_students_with_one_sis_number_are_refused(rows: list[str], line: int) -> None:
    with pytest.raises(DuplicateIdError) as caught:
        parse_oneroster(bundle(users=[ID_USERS_HEADER, *rows], demo=None))
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        "users.csv",
        line,
        "identifier",
    )
    assert "also student 's1'" in str(caught.value)


def test_an_identifier_longer_than_the_column_is_a_bad_row() -> None:
    users = [ID_USERS_HEADER, "s1,active,true,e1,student,,,KG," + "9" * 65]
    with pytest.raises(DataFileError) as caught:
        parse_oneroster(bundle(users=users, demo=None))
    assert (caught.value.line, caught.value.field) == (2, "identifier")
