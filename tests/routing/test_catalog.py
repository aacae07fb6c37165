"""The shipped catalog is the district's, and a malformed catalog names the vendor and key."""

from __future__ import annotations

import pytest

from routing.catalog import Catalog, Programme
from routing.errors import CatalogError
from routing.grades import KG, TK
from routing.schools import School, SchoolKind
from tests.routing.conftest import shipped_text


def test_shipped_on_demand_vendors(catalog: Catalog) -> None:
    assert [v.id for v in catalog.on_demand_vendors] == ["paper", "tutorcom"]
    paper, tutor = catalog.vendor("paper"), catalog.vendor("tutorcom")
    assert paper is not None and tutor is not None
    assert (paper.name, tutor.name) == ("Paper.co", "Tutor.com")
    assert paper.languages == ("en", "es", "zh", "fr") and tutor.languages == ("en", "es")
    assert paper.capacity == tutor.capacity == 2
    assert paper.hours.always and tutor.hours.always and catalog.always_open
    assert paper.subjects is None and tutor.subjects is None  # all content areas
    assert (paper.low_grade, paper.high_grade) == (TK, 8)
    assert (tutor.low_grade, tutor.high_grade) == (TK, 12)
    assert paper.spans == {(KG, 5), (KG, 6), (KG, 8)}
    assert tutor.spans == {(KG, 12), (6, 12), (8, 12)}
    assert tutor.kinds == {SchoolKind.MIDDLE, SchoolKind.HIGH, SchoolKind.OPTIONS,
                           SchoolKind.VIRTUAL_ACADEMY}
    assert not catalog.overflow
    assert catalog.timezone_name == "America/Los_Angeles"


def test_shipped_scheduled_vendors_are_not_live(catalog: Catalog) -> None:
    home = [v for v in catalog.vendors if v.programme is Programme.HOME_BASED]
    assert [v.name for v in home] == [
        "BookNook", "Carnegie Learning", "Cignition", "StepUp", "Study Smart"
    ]
    for v in home:
        assert v.languages == ("en", "es") and v.subjects == {"math", "ela"}
        assert v.hours.scheduled and not v.is_on_demand
    assert catalog.vendor("nobody") is None


def test_subjects(catalog: Catalog) -> None:
    ids = [sid for sid, _ in catalog.subjects]
    assert len(ids) == len(set(ids)) >= 20
    for sid in ("math", "algebra", "calculus", "ela", "reading", "chemistry", "ap",
                "world_languages", "computer_science"):
        assert sid in ids
    assert catalog.subject_label("ap") == "Advanced Placement (AP) courses"
    assert catalog.subject_label("nope") == "nope"


def test_languages_for(catalog: Catalog, overflow_catalog: Catalog) -> None:
    k12 = School("x", "X", "West", 0, 12, SchoolKind.SPAN)
    k8 = School("y", "Y", "West", 0, 8, SchoolKind.SPAN)
    assert catalog.languages_for(k8, 7) == ["en", "es", "zh", "fr"]
    assert catalog.languages_for(k12, 3) == ["en", "es"]
    assert overflow_catalog.languages_for(k12, 3) == ["en", "es", "zh", "fr"]
    assert overflow_catalog.languages_for(k12, 10) == ["en", "es"]
    assert catalog.languages_for(None, 7) == []  # ambiguous: nothing would be routed
    assert catalog.languages_for(None, 2) == ["en", "es", "zh", "fr"]
    assert catalog.languages_for(None, None) == ["en", "es", "zh", "fr"]


PAPER_LANGS = 'languages = ["en", "es", "zh", "fr"]'
TUTOR_LANGS = 'languages = ["en", "es"]\nsubjects = ["*"]'


@pytest.mark.parametrize(
    ("old", "new", "culprits"),
    [
        (PAPER_LANGS, 'languages = ["en", "e$"]', ["paper", "languages"]),
        ('languages = ["en", "es", "zh", "fr"]', 'languages = ["en-US"]', ["paper", "languages"]),
        ('languages = ["en", "es", "zh", "fr"]', "languages = []", ["paper", "languages"]),
        (TUTOR_LANGS, 'languages = ["en", "es"]\nsubjects = ["alchemy"]', ["tutorcom", "alchemy"]),
        ('grades = "TK-8"', 'grades = "K-14"', ["paper", "grades"]),
        ('grades = "TK-8"', 'grades = "8-K"', ["paper", "grades"]),
        ('spans = ["K-12", "6-12", "8-12"]', 'spans = ["K-12", "K-8"]',
         ["tutorcom", "spans", "K-8"]),
        ('kinds = ["elementary"]', 'kinds = ["elementary", "high"]', ["tutorcom", "kinds", "high"]),
        ('kinds = ["elementary"]', 'kinds = ["primary"]', ["paper", "kinds", "primary"]),
        ('programme = "on_demand"', 'programme = "live"', ["paper", "programme"]),
        ("capacity = 2", "capacity = 0", ["paper", "capacity"]),
        ("capacity = 2", 'capacity = "two"', ["paper", "capacity"]),
        ('hours = "24/7"', 'hours = "scheduled"', ["paper", "hours"]),
        ('hours = "24/7"', 'hours = [{days = ["mon"], start = "25:00", end = "26:00"}]',
         ["paper", "hours"]),
        ('hours = "24/7"', 'hours = [{days = ["funday"], start = "09:00", end = "10:00"}]',
         ["paper", "funday"]),
        ('hours = "24/7"', 'hours = [{days = ["mon"], start = "10:00", end = "09:00"}]',
         ["paper", "hours"]),
        ('name = "Paper.co"', "", ["paper", "name"]),
        ('name = "Paper.co"', 'name = "Paper.co"\ncolour = "blue"', ["paper", "colour"]),
        ('id = "tutorcom"', 'id = "paper"', ["paper", "id"]),
        ('vendor = "tutorcom"', 'vendor = "booknook"', ["unknown_school", "booknook"]),
        ('grades = "9-12"\nvendor', 'grades = "3-12"\nvendor', ["unknown_school", "grades"]),
        ('timezone = "America/Los_Angeles"', 'timezone = "Mars/Olympus"', ["timezone"]),
        ("enabled = false", 'enabled = "yes"', ["overflow", "enabled"]),
        ('kinds_decide = ["options", "virtual_academy"]', 'kinds_decide = ["charter"]',
         ["routing", "kinds_decide"]),
        ('id = "math"\nlabel = "Math"', 'id = "Math!"\nlabel = "Math"', ["subjects", "id"]),
        ('[[subjects]]\nid = "algebra"', '[[subjects]]\nid = "math"', ["subjects"]),
        ("[overflow]", "[overflow", ["TOML"]),
    ],
)
def test_bad_catalog_names_the_vendor_and_key(old: str, new: str, culprits: list[str]) -> None:
    text = shipped_text()
    assert old in text, old
    with pytest.raises(CatalogError) as err:
        Catalog.from_toml(text.replace(old, new, 1))
    for culprit in culprits:
        assert culprit in str(err.value)
    assert err.value.code == "invalid_catalog"


def test_unknown_school_rules() -> None:
    overlap = shipped_text().replace('grades = "TK-5"', 'grades = "TK-10"')
    with pytest.raises(CatalogError, match=r"unknown_school\[1\]: key 'grades' overlaps"):
        Catalog.from_toml(overlap)
    text = shipped_text().replace('grades = "9-12"\nvendor = "tutorcom"',
                                  'grades = "9-12"\nvendor = "paper"')
    with pytest.raises(CatalogError, match="'paper' does not serve grade 9"):
        Catalog.from_toml(text)
