"""schools.csv parsing, kind derivation, and typed errors that name file, line and field."""

from __future__ import annotations

import pytest

from routing.errors import DataFileError, DuplicateIdError, RoutingError
from routing.grades import KG, PK, TK
from routing.school_csv import derive_kind, parse_kind, parse_schools_csv
from routing.schools import SchoolDirectory, SchoolKind
from tests.routing.conftest import SCHOOLS, schools_csv

HEADER = "id,name,region,low_grade,high_grade,kind\n"


@pytest.mark.parametrize(
    ("low", "high", "kind"),
    [
        (KG, 5, SchoolKind.ELEMENTARY), (KG, 6, SchoolKind.ELEMENTARY),
        (TK, 5, SchoolKind.ELEMENTARY), (PK, 5, SchoolKind.ELEMENTARY),
        (3, 5, SchoolKind.ELEMENTARY), (6, 8, SchoolKind.MIDDLE), (7, 8, SchoolKind.MIDDLE),
        (9, 12, SchoolKind.HIGH), (10, 12, SchoolKind.HIGH), (KG, 8, SchoolKind.SPAN),
        (KG, 12, SchoolKind.SPAN), (6, 12, SchoolKind.SPAN), (8, 12, SchoolKind.SPAN),
        (5, 8, SchoolKind.SPAN), (7, 12, SchoolKind.SPAN), (PK, 8, SchoolKind.SPAN),
    ],
)
def test_derive_kind(low: int, high: int, kind: SchoolKind) -> None:
    assert derive_kind(low, high) is kind


def test_derive_kind_rejects_a_backwards_span() -> None:
    with pytest.raises(RoutingError, match="backwards"):
        derive_kind(9, 5)


def test_parse_kind_aliases() -> None:
    assert parse_kind("Continuation") is SchoolKind.OPTIONS
    assert parse_kind("options/continuation") is SchoolKind.OPTIONS
    assert parse_kind("Virtual Academy") is SchoolKind.VIRTUAL_ACADEMY
    assert parse_kind("MIDDLE") is SchoolKind.MIDDLE
    with pytest.raises(ValueError):
        parse_kind("charter")


def test_parses_every_school(directory: SchoolDirectory) -> None:
    assert len(directory) == len(SCHOOLS)
    k8 = directory.get("s-k8")
    assert k8 is not None and (k8.low_grade, k8.high_grade, k8.kind) == (0, 8, SchoolKind.SPAN)
    assert k8.span == "K-8" and k8.region == "East"
    tk5 = directory.get("e-tk5")
    assert tk5 is not None and tk5.low_grade == TK
    assert directory.get("o-k8").kind is SchoolKind.OPTIONS  # type: ignore[union-attr]


def test_kind_column_is_optional_and_columns_may_move() -> None:
    text = "\ufeffHigh_Grade,low_grade,region,name,id,extra\n12,09,west,Roosevelt High,hs-1,x\n\n"
    d = parse_schools_csv(text)
    school = d.get("hs-1")
    assert school is not None
    assert (school.kind, school.region, school.low_grade) == (SchoolKind.HIGH, "West", 9)


def test_quoted_fields() -> None:
    d = parse_schools_csv(HEADER + '"s-1","Lincoln, Abraham K-8",North,K,8,\r\n')
    assert d.get("s-1").name == "Lincoln, Abraham K-8"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rows", "line", "field", "words"),
    [
        ("a,A,East,K,5,\nb,B,East,K,15,\n", 3, "high_grade", "'15'"),
        ("a,A,East,G1,5,\n", 2, "low_grade", "'G1'"),
        ("a,A,East,9,5,\n", 2, "high_grade", "backwards"),
        ("a,A,East,K,5,charter\n", 2, "kind", "charter"),
        (",A,East,K,5,\n", 2, "id", "empty"),
        ("a,,East,K,5,\n", 2, "name", "empty"),
        ("a,A,,K,5,\n", 2, "region", "empty"),
        ("a,A,East,K,5\n", 2, None, "5 fields"),
        ("a,A,East,K,5,,extra\n", 2, None, "7 fields"),
        ('a,"A,East,K,5,\n', 2, None, "malformed CSV"),
        ("a," + "n" * 300 + ",East,K,5,\n", 2, "name", "longer"),
    ],
)
def test_bad_rows_name_file_line_and_field(
    rows: str, line: int, field: str | None, words: str
) -> None:
    with pytest.raises(DataFileError) as err:
        parse_schools_csv(HEADER + rows, filename="district/schools.csv")
    e = err.value
    assert (e.file, e.line, e.field) == ("district/schools.csv", line, field)
    assert words in str(e) and str(e).startswith(f"district/schools.csv:{line}")
    assert not isinstance(e, DuplicateIdError)


def test_missing_column_and_empty_file() -> None:
    with pytest.raises(DataFileError) as err:
        parse_schools_csv("id,name,region,low_grade\na,A,East,K\n")
    assert (err.value.line, err.value.field) == (1, "high_grade")
    with pytest.raises(DataFileError, match="empty"):
        parse_schools_csv("")


def test_duplicate_school_id() -> None:
    text = HEADER + "a,A,East,K,5,\nb,B,East,K,5,\n\na,Again,West,9,12,\n"
    with pytest.raises(DuplicateIdError) as err:
        parse_schools_csv(text)
    e = err.value
    assert (e.line, e.field, e.value, e.code) == (5, "id", "a", "duplicate_id")
    assert "first on line 2" in str(e)


def test_round_trip_of_the_fixture_text() -> None:
    assert [s.id for s in parse_schools_csv(schools_csv())] == [s[0] for s in SCHOOLS]
