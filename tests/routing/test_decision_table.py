"""The district's rule, table-driven: every school kind x span x grade x language, the
unknown-school fallback, overflow on and off, opening hours.

The expectations are written from domain.md here, not read from the catalog, so a wrong
catalog or a wrong rule fails these tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing.catalog import Catalog
from routing.decision import Decision, HelpRequest, Routed, Unmet, UnmetReason, route
from routing.grades import parse_grade
from routing.schools import SchoolDirectory
from tests.routing.conftest import SCHOOLS, shipped_text

AT = datetime(2024, 3, 5, 17, 30, tzinfo=UTC)
LANGS = {"paper": {"en", "es", "zh", "fr"}, "tutorcom": {"en", "es"}}
GRADES = {"paper": range(-1, 9), "tutorcom": range(-1, 13)}  # TK..8, TK..12
TAGS = ["en", "en-US", "es-MX", "zh-Hant-TW", "zh", "fr-CA", "ko", "tlh"]
OTHER = {"paper": "tutorcom", "tutorcom": "paper"}


def decide(catalog: Catalog, directory: SchoolDirectory, school: str | None, grade: object,
           language: object = "en", subject: object = "math") -> Decision:
    return route(HelpRequest(school, grade, language, subject, AT), catalog, directory)


def expected(vendor: str | None, grade: int, tag: str, overflow: bool) -> Decision | UnmetReason:
    """The district's answer for a student at a school whose vendor is ``vendor``."""
    lang = tag.split("-")[0]
    if vendor is None:
        return UnmetReason.NO_VENDOR
    if grade not in GRADES[vendor]:
        reason = UnmetReason.GRADE_UNSUPPORTED
    elif lang not in LANGS[vendor]:
        reason = UnmetReason.LANGUAGE_UNSUPPORTED
    else:
        return Routed(vendor, f"{vendor}:{lang}", lang)
    other = OTHER[vendor]
    if overflow and grade in GRADES[other] and lang in LANGS[other]:
        return Routed(other, f"{other}:{lang}", lang, True, vendor, reason)
    return reason


def table() -> list[tuple[str, str | None, int, str]]:
    cases = []
    for school_id, low, high, _kind, vendor in SCHOOLS:
        for grade in range(parse_grade(low), parse_grade(high) + 1):
            cases += [(school_id, vendor, grade, tag) for tag in TAGS]
    return cases


@pytest.mark.parametrize("overflow", [False, True], ids=["overflow-off", "overflow-on"])
@pytest.mark.parametrize(("school_id", "vendor", "grade", "tag"), table())
def test_every_school_kind_span_grade_and_language(
    catalog: Catalog, directory: SchoolDirectory, overflow: bool,
    school_id: str, vendor: str | None, grade: int, tag: str,
) -> None:
    cat = catalog.with_overflow(True) if overflow else catalog
    got = decide(cat, directory, school_id, grade, tag)
    want = expected(vendor, grade, tag, overflow)
    if isinstance(want, Routed):
        assert got == want
    else:
        assert isinstance(got, Unmet) and got.reason is want, got


@pytest.mark.parametrize(
    ("school_id", "grade", "language", "vendor"),
    [
        ("s-k8", "07", "en", "paper"),  # a 7th grader at a K-8 school
        ("m-68", "7", "en", "tutorcom"),  # ... at a 6-8 middle school
        ("s-k12", "2", "es", "tutorcom"),  # a 2nd grader at a K-12 span school
        ("e-k5", "KG", "fr", "paper"),
        ("e-tk5", "TK", "zh", "paper"),  # a TK-5 school counts as K-5
        ("o-k8", "3", "en", "tutorcom"),  # options decide by kind, whatever the span
        ("v-k8", "8", "es", "tutorcom"),  # so does the virtual academy
    ],
)
def test_domain_examples(catalog: Catalog, directory: SchoolDirectory, school_id: str,
                         grade: str, language: str, vendor: str) -> None:
    got = decide(catalog, directory, school_id, grade, language)
    assert got == Routed(vendor, f"{vendor}:{language}", language)


