"""The routing decision: which vendor's queue a help request belongs in, or why none can serve it.

:func:`route` is total: for *any* values in a :class:`HelpRequest` (any grade string, language
tag, subject or school id, of any type) it returns exactly one :class:`Routed` or
:class:`Unmet` and never raises.

The rule (the district's, see ``docs/routing.md``):

1. The language must be a BCP 47 tag (else ``invalid_language``) and the subject a district
   subject (else ``subject_unsupported``).
2. A known school chooses the first-choice vendor by its span (kind for options and virtual
   academy schools); a grade that does not parse is then ignored (the school decides).
   No vendor for the school: ``no_vendor``.
3. An unknown school id is treated like no school: the grade decides (K-5 Paper.co, 9-12
   Tutor.com, 6-8 ``school_unknown_grade_ambiguous``; an unparseable grade is
   ``invalid_grade``, a missing one ``school_unknown_grade_ambiguous``).
4. The first choice must serve the grade, the subject, the language and be open now, checked
   in that order; the first failure is the reason. With overflow on (and a known grade),
   the first other on-demand vendor (catalog order) that passes all four takes the request,
   marked ``overflow=True`` with the first choice's reason.

Decisions are memoised per (school kind and span, grade, language, subject) when every
on-demand vendor is open 24/7, so a decision costs a few dict lookups.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from routing.catalog import Catalog, Vendor
from routing.errors import InvalidLanguageTagError, UnknownGradeError
from routing.grades import MAX_GRADE, MIN_GRADE, grade_label, parse_grade
from routing.languages import primary_language
from routing.schools import School, SchoolDirectory, SchoolKind


class UnmetReason(enum.StrEnum):
    """Why a request was not routed (or why its first-choice vendor could not take it).

    A closed set: reports group unmet demand by these codes, so add, never rename.
    """

    LANGUAGE_UNSUPPORTED = "language_unsupported"
    GRADE_UNSUPPORTED = "grade_unsupported"
    SUBJECT_UNSUPPORTED = "subject_unsupported"
    OUTSIDE_HOURS = "outside_hours"
    SCHOOL_UNKNOWN_GRADE_AMBIGUOUS = "school_unknown_grade_ambiguous"
    NO_VENDOR = "no_vendor"
    #: The school is unknown and the grade is not a grade code (a client or roster error).
    INVALID_GRADE = "invalid_grade"
    #: The language is missing or not a BCP 47 tag (a client error, not unmet demand).
    INVALID_LANGUAGE = "invalid_language"


@dataclass(frozen=True, slots=True)
class HelpRequest:
    """One student's request for live help. Fields are raw (as the client or LTI claims gave
    them); :func:`route` validates them. ``at`` is the request time (naive means UTC)."""

    school_id: str | None
    grade: object
    language: object
    subject: object
    at: datetime


@dataclass(frozen=True, slots=True)
class Routed:
    """The request goes to ``queue`` (``"{vendor}:{language}"``, language a primary subtag).

    ``overflow`` is true when the first-choice vendor ``first_choice`` could not serve it,
    for ``first_choice_unmet``; both are ``None`` otherwise.
    """

    vendor: str
    queue: str
    language: str
    overflow: bool = False
    first_choice: str | None = None
    first_choice_unmet: UnmetReason | None = None

    def as_json(self) -> dict[str, Any]:
        """``{"vendor", "queue", "overflow"}``, plus ``first_choice`` and
        ``first_choice_unmet`` when overflowed."""
        out: dict[str, Any] = {
            "vendor": self.vendor, "queue": self.queue, "overflow": self.overflow
        }
        if self.overflow:
            out["first_choice"] = self.first_choice
            out["first_choice_unmet"] = str(self.first_choice_unmet)
        return out


@dataclass(frozen=True, slots=True)
class Unmet:
    """No vendor can serve the request: unmet demand, recorded with its reason and an English
    ``detail`` for staff (never shows the student's identity)."""

    reason: UnmetReason
    detail: str

    def as_json(self) -> dict[str, Any]:
        """``{"unmet": reason, "detail": detail}``."""
        return {"unmet": str(self.reason), "detail": self.detail}


Decision = Routed | Unmet

_T = TypeVar("_T")
_CACHE_MAX = 4096
_MEMO_MAX = 65536
_INVALID = -1000  # a grade that was given but is not a grade code
_languages: dict[str, str | None] = {}
_grades: dict[str, int | None] = {}


def route(request: HelpRequest, catalog: Catalog, directory: SchoolDirectory) -> Decision:
    """Decide the queue for ``request``, or why no vendor can serve it. Never raises.

    Guarantees: a :class:`Routed` result names an on-demand vendor that serves the request's
    grade (when known), language and subject and is open at ``request.at``; without
    overflow it is the first-choice vendor of the student's school (or of the grade, school
    unknown). The same inputs always give an equal decision.
    """
    language = _language(request.language)
    if language is None:
        return Unmet(
            UnmetReason.INVALID_LANGUAGE, f"{_show(request.language)} is not a BCP 47 language tag"
        )
    subject = request.subject.strip().lower() if isinstance(request.subject, str) else None
    if subject is None or not catalog.has_subject(subject):
        return Unmet(
            UnmetReason.SUBJECT_UNSUPPORTED, f"{_show(request.subject)} is not a district subject"
        )
    grade = _grade(request.grade)
    sid = request.school_id
    school = directory.get(sid) if isinstance(sid, str) else None
    if school is None:
        if grade is None:
            return Unmet(
                UnmetReason.SCHOOL_UNKNOWN_GRADE_AMBIGUOUS,
                "neither the school nor the grade is known",
            )
        if grade == _INVALID:
            return Unmet(
                UnmetReason.INVALID_GRADE,
                f"{_show(request.grade)} is not a grade code and the school is unknown",
            )
        key: tuple[Any, ...] = (None, grade, language, subject)
    else:
        if grade == _INVALID:
            grade = None
        key = (school.kind, school.low_grade, school.high_grade, grade, language, subject)
    if not catalog.always_open:
        return _decide(catalog, school, grade, language, subject, request.at)
    memo = catalog.memo
    decision: Decision | None = memo.get(key)
    if decision is None:
        decision = _decide(catalog, school, grade, language, subject, request.at)
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = decision
    return decision


def _decide(
    catalog: Catalog,
    school: School | None,
    grade: int | None,
    language: str,
    subject: str,
    at: object,
) -> Decision:
    if school is None:
        assert grade is not None
        first = catalog.unknown_school_vendor(grade)
        if first is None:
            if catalog.serves_grade_anywhere(grade):
                return Unmet(
                    UnmetReason.SCHOOL_UNKNOWN_GRADE_AMBIGUOUS,
                    f"grade {grade_label(grade)} with no known school: the vendor depends on "
                    "the school's span",
                )
            return Unmet(
                UnmetReason.GRADE_UNSUPPORTED,
                f"no on-demand vendor serves grade {grade_label(grade)}",
            )
        basis = f"grade {grade_label(grade)} when the school is unknown"
    else:
        first = catalog.first_choice(school)
        if first is None:
            return Unmet(
                UnmetReason.NO_VENDOR,
                f"no on-demand vendor serves {_schools_of(school)}",
            )
        basis = _schools_of(school)
    reason, why = _check(catalog, first, grade, language, subject, at)
    if reason is None:
        return Routed(first.id, f"{first.id}:{language}", language)
    if catalog.overflow and grade is not None:
        for other in catalog.on_demand_vendors:
            if other is first:
                continue
            if _check(catalog, other, grade, language, subject, at)[0] is None:
                return Routed(
                    other.id,
                    f"{other.id}:{language}",
                    language,
                    overflow=True,
                    first_choice=first.id,
                    first_choice_unmet=reason,
                )
    return Unmet(reason, f"{first.name} (the vendor for {basis}) {why}")


def _check(
    catalog: Catalog, vendor: Vendor, grade: int | None, language: str, subject: str, at: object
) -> tuple[UnmetReason | None, str]:
    """The first thing ``vendor`` cannot serve (grade, subject, language, hours), or None."""
    if grade is not None and not vendor.serves_grade(grade):
        return UnmetReason.GRADE_UNSUPPORTED, (
            f"serves grades {vendor.grades_label}, not {grade_label(grade)}"
        )
    if not vendor.serves_subject(subject):
        return UnmetReason.SUBJECT_UNSUPPORTED, f"does not offer {catalog.subject_label(subject)}"
    if not vendor.serves_language(language):
        return UnmetReason.LANGUAGE_UNSUPPORTED, (
            f"serves {', '.join(vendor.languages)}, not {language!r}"
        )
    if not vendor.hours.always and not (
        isinstance(at, datetime) and vendor.hours.open_at(at, catalog.timezone)
    ):
        return UnmetReason.OUTSIDE_HOURS, f"is not open at {_show(at)}"
    return None, ""


def _language(tag: object) -> str | None:
    """Primary subtag of a BCP 47 tag, or ``None`` for anything else (memoised for strings)."""
    if type(tag) is not str:
        return None
    return _cached(_languages, tag, _primary_or_none)


def _grade(code: object) -> int | None:
    """Integer grade; ``None`` when missing (None or blank); ``_INVALID`` when not a code."""
    if code is None:
        return None
    if type(code) is int:
        return code if MIN_GRADE <= code <= MAX_GRADE else _INVALID
    if type(code) is not str:
        return _INVALID
    return _cached(_grades, code, _grade_of_text)


def _primary_or_none(tag: str) -> str | None:
    try:
        return primary_language(tag)
    except InvalidLanguageTagError:
        return None


def _grade_of_text(code: str) -> int | None:
    if not code.strip():
        return None
    try:
        return parse_grade(code)
    except UnknownGradeError:
        return _INVALID


def _cached(cache: dict[str, _T], key: str, compute: Callable[[str], _T]) -> _T:
    """``compute(key)`` through a bounded memo (cleared when full; values are pure)."""
    try:
        return cache[key]
    except KeyError:
        pass
    value = compute(key)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _schools_of(school: School) -> str:
    """``K-8 span schools``, ``middle schools (6-8)``: how staff name a kind of school."""
    if school.kind is SchoolKind.SPAN:
        return f"{school.span} span schools"
    return f"{school.kind.value.replace('_', ' ')} schools ({school.span})"


def _show(value: object) -> str:
    """A short, safe rendering of a raw input for a detail message."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."
