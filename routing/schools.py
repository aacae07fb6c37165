"""Schools and students as routing sees them: immutable value objects, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from routing.grades import span_label


class SchoolKind(enum.StrEnum):
    """The kinds of school the district's vendor split is written in."""

    ELEMENTARY = "elementary"
    MIDDLE = "middle"
    HIGH = "high"
    SPAN = "span"
    OPTIONS = "options"  # options / continuation schools
    VIRTUAL_ACADEMY = "virtual_academy"


class Region(enum.StrEnum):
    EAST = "East"
    NORTH = "North"
    SOUTH = "South"
    WEST = "West"


class StudentGroup(enum.StrEnum):
    """The district's student-group flags used in usage reports."""

    SWD = "SWD"  # students with disabilities
    EL = "EL"  # English learners
    RFEP = "RFEP"  # reclassified fluent English proficient


@dataclass(frozen=True, slots=True)
class School:
    id: str
    name: str
    region: str
    low_grade: int
    high_grade: int
    kind: SchoolKind

    @property
    def span(self) -> str:
        return span_label(self.low_grade, self.high_grade)


@dataclass(frozen=True, slots=True)
class Student:
    """A rostered student; neither id is ever shown to tutors.

    ``sis_id`` is the student's SIS number, what the LMS sends at launch (Schoology's
    ``$com.schoology.User.uniqueId``): OneRoster's ``identifier``, or its ``sourcedId``
    when the identifier is empty. ``sourced_id`` is the roster's key (OneRoster's
    ``sourcedId``); left empty, it is the SIS number.
    """

    sis_id: str
    school_id: str
    grade: int
    groups: frozenset[StudentGroup] = field(default_factory=frozenset)
    given_name: str = ""
    family_name: str = ""
    sourced_id: str = ""

    def __post_init__(self) -> None:
        if not self.sourced_id:
            object.__setattr__(self, "sourced_id", self.sis_id)


class SchoolDirectory:
    """An immutable id -> :class:`School` mapping (built by a parser or from the database)."""

    __slots__ = ("_schools",)

    def __init__(self, schools: dict[str, School] | None = None) -> None:
        self._schools: dict[str, School] = dict(schools or {})

    def get(self, school_id: str | None) -> School | None:
        if not school_id:
            return None
        return self._schools.get(school_id)

    def __contains__(self, school_id: object) -> bool:
        return school_id in self._schools

    def __len__(self) -> int:
        return len(self._schools)

    def __iter__(self) -> Iterator[School]:
        return iter(self._schools.values())