def test_high_schooler_asking_mandarin_is_unmet_even_with_overflow(
    catalog: Catalog, overflow_catalog: Catalog, directory: SchoolDirectory
) -> None:
    for cat in (catalog, overflow_catalog):
        got = decide(cat, directory, "h-912", "10", "zh-CN")
        assert isinstance(got, Unmet) and got.reason is UnmetReason.LANGUAGE_UNSUPPORTED
        assert "Tutor.com" in got.detail and "'zh'" in got.detail


def test_overflow_sends_a_k12_grade_3_mandarin_request_to_paper(
    catalog: Catalog, overflow_catalog: Catalog, directory: SchoolDirectory
) -> None:
    off = decide(catalog, directory, "s-k12", "3", "zh")
    assert isinstance(off, Unmet) and off.reason is UnmetReason.LANGUAGE_UNSUPPORTED
    on = decide(overflow_catalog, directory, "s-k12", "3", "zh")
    assert on == Routed("paper", "paper:zh", "zh", True, "tutorcom",
                        UnmetReason.LANGUAGE_UNSUPPORTED)
    assert on.as_json() == {"vendor": "paper", "queue": "paper:zh", "overflow": True,
                            "first_choice": "tutorcom",
                            "first_choice_unmet": "language_unsupported"}


def test_overflow_setting_is_read_from_the_catalog(directory: SchoolDirectory) -> None:
    text = shipped_text().replace("enabled = false", "enabled = true", 1)
    cat = Catalog.from_toml(text)
    assert cat.overflow
    got = decide(cat, directory, "s-612", "8", "fr")
    assert isinstance(got, Routed) and got.vendor == "paper" and got.overflow


@pytest.mark.parametrize("school_id", [None, "", "no-such-school"])
@pytest.mark.parametrize("grade", ["PK", "TK", "K", "1", "2", "3", "4", "5", "6", "7", "8",
                                   "9", "10", "11", "12"])
def test_unknown_school_the_grade_decides(
    catalog: Catalog, directory: SchoolDirectory, school_id: str | None, grade: str
) -> None:
    g = parse_grade(grade)
    got = decide(catalog, directory, school_id, grade, "es")
    if g == -2:
        assert isinstance(got, Unmet) and got.reason is UnmetReason.GRADE_UNSUPPORTED
    elif g <= 5:
        assert got == Routed("paper", "paper:es", "es")
    elif g <= 8:
        assert isinstance(got, Unmet)
        assert got.reason is UnmetReason.SCHOOL_UNKNOWN_GRADE_AMBIGUOUS
    else:
        assert got == Routed("tutorcom", "tutorcom:es", "es")


def test_unknown_school_language_and_overflow(
    catalog: Catalog, overflow_catalog: Catalog, directory: SchoolDirectory
) -> None:
    assert decide(catalog, directory, None, "3", "zh") == Routed("paper", "paper:zh", "zh")
    for cat in (catalog, overflow_catalog):
        got = decide(cat, directory, None, "11", "fr")
        assert isinstance(got, Unmet) and got.reason is UnmetReason.LANGUAGE_UNSUPPORTED
        got = decide(cat, directory, None, "7", "fr")
        assert isinstance(got, Unmet)
        assert got.reason is UnmetReason.SCHOOL_UNKNOWN_GRADE_AMBIGUOUS


def test_missing_or_unparseable_grade(catalog: Catalog, directory: SchoolDirectory) -> None:
    # a known school decides without a grade ...
    for grade in (None, "", "  ", "UG", "13", 99, 3.5):
        assert decide(catalog, directory, "s-k8", grade) == Routed("paper", "paper:en", "en")
    # ... an unknown one cannot
    got = decide(catalog, directory, None, None)
    assert isinstance(got, Unmet) and got.reason is UnmetReason.SCHOOL_UNKNOWN_GRADE_AMBIGUOUS
    got = decide(catalog, directory, "nowhere", "Grade 5")
    assert isinstance(got, Unmet) and got.reason is UnmetReason.INVALID_GRADE
    assert "'Grade 5'" in got.detail


