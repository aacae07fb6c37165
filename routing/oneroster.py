"""A OneRoster v1.1 CSV bundle -> schools and students. Pure: no file I/O, no asyncio.

The caller opens the files and passes ``{"orgs.csv": lines, "users.csv": lines,
"demographics.csv": lines}`` (any iterables of text lines, e.g. open file objects opened
with ``newline=""``); rows are streamed through :mod:`csv`, so memory grows with the
number of *students kept*, not with file size. A 400,000-student bundle parses in a few
seconds.

What is read:

- ``orgs.csv`` (required): ``sourcedId``, ``name``, ``type`` (``school``, ``district``,
  ``local``, ...), ``parentSourcedId``; ``status`` ``tobedeleted`` rows are ignored.
  Optional district extension columns ``lowGrade``, ``highGrade``, ``kind``, ``region``
  are used when present and non-empty. Real bundles carry none of them, so:

  * a school's span is derived from its students' grades (lowest, highest);
  * its kind from the name for the kinds a span cannot show (``... Virtual Academy`` ->
    virtual academy; ``Continuation`` / ``Options`` -> options), else from the span
    with :func:`routing.school_csv.derive_kind`; a ``kind`` column takes the same values
    and aliases as ``schools.csv`` (:func:`routing.school_csv.parse_kind`);
  * its region from its parent org when that parent is a region ("local" org, or a
    district that itself has a parent): the region name (East, North, South, West) found
    in the parent's name, else the parent's name cut to 16 characters.

  A school with no students and no span columns cannot be placed and is left out, with a
  warning in :attr:`Roster.warnings`.
- ``users.csv`` (required): only ``role=student`` rows (case-insensitive) become students.
  The school is the first of ``orgSourcedIds`` (comma-separated in one field) that is a
  school; the grade is the first code of ``grades`` (PK, TK, KG, 01-12, also K and 1-12).
  Every org named must exist. ``sourcedId`` stays the roster's key; the student's SIS
  number, which launches are matched on (Schoology's ``$com.schoology.User.uniqueId``), is
  ``identifier``, or ``sourcedId`` when ``identifier`` is empty or the column is absent.
  Two students with the same SIS number are a bad row (a launch could not tell them apart).
- ``demographics.csv`` (optional): OneRoster's demographics file has no fields for the
  district's student groups, so the district **extension columns** ``swd``, ``el`` and
  ``rfep`` (``true``/``false``, also ``1``/``0``, ``yes``/``no``, empty = false) carry
  them. Rows for users that are not students are ignored.

Errors (all raised before anything is returned, so an import built on this is all or
nothing): :class:`~routing.errors.DataFileError` naming file, line and field for a bad row
(unknown grade, unknown org, no school, missing required column or value, malformed row),
:class:`~routing.errors.DuplicateIdError` for a ``sourcedId`` seen twice in one file or a
student SIS number (``identifier``) seen twice in ``users.csv``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from routing.errors import DataFileError, DuplicateIdError, UnknownGradeError
from routing.grades import parse_grade
from routing.school_csv import derive_kind, parse_kind
from routing.schools import Region, School, SchoolDirectory, SchoolKind, Student, StudentGroup

ORGS = "orgs.csv"
USERS = "users.csv"
DEMOGRAPHICS = "demographics.csv"

#: OneRoster v1.1 bulk CSV columns, in the standard's order (for writers of bundles).
ORGS_HEADER = (
    "sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId",
)
USERS_HEADER = (
    "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role",
    "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email",
    "sms", "phone", "agentSourcedIds", "grades", "password",
)

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})
_GROUP_COLUMNS = (("swd", StudentGroup.SWD), ("el", StudentGroup.EL), ("rfep", StudentGroup.RFEP))
_OPTIONS_NAME = re.compile(r"\b(continuation|options)\b", re.IGNORECASE)
_VIRTUAL_NAME = re.compile(r"\bvirtual\s+academy\b", re.IGNORECASE)
REGION_MAX = 16
# The directory's column sizes: longer values are bad rows, not silent truncation.
ID_MAX = 64
PERSON_NAME_MAX = 100
SCHOOL_NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class Roster:
    """The parsed bundle: schools by id, students in file order, and warnings."""

    schools: dict[str, School]
    students: list[Student]
    warnings: list[str] = field(default_factory=list)

    def directory(self) -> SchoolDirectory:
        return SchoolDirectory(self.schools)


@dataclass(slots=True)
class _Org:
    name: str
    type: str
    parent: str
    line: int
    deleted: bool
    low: int | None
    high: int | None
    kind: SchoolKind | None
    region: str


class _Table:
    """One CSV file: its header, located case-insensitively, and its rows with line numbers."""

    def __init__(self, name: str, lines: Iterable[str]) -> None:
        self.name = name
        self._reader = csv.reader(lines)
        try:
            header = next(self._reader)
        except StopIteration:
            raise DataFileError("file is empty (no header row)", file=name, line=1) from None
        except csv.Error as exc:
            raise DataFileError(f"malformed CSV: {exc}", file=name, line=1) from None
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        self.width = len(header)
        self.columns = {h.strip().lower(): i for i, h in enumerate(header)}

    def require(self, column: str) -> int:
        index = self.columns.get(column.lower())
        if index is None:
            raise DataFileError("required column is missing", file=self.name, line=1, field=column)
        return index

    def optional(self, column: str) -> int | None:
        return self.columns.get(column.lower())

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataFileError(
                    f"malformed CSV: {exc}", file=self.name, line=reader.line_num
                ) from None
            if not row:
                continue
            if len(row) != self.width:
                if not any(cell.strip() for cell in row):
                    continue
                raise DataFileError(
                    f"row has {len(row)} fields, the header has {self.width}",
                    file=self.name,
                    line=reader.line_num,
                )
            yield reader.line_num, row

    def records(self, id_column: int) -> Iterator[tuple[int, list[str], str]]:
        """Rows with their ``sourcedId``, which must be non-empty and unique in this file."""
        first_seen: dict[str, int] = {}
        for line, row in self.rows():
            sourced_id = row[id_column].strip()
            if not sourced_id:
                raise self.error("sourcedId is empty", line, "sourcedId")
            first = first_seen.setdefault(sourced_id, line)
            if first != line:
                raise self.duplicate(
                    f"duplicate sourcedId {sourced_id!r} (first on line {first})",
                    line,
                    "sourcedId",
                    sourced_id,
                )
            yield line, row, sourced_id

    def error(self, message: str, line: int, column: str, value: object = None) -> DataFileError:
        return DataFileError(message, file=self.name, line=line, field=column, value=value)

    def duplicate(self, message: str, line: int, column: str, value: str) -> DuplicateIdError:
        return DuplicateIdError(message, file=self.name, line=line, field=column, value=value)


def _cell(row: list[str], index: int | None) -> str:
    return "" if index is None else row[index].strip()


def _limit(table: _Table, line: int, column: str, value: str, most: int) -> None:
    if len(value) > most:
        raise table.error(f"longer than {most} characters", line, column, value)


def _grade(table: _Table, line: int, column: str, code: str) -> int:
    try:
        return parse_grade(code)
    except UnknownGradeError as exc:
        raise table.error(exc.message, line, column, code) from None


def _flag(table: _Table, line: int, column: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise table.error(f"{raw!r} is not true or false", line, column, raw)


def _parse_orgs(table: _Table) -> dict[str, _Org]:
    c_id = table.require("sourcedId")
    c_name = table.require("name")
    c_type = table.require("type")
    c_parent = table.optional("parentSourcedId")
    c_status = table.optional("status")
    c_low = table.optional("lowGrade")
    c_high = table.optional("highGrade")
    c_kind = table.optional("kind")
    c_region = table.optional("region")
    orgs: dict[str, _Org] = {}
    for line, row, sourced_id in table.records(c_id):
        org_type = _cell(row, c_type).lower()
        name = _cell(row, c_name)
        if org_type == "school":
            if not name:
                raise table.error("a school needs a name", line, "name")
            _limit(table, line, "name", name, SCHOOL_NAME_MAX)
            _limit(table, line, "sourcedId", sourced_id, ID_MAX)
        low = _cell(row, c_low)
        high = _cell(row, c_high)
        kind_text = _cell(row, c_kind)
        kind: SchoolKind | None = None
        if kind_text:
            try:
                kind = parse_kind(kind_text)
            except ValueError:
                choices = ", ".join(k.value for k in SchoolKind)
                raise table.error(
                    f"unknown kind {kind_text!r} (use one of {choices})", line, "kind"
                ) from None
        orgs[sourced_id] = _Org(
            name=name,
            type=org_type,
            parent=_cell(row, c_parent),
            line=line,
            deleted=_cell(row, c_status).lower() == "tobedeleted",
            low=_grade(table, line, "lowGrade", low) if low else None,
            high=_grade(table, line, "highGrade", high) if high else None,
            kind=kind,
            region=_cell(row, c_region)[:REGION_MAX],
        )
    for org in orgs.values():
        if org.parent and org.parent not in orgs and not org.deleted:
            raise table.error(f"unknown org {org.parent!r}", org.line, "parentSourcedId")
    return orgs


def _parse_demographics(table: _Table, warnings: list[str]) -> dict[str, frozenset[StudentGroup]]:
    c_id = table.require("sourcedId")
    flags = [(table.optional(col), col, group) for col, group in _GROUP_COLUMNS]
    present = [(i, col, group) for i, col, group in flags if i is not None]
    if not present:
        warnings.append(f"{table.name} has no swd/el/rfep columns: no student-group flags")
    interned: dict[frozenset[StudentGroup], frozenset[StudentGroup]] = {}
    groups_by_id: dict[str, frozenset[StudentGroup]] = {}
    for line, row, sourced_id in table.records(c_id):
        groups = frozenset(g for i, col, g in present if _flag(table, line, col, row[i]))
        if groups:
            groups_by_id[sourced_id] = interned.setdefault(groups, groups)
    return groups_by_id


def _parse_users(
    table: _Table,
    orgs: dict[str, _Org],
    groups_by_id: Mapping[str, frozenset[StudentGroup]],
    spans: dict[str, list[int]],
) -> list[Student]:
    c_id = table.require("sourcedId")
    c_role = table.require("role")
    c_orgs = table.require("orgSourcedIds")
    c_grades = table.require("grades")
    c_status = table.optional("status")
    c_given = table.optional("givenName")
    c_family = table.optional("familyName")
    c_identifier = table.optional("identifier")
    students: list[Student] = []
    sis_ids: set[str] = set()
    no_groups: frozenset[StudentGroup] = frozenset()
    grade_cache: dict[str, int] = {}
    for line, row, sourced_id in table.records(c_id):
        if row[c_role].strip().lower() != "student":
            continue
        if c_status is not None and row[c_status].strip().lower() == "tobedeleted":
            continue
        _limit(table, line, "sourcedId", sourced_id, ID_MAX)
        sis_id = _cell(row, c_identifier) or sourced_id
        _limit(table, line, "identifier", sis_id, ID_MAX)
        if sis_id in sis_ids:
            other = next(s.sourced_id for s in students if s.sis_id == sis_id)
            raise table.duplicate(
                f"duplicate student identifier {sis_id!r} (also student {other!r})",
                line,
                "identifier",
                sis_id,
            )
        sis_ids.add(sis_id)
        given = _cell(row, c_given)
        family = _cell(row, c_family)
        _limit(table, line, "givenName", given, PERSON_NAME_MAX)
        _limit(table, line, "familyName", family, PERSON_NAME_MAX)
        school_id = ""
        for org_id in row[c_orgs].split(","):
            org_id = org_id.strip()
            if not org_id:
                continue
            org = orgs.get(org_id)
            if org is None:
                raise table.error(f"unknown org {org_id!r}", line, "orgSourcedIds", org_id)
            if not school_id and org.type == "school" and not org.deleted:
                school_id = org_id
        if not school_id:
            raise table.error("no school among orgSourcedIds", line, "orgSourcedIds")
        code = row[c_grades].split(",", 1)[0].strip()
        if not code:
            raise table.error("a student needs a grade", line, "grades")
        grade = grade_cache.get(code)
        if grade is None:
            grade = grade_cache[code] = _grade(table, line, "grades", code)
        span = spans.get(school_id)
        if span is None:
            spans[school_id] = [grade, grade]
        elif grade < span[0]:
            span[0] = grade
        elif grade > span[1]:
            span[1] = grade
        students.append(
            Student(
                sis_id,
                school_id,
                grade,
                groups_by_id.get(sourced_id, no_groups),
                given,
                family,
                sourced_id,
            )
        )
    return students


def _region(org: _Org, orgs: Mapping[str, _Org]) -> str:
    if org.region:
        return org.region
    parent = orgs.get(org.parent)
    if parent is None or not (
        parent.type == "local" or (parent.type == "district" and parent.parent)
    ):
        return ""
    for region in Region:
        if re.search(rf"\b{region.value}\b", parent.name, re.IGNORECASE):
            return region.value
    return parent.name[:REGION_MAX]


def _kind(org: _Org, low: int, high: int) -> SchoolKind:
    if org.kind is not None:
        return org.kind
    if _VIRTUAL_NAME.search(org.name):
        return SchoolKind.VIRTUAL_ACADEMY
    if _OPTIONS_NAME.search(org.name):
        return SchoolKind.OPTIONS
    return derive_kind(low, high)


def parse_oneroster(files: Mapping[str, Iterable[str]]) -> Roster:
    """Parse a OneRoster v1.1 CSV bundle; see the module docstring for what is read.

    ``files`` maps file names (``orgs.csv``, ``users.csv``, optional ``demographics.csv``)
    to their lines. Raises :class:`DataFileError` / :class:`DuplicateIdError` on the first
    bad row; returns only when the whole bundle is good.
    """
    for required in (ORGS, USERS):
        if required not in files:
            raise DataFileError("file is missing from the bundle", file=required, line=0)
    warnings: list[str] = []
    orgs = _parse_orgs(_Table(ORGS, files[ORGS]))
    groups_by_id: dict[str, frozenset[StudentGroup]] = {}
    if DEMOGRAPHICS in files:
        groups_by_id = _parse_demographics(_Table(DEMOGRAPHICS, files[DEMOGRAPHICS]), warnings)
    spans: dict[str, list[int]] = {}
    students = _parse_users(_Table(USERS, files[USERS]), orgs, groups_by_id, spans)
    del groups_by_id
    schools: dict[str, School] = {}
    for org_id, org in orgs.items():
        if org.type != "school" or org.deleted:
            continue
        derived = spans.get(org_id)
        low = org.low if org.low is not None else (derived[0] if derived else None)
        high = org.high if org.high is not None else (derived[1] if derived else None)
        if low is None or high is None:
            warnings.append(
                f"{ORGS}:{org.line}: school {org_id!r} has no students and no span; left out"
            )
            continue
        if low > high:
            raise DataFileError(
                f"lowGrade {low} is above highGrade {high}",
                file=ORGS,
                line=org.line,
                field="lowGrade",
            )
        schools[org_id] = School(
            id=org_id,
            name=org.name,
            region=_region(org, orgs),
            low_grade=low,
            high_grade=high,
            kind=_kind(org, low, high),
        )
    return Roster(schools=schools, students=students, warnings=warnings)
