"""CSV that a spreadsheet opens safely: the one writer of every CSV download.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as
a formula by a spreadsheet (OWASP "CSV injection"); such cells are written with a leading
``'``. ``None`` is an empty cell, datetimes are ISO 8601, lines end with CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        value = value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
