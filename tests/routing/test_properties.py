"""Hypothesis properties of route(): total, one decision, and a routed vendor really serves."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.catalog import Catalog, span_key
from routing.decision import HelpRequest, Routed, Unmet, UnmetReason, route
from routing.errors import InvalidLanguageTagError, UnknownGradeError
from routing.grades import parse_grade
from routing.languages import primary_language
from routing.schools import School, SchoolDirectory, SchoolKind
from tests.routing.conftest import SCHOOLS

PROFILE = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])

grades = st.integers(-2, 12)
schools = st.builds(
    lambda kind, a, b, i: School(f"gen-{i}", "Generated", "West", min(a, b), max(a, b), kind),
    st.sampled_from(list(SchoolKind)), grades, grades, st.integers(0, 10**6),
)
anything = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(),
                     st.booleans(), st.lists(st.integers(), max_size=2), st.binary(max_size=4))
grade_inputs = st.one_of(
    st.sampled_from(["PK", "TK", "KG", "K", "k", " 07 ", "12", "13", "0", "UG", ""]),
    st.integers(-5, 15).map(str), st.integers(-5, 15), anything,
)
language_inputs = st.one_of(
    st.sampled_from(["en", "es-MX", "zh-Hant-TW", "zh_CN", "fr-CA", "ko", "tlh", "EN", "x-y"]),
    anything,
)
subject_inputs = st.one_of(
    st.sampled_from(["math", "AP", "reading", "chemistry", "astrology"]), anything
)
school_ids = st.one_of(st.sampled_from([s[0] for s in SCHOOLS] + ["gen", "unknown"]), anything)
times = st.datetimes(timezones=st.just(UTC)) | st.datetimes()
unmet_reasons = set(UnmetReason)


def _grade(value: object) -> int | None:
    try:
        return parse_grade(value) if value not in (None, "") else None
    except (UnknownGradeError, TypeError):
        return None


def _serves_school(vendor_kinds: frozenset[SchoolKind], vendor_spans: frozenset[tuple[int, int]],
                   school: School) -> bool:
    return school.kind in vendor_kinds or span_key(school.low_grade, school.high_grade) in (
        vendor_spans
    )


@PROFILE
@given(school=schools, school_id=school_ids, grade=grade_inputs, language=language_inputs,
       subject=subject_inputs, at=times, overflow=st.booleans(), use_generated=st.booleans())
def test_one_decision_and_a_routed_vendor_serves_the_request(
    catalog: Catalog, directory: SchoolDirectory, school: School, school_id: object,
    grade: object, language: object, subject: object, at: datetime, overflow: bool,
    use_generated: bool,
) -> None:
    cat = catalog.with_overflow(True) if overflow else catalog
    dirs = SchoolDirectory({s.id: s for s in [*directory, school]})
    if use_generated:
        school_id = school.id
    decision = route(HelpRequest(school_id, grade, language, subject, at), cat, dirs)  # type: ignore[arg-type]
    assert isinstance(decision, Routed) != isinstance(decision, Unmet)
    if isinstance(decision, Unmet):
        assert decision.reason in unmet_reasons and decision.detail
        assert decision.as_json() == {"unmet": decision.reason.value, "detail": decision.detail}
        return
    vendor = cat.vendor(decision.vendor)
    assert vendor is not None and vendor.is_on_demand
    lang = primary_language(language)
    assert decision.language == lang and decision.queue == f"{vendor.id}:{lang}"
    assert lang in vendor.languages
    assert isinstance(subject, str) and cat.has_subject(subject.strip().lower())
    assert vendor.serves_subject(subject.strip().lower())
    g = _grade(grade)
    if g is not None:
        assert vendor.low_grade <= g <= vendor.high_grade
    known = dirs.get(school_id) if isinstance(school_id, str) else None
    if decision.overflow:
        assert cat.overflow and g is not None
        assert decision.first_choice != vendor.id and decision.first_choice_unmet in unmet_reasons
        return
    assert decision.first_choice is None and decision.first_choice_unmet is None
    if known is not None:
        assert _serves_school(vendor.kinds, vendor.spans, known)
    else:  # the grade decided: K-5 Paper.co, 9-12 Tutor.com
        assert g is not None and not 6 <= g <= 8
        assert vendor.id == ("paper" if g <= 5 else "tutorcom")


@PROFILE
@given(school_id=anything, grade=anything, language=anything, subject=anything, at=anything)
def test_route_never_raises_on_any_value(
    catalog: Catalog, directory: SchoolDirectory, school_id: object, grade: object,
    language: object, subject: object, at: object,
) -> None:
    for cat in (catalog, catalog.with_overflow(True)):
        decision = route(HelpRequest(school_id, grade, language, subject, at), cat, directory)  # type: ignore[arg-type]
        assert isinstance(decision, Routed | Unmet)


@PROFILE
@given(school=st.one_of(st.none(), schools), grade=st.one_of(st.none(), grades),
       overflow=st.booleans())
def test_languages_for_lists_exactly_the_routable_languages(
    catalog: Catalog, school: School | None, grade: int | None, overflow: bool
) -> None:
    cat = catalog.with_overflow(overflow)
    dirs = SchoolDirectory({school.id: school} if school else {})
    offered = cat.languages_for(school, grade)
    assert len(offered) == len(set(offered))
    if school is None and grade is None:
        assert set(offered) == {"en", "es", "zh", "fr"}
        return
    candidates = ["en", "es", "zh", "fr", "ko", "vi", "tl"]
    routable = [
        lang for lang in candidates
        if isinstance(route(HelpRequest(school.id if school else None, grade, lang, "math",
                                        datetime(2024, 1, 1, tzinfo=UTC)), cat, dirs), Routed)
    ]
    assert set(offered) == set(routable)


@settings(max_examples=300, deadline=None)
@given(tag=st.text(max_size=20))
def test_primary_language_is_total_over_text(tag: str) -> None:
    try:
        primary = primary_language(tag)
    except InvalidLanguageTagError as exc:
        assert exc.value == tag
    else:
        assert primary.isascii() and primary.islower() and 2 <= len(primary) <= 8
