"""Request and session ids: unique, time-ordered, valid UUIDv7 text of 32 hex digits."""

from __future__ import annotations

import time
import uuid

from broker.ids import new_id


def test_ids_are_uuid7_hex_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        parsed = uuid.UUID(value)
        assert len(value) == 32 and parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_sort_by_creation_time_across_milliseconds() -> None:
    first = new_id()
    time.sleep(0.003)
    second = new_id()
    assert first < second
    ms = int(first[:12], 16)
    assert abs(ms - time.time() * 1000) < 10_000
