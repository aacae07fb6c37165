"""Group commit: concurrent writes share one transaction, each caller still waits for its own.

Under load, every ``help:request`` and ``help:cancel`` used to pay a whole transaction
(connection checkout, BEGIN, statement, COMMIT) of its own. Here one writer task takes
every write waiting at that moment, runs them in one transaction, commits, and only then
resolves each caller's future.

Guarantees:

* **Durable before acknowledged**: a caller's ``await write(...)`` returns only after the
  transaction holding its statements committed.
* **Isolation of failures**: if a batch fails, each unit is retried alone in its own
  transaction, so one bad write fails only its own caller.
* **Order**: units run in the order they were submitted; a unit's statements run in order,
  in one transaction (all or nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

log = logging.getLogger(__name__)

MAX_BATCH = 200

Unit = Sequence[tuple[Executable, dict[str, Any]]]


@dataclass(slots=True)
class _Pending:
    unit: Unit
    done: asyncio.Future[list[int]]


class GroupCommitter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(self, unit: Unit) -> list[int]:
        """Run ``unit`` (statements with parameters) in a committed transaction; return the
        rowcount of each statement."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit, done))
        return await asyncio.shield(done)

    async def close(self) -> None:
        """Finish what was submitted, then stop the writer."""
        if self._task is None:
            return
        await self.write([])  # units run in order: once this one is done, all earlier are
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self.engine.begin() as conn:
                    results = [await _execute(conn, p.unit) for p in batch]
            except Exception:
                if len(batch) > 1:
                    log.warning("a batch of %d writes failed; retrying each alone", len(batch))
                await self._one_by_one(batch)
                continue
            for pending, counts in zip(batch, results, strict=True):
                if not pending.done.done():
                    pending.done.set_result(counts)

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                async with self.engine.begin() as conn:
                    counts = await _execute(conn, pending.unit)
            except Exception as exc:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            else:
                if not pending.done.done():
                    pending.done.set_result(counts)


async def _execute(conn: AsyncConnection, unit: Unit) -> list[int]:
    return [int((await conn.execute(stmt, params)).rowcount or 0) for stmt, params in unit]