@pytest.mark.parametrize("language", [None, "", "english!", "e", "en--US", 7, "x" * 100])
def test_invalid_language(catalog: Catalog, directory: SchoolDirectory, language: object) -> None:
    got = decide(catalog, directory, "s-k8", "3", language)
    assert isinstance(got, Unmet) and got.reason is UnmetReason.INVALID_LANGUAGE
    assert got.as_json()["unmet"] == "invalid_language"


def test_subjects(catalog: Catalog, directory: SchoolDirectory) -> None:
    assert decide(catalog, directory, "h-912", "11", "en", " AP ") == Routed(
        "tutorcom", "tutorcom:en", "en"
    )
    for subject in ("astrology", "", None, ["math"]):
        got = decide(catalog, directory, "h-912", "11", "en", subject)
        assert isinstance(got, Unmet) and got.reason is UnmetReason.SUBJECT_UNSUPPORTED


def test_a_vendor_with_a_subject_list(directory: SchoolDirectory) -> None:
    only_math = 'languages = ["en", "es"]\nsubjects = ["math"]'
    text = shipped_text().replace('languages = ["en", "es"]\nsubjects = ["*"]', only_math)
    cat = Catalog.from_toml(text)
    got = decide(cat, directory, "h-912", "11", "en", "physics")
    assert isinstance(got, Unmet) and got.reason is UnmetReason.SUBJECT_UNSUPPORTED
    assert "Physics" in got.detail
    assert decide(cat, directory, "h-912", "11", "en", "math") == Routed(
        "tutorcom", "tutorcom:en", "en"
    )


WINDOWED = shipped_text().replace(
    'subjects = ["*"]\nhours = "24/7"\ncapacity = 2\n\n[[vendors]]\nid = "tutorcom"',
    'subjects = ["*"]\nhours = [{days = ["mon", "tue", "wed", "thu", "fri"], start = "15:00",'
    ' end = "21:00"}]\ncapacity = 2\n\n[[vendors]]\nid = "tutorcom"',
)


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (datetime(2024, 1, 8, 23, 30, tzinfo=UTC), True),  # Mon 15:30 PST
        (datetime(2024, 1, 8, 22, 59, tzinfo=UTC), False),  # Mon 14:59 PST
        (datetime(2024, 1, 9, 5, 0, tzinfo=UTC), False),  # Mon 21:00 PST: closed at end
        (datetime(2024, 7, 8, 22, 30, tzinfo=UTC), True),  # Mon 15:30 PDT (summer time)
        (datetime(2024, 1, 13, 23, 30, tzinfo=UTC), False),  # Saturday
        (datetime(2024, 1, 8, 23, 30), True),  # naive = UTC
    ],
)
def test_weekly_windows_in_the_district_time_zone(
    directory: SchoolDirectory, at: datetime, open_: bool
) -> None:
    cat = Catalog.from_toml(WINDOWED)
    assert not cat.always_open
    got = route(HelpRequest("e-k5", "3", "en", "math", at), cat, directory)
    if open_:
        assert got == Routed("paper", "paper:en", "en")
    else:
        assert isinstance(got, Unmet) and got.reason is UnmetReason.OUTSIDE_HOURS
        over = route(HelpRequest("e-k5", "3", "en", "math", at), cat.with_overflow(True),
                     directory)
        assert over == Routed("tutorcom", "tutorcom:en", "en", True, "paper",
                              UnmetReason.OUTSIDE_HOURS)


def test_as_json_shapes(catalog: Catalog, directory: SchoolDirectory) -> None:
    assert decide(catalog, directory, "s-k8", "7").as_json() == {
        "vendor": "paper", "queue": "paper:en", "overflow": False
    }
    unmet = decide(catalog, directory, "s-58", "6").as_json()
    assert unmet["unmet"] == "no_vendor" and "5-8" in unmet["detail"]
    assert set(unmet) == {"unmet", "detail"}


def test_decisions_do_not_depend_on_the_memo(catalog: Catalog, directory: SchoolDirectory) -> None:
    requests = [HelpRequest(s, g, lang, "math", AT) for s, _lo, _hi, _k, _v in SCHOOLS
                for g in ("K", "4", "7", "11") for lang in ("en", "zh")]
    warm = [route(r, catalog, directory) for r in requests]
    cold = [route(r, catalog.with_overflow(False), directory) for r in requests]
    assert warm == cold
