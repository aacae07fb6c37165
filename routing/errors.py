"""The one exception base of the routing package and its typed subclasses.

Every error carries a stable machine ``code`` and names the culprit (the value, and for
files the file, line and field) so the edge can turn it into a typed error without parsing
messages.
"""

from __future__ import annotations


class RoutingError(ValueError):
    """Base of every error raised by :mod:`routing`."""

    code = "routing_error"

    def __init__(self, message: str, *, value: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.value = value


class UnknownGradeError(RoutingError):
    """A grade code that is neither OneRoster's (PK, TK, KG, 01-12) nor K / 1-12."""

    code = "unknown_grade"


class InvalidLanguageTagError(RoutingError):
    """A language tag that is not well-formed BCP 47."""

    code = "invalid_language_tag"


class CatalogError(RoutingError):
    """The vendor catalog is malformed (names the vendor and the key)."""

    code = "invalid_catalog"


class DataFileError(RoutingError):
    """A row of a CSV file is malformed: carries the file name, line number and field."""

    code = "invalid_row"

    def __init__(
        self, message: str, *, file: str, line: int, field: str | None = None, value: object = None
    ) -> None:
        where = f"{file}:{line}" + (f" field {field!r}" if field else "")
        super().__init__(f"{where}: {message}", value=value)
        self.file = file
        self.line = line
        self.field = field


class DuplicateIdError(DataFileError):
    """An id (school, student) appears twice."""

    code = "duplicate_id"
