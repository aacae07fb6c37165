"""The school directory from a simple ``schools.csv`` (text in, :class:`SchoolDirectory` out).

Columns (header row required, any order, extra columns ignored):
``id,name,region,low_grade,high_grade[,kind]``. Grades are OneRoster or everyday codes
(PK, TK, KG/K, 01-12/1-12). ``kind`` is one of :class:`~routing.schools.SchoolKind` (also
``continuation``, ``options/continuation``, ``virtual academy``); when the column is absent
or blank, :func:`derive_kind` derives it from the span.

Parsing is all or nothing: the first bad row raises :class:`~routing.errors.DataFileError`
(file, line, field) and a repeated id raises :class:`~routing.errors.DuplicateIdError`.
"""

from __future__ import annotations

import csv
import io

from routing.errors import DataFileError, DuplicateIdError, RoutingError, UnknownGradeError
from routing.grades import KG, parse_grade, span_label
from routing.schools import Region, School, SchoolDirectory, SchoolKind

REQUIRED = ("id", "name", "region", "low_grade", "high_grade")
MAX_FIELD = 200
_KIND_ALIASES = {
    "continuation": SchoolKind.OPTIONS,
    "options/continuation": SchoolKind.OPTIONS,
    "options / continuation": SchoolKind.OPTIONS,
    "virtual academy": SchoolKind.VIRTUAL_ACADEMY,
    "virtual": SchoolKind.VIRTUAL_ACADEMY,
    "virtual-academy": SchoolKind.VIRTUAL_ACADEMY,
}
_REGIONS = {r.value.lower(): r.value for r in Region}


def derive_kind(low: int, high: int) -> SchoolKind:
    """The kind of a school from its span (PK/TK count as K), the district's way.

    Within 9-12: high; within 6-8: middle; ending by grade 6 (K-5, K-6, 3-5): elementary;
    anything else (K-8, K-12, 6-12, 8-12, 5-8, 7-12): span. Options and virtual academy
    schools cannot be told from their span. Raises :class:`RoutingError` if low > high.
    """
    if low > high:
        raise RoutingError(
            f"span {span_label(low, high)} runs backwards", value=(low, high)
        )
    low = max(low, KG)
    if low >= 9:
        return SchoolKind.HIGH
    if low >= 6 and high <= 8:
        return SchoolKind.MIDDLE
    if high <= 6:
        return SchoolKind.ELEMENTARY
    return SchoolKind.SPAN


def parse_kind(text: str) -> SchoolKind:
    """A kind from its value or a common alias (case-insensitive); ``ValueError`` otherwise."""
    folded = " ".join(text.strip().lower().replace("_", " ").split())
    alias = _KIND_ALIASES.get(folded)
    if alias is not None:
        return alias
    return SchoolKind(folded.replace(" ", "_"))


def parse_schools_csv(text: str, filename: str = "schools.csv") -> SchoolDirectory:
    """Parse schools.csv text; every school or an error naming file, line and field."""
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataFileError("the file is empty (a header row is required)", file=filename,
                                line=1)
        columns = [h.strip().lower() for h in header]
        for name in REQUIRED:
            if name not in columns:
                raise DataFileError(f"missing column {name!r}", file=filename, line=1, field=name)
        index = {name: columns.index(name) for name in (*REQUIRED, "kind") if name in columns}
        schools: dict[str, School] = {}
        first_line: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            school = _school(row, index, len(columns), filename, line)
            if school.id in schools:
                raise DuplicateIdError(
                    f"school id {school.id!r} appears twice (first on line "
                    f"{first_line[school.id]})",
                    file=filename, line=line, field="id", value=school.id,
                )
            schools[school.id] = school
            first_line[school.id] = line
    except csv.Error as exc:
        raise DataFileError(f"malformed CSV: {exc}", file=filename,
                            line=reader.line_num or 1) from exc
    return SchoolDirectory(schools)


def _school(row: list[str], index: dict[str, int], width: int, filename: str, line: int) -> School:
    if len(row) != width:
        raise DataFileError(
            f"the row has {len(row)} fields, the header {width}", file=filename, line=line,
            value=row,
        )

    def cell(name: str) -> str:
        value = row[index[name]].strip()
        if not value and name != "kind":
            raise DataFileError("is empty", file=filename, line=line, field=name)
        if len(value) > MAX_FIELD:
            raise DataFileError(f"is longer than {MAX_FIELD} characters", file=filename,
                                line=line, field=name)
        return value

    def grade(name: str) -> int:
        value = cell(name)
        try:
            return parse_grade(value)
        except UnknownGradeError as exc:
            raise DataFileError(exc.message, file=filename, line=line, field=name,
                                value=value) from exc

    school_id, name = cell("id"), cell("name")
    region = cell("region")
    region = _REGIONS.get(region.lower(), region)
    low, high = grade("low_grade"), grade("high_grade")
    if low > high:
        raise DataFileError(
            f"the span {span_label(low, high)} runs backwards (low_grade is above high_grade)",
            file=filename, line=line, field="high_grade", value=high,
        )
    kind_text = cell("kind") if "kind" in index else ""
    if kind_text:
        try:
            kind = parse_kind(kind_text)
        except ValueError:
            known = ", ".join(k.value for k in SchoolKind)
            raise DataFileError(
                f"unknown school kind {kind_text!r} (one of {known})",
                file=filename, line=line, field="kind", value=kind_text,
            ) from None
    else:
        kind = derive_kind(low, high)
    return School(school_id, name, region, low, high, kind)
