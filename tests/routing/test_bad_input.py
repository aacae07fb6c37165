"""Grade codes and language tags: accepted forms, and typed errors naming the culprit."""

from __future__ import annotations

import pytest

from routing.errors import InvalidLanguageTagError, RoutingError, UnknownGradeError
from routing.grades import parse_grade
from routing.languages import primary_language


@pytest.mark.parametrize(
    ("code", "grade"),
    [("PK", -2), ("TK", -1), ("KG", 0), ("K", 0), ("k", 0), (" 01 ", 1), ("1", 1), ("09", 9),
     ("12", 12), (7, 7), (0, 0)],
)
def test_grade_codes(code: object, grade: int) -> None:
    assert parse_grade(code) == grade


@pytest.mark.parametrize("code", ["13", "00", "UG", "Grade 3", "", "1.5", "-1", 13, -3, None,
                                  True, 2.0, "PKK", "０１"])
def test_unknown_grade_codes(code: object) -> None:
    with pytest.raises(UnknownGradeError) as err:
        parse_grade(code)
    assert err.value.value == code and err.value.code == "unknown_grade"
    assert repr(code) in str(err.value)
    assert isinstance(err.value, RoutingError)


@pytest.mark.parametrize(
    ("tag", "primary"),
    [("en", "en"), ("EN-us", "en"), ("es-419", "es"), ("zh-Hant-TW", "zh"), ("zh_CN", "zh"),
     ("fr-CA", "fr"), ("tlh", "tlh"), ("sgn-ase", "sgn"), ("en-x-private", "en")],
)
def test_language_tags(tag: str, primary: str) -> None:
    assert primary_language(tag) == primary


@pytest.mark.parametrize("tag", ["", "e", "english!", "en-", "en--us", "123", "en us", "x-y",
                                 "e" * 65, None, 5, ["en"]])
def test_invalid_language_tags(tag: object) -> None:
    with pytest.raises(InvalidLanguageTagError) as err:
        primary_language(tag)
    assert err.value.value == tag and err.value.code == "invalid_language_tag"
