"""UTCDateTime's one-step SQLite bind gives exactly what SQLAlchemy's generic path gives."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from broker.db.types import UTCDateTime

SQLITE = sqlite.dialect()
FAST = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
GENERIC = TypeDecorator.bind_processor(UTCDateTime().dialect_impl(SQLITE), SQLITE)

offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.none() | offsets,
)


@given(moments)
def test_fast_sqlite_bind_matches_the_generic_path(value: dt.datetime) -> None:
    assert FAST is not None and GENERIC is not None
    assert FAST(value) == GENERIC(value)


def test_fast_bind_keeps_none_and_refuses_other_types() -> None:
    assert FAST is not None
    assert FAST(None) is None
    assert FAST(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02 03:04:05.000000"
    with pytest.raises(TypeError):
        FAST("2026-01-02")


def test_other_dialects_keep_the_generic_path() -> None:
    pg = postgresql.dialect()
    process = UTCDateTime().dialect_impl(pg).bind_processor(pg)
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert process is not None
    assert process(aware) == aware.astimezone(dt.UTC)
