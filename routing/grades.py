"""Grade codes: OneRoster's (PK, TK, KG, 01-12) plus the everyday K and 1-12.

Grades are held as integers: PK = -2, TK = -1, KG = 0, first grade = 1 ... twelfth = 12.
"""

from __future__ import annotations

import re

from routing.errors import UnknownGradeError

PK = -2
TK = -1
KG = 0
MIN_GRADE = PK
MAX_GRADE = 12

_NAMED = {"PK": PK, "TK": TK, "KG": KG, "K": KG}
_NUMERIC = re.compile(r"^(0?[1-9]|1[0-2])$")
_CODES = {PK: "PK", TK: "TK", KG: "KG"}


def parse_grade(code: object) -> int:
    """Return the integer grade for a grade code; raise :class:`UnknownGradeError` otherwise.

    Accepts any case and surrounding whitespace. Never raises anything but
    :class:`UnknownGradeError`, whatever the input's type.
    """
    if isinstance(code, bool):
        raise UnknownGradeError(f"unknown grade {code!r}", value=code)
    if isinstance(code, int):
        if MIN_GRADE <= code <= MAX_GRADE:
            return code
        raise UnknownGradeError(f"unknown grade {code!r}", value=code)
    if not isinstance(code, str):
        raise UnknownGradeError(f"unknown grade {code!r}", value=code)
    text = code.strip().upper()
    if text in _NAMED:
        return _NAMED[text]
    if _NUMERIC.match(text):
        return int(text)
    raise UnknownGradeError(
        f"unknown grade {code!r}: use PK, TK, KG (or K), or 1-12 (01-12)", value=code
    )


def grade_code(grade: int) -> str:
    """OneRoster code of an integer grade: PK, TK, KG, 01 ... 12."""
    if grade in _CODES:
        return _CODES[grade]
    if 1 <= grade <= MAX_GRADE:
        return f"{grade:02d}"
    raise UnknownGradeError(f"unknown grade {grade!r}", value=grade)


def grade_label(grade: int) -> str:
    """Short human label: PK, TK, K, 1 ... 12."""
    if grade == KG:
        return "K"
    if grade in _CODES:
        return _CODES[grade]
    return str(grade)


def grade_band(grade: int) -> str:
    """The band tutors see instead of the exact grade: K-2, 3-5, 6-8, 9-12 (PK/TK fold into K-2)."""
    if grade <= 2:
        return "K-2"
    if grade <= 5:
        return "3-5"
    if grade <= 8:
        return "6-8"
    return "9-12"


def span_label(low: int, high: int) -> str:
    """A school span written the district's way: K-5, 6-8, K-12, 9-12."""
    return f"{grade_label(low)}-{grade_label(high)}"
