"""The portable backend: batches run through SQLAlchemy's async engine (any dialect)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.commit.base import GroupCommitter, Unit


class EngineCommitter(GroupCommitter):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def _commit(self, units: list[Unit]) -> list[list[int]]:
        async with self.engine.begin() as conn:
            results = []
            for unit in units:
                counts = []
                for stmt, params in unit:
                    counts.append(int((await conn.execute(stmt, params)).rowcount or 0))
                results.append(counts)
        return results
