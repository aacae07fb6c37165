"""Test helpers for the group committer (broker/commit): a chosen number of lanes, and
counting what each transaction runs. Shared by test_group_commit and test_fused_writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.commit import AsyncpgCommitter, GroupCommitter, Unit, committer_for


def on_lanes(engine: AsyncEngine, lanes: int) -> GroupCommitter:
    """The native committer, on PostgreSQL with ``lanes`` lanes whatever the default (the
    other backends have one)."""
    made = committer_for(engine)
    if isinstance(made, AsyncpgCommitter):
        return AsyncpgCommitter(made.dsn, engine.dialect, lanes=lanes)
    return made


def one_lane(engine: AsyncEngine) -> GroupCommitter:
    """The native committer, on one lane, so that every write of a test shares batches."""
    return on_lanes(engine, 1)


def units_sent(writer: GroupCommitter) -> list[int]:
    """From now on, how many units each transaction the writer commits runs (one entry
    per transaction, in commit order)."""
    units: list[int] = []
    commit = writer._commit

    async def counting(batch: list[Unit], lane: int = 0, answer: Any = None) -> Any:
        units.append(len(batch))
        return await commit(batch, lane, answer)

    writer._commit = counting  # type: ignore[method-assign]
    return units
