"""Where a series is cut when a student leaves it from a date on (pure rules): each side
stays one run of the series' rule, and a session moved across the cut refuses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broker.scheduler import rules


def test_a_series_is_cut_where_each_side_stays_one_run() -> None:
    day = datetime(2026, 11, 2, tzinfo=UTC)

    def occ(i: int, status: str = "scheduled", moved_to: int | None = None) -> dict[str, Any]:
        at = day + timedelta(days=i)
        return {"id": f"o{i}", "status": status, "original_starts_at": at,
                "starts_at": day + timedelta(days=moved_to) if moved_to is not None else at}

    cut = day + timedelta(days=2)
    plain = rules.split_for_leaving([occ(3), occ(0, "held"), occ(1, "cancelled"), occ(2)], cut)
    assert (plain.tail, plain.scheduled, plain.stuck) == (["o2", "o3"], ["o2", "o3"], [])
    # the session just before the cut, moved after it, goes with the rest
    later = rules.split_for_leaving([occ(0, "held"), occ(1, moved_to=5), occ(2)], cut)
    assert (later.tail, later.stuck) == (["o1", "o2"], [])
    # one moved across the cut further back, or forward: refused (move it first)
    assert rules.split_for_leaving([occ(0, moved_to=5), occ(1), occ(2)], cut).stuck == ["o0"]
    assert rules.split_for_leaving([occ(1), occ(3, moved_to=1)], cut).stuck == ["o3"]
    assert rules.leaving_cut(day.date(), "America/Los_Angeles", day) == day + timedelta(
        hours=8)
