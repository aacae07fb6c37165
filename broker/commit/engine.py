"""The portable backend: batches run through SQLAlchemy's async engine (any dialect)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.commit.base import (
    Answer,
    GroupCommitter,
    Outcome,
    StepResult,
    Unit,
    needs_savepoint,
    steps,
)


class EngineCommitter(GroupCommitter):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    async def _commit(
        self, units: list[Unit], lane: int = 0, answer: Answer | None = None
    ) -> list[Outcome]:
        async with self.engine.begin() as conn:
            results = []
            for unit in units:
                unit_steps = steps(unit)
                nested = await conn.begin_nested() if needs_savepoint(unit_steps) else None
                outcome = Outcome()
                for step in unit_steps:
                    result = await conn.execute(step.stmt, dict(step.params))
                    value: StepResult = (
                        [tuple(row) for row in result.fetchall()] if step.returning
                        else int(result.rowcount or 0)
                    )
                    if not outcome.add(value, step.expect):
                        break
                if nested is not None:
                    await (nested.rollback() if outcome.failed is not None else nested.commit())
                results.append(outcome)
        return results
