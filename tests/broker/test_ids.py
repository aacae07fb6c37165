"""Request and session ids: unique, time-ordered, valid UUIDv7 text of 32 hex digits."""

from __future__ import annotations

import time
import uuid

import pytest

from broker.ids import new_id


def test_ids_are_uuid7_hex_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        parsed = uuid.UUID(value)
        assert len(value) == 32 and parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_sort_by_creation_time_across_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = 1_718_000_000_000
    now_ns = [ms * 1_000_000 + 999_999]  # the last nanosecond of a millisecond
    monkeypatch.setattr(time, "time_ns", lambda: now_ns[0])
    firsts = [new_id() for _ in range(100)]
    now_ns[0] += 1  # the next millisecond
    second = new_id()
    assert all(first < second for first in firsts)
    assert {int(first[:12], 16) for first in firsts} == {ms}
    assert int(second[:12], 16) == ms + 1


def test_ids_carry_the_wall_clock_time() -> None:
    ms = int(new_id()[:12], 16)
    assert abs(ms - time.time() * 1000) < 10_000
