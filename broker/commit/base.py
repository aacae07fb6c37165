"""Group commit: concurrent writes share one transaction, each caller still waits for its own.

Under load, every ``help:request`` and ``help:cancel`` would otherwise pay a whole
transaction (connection checkout, BEGIN, statement, COMMIT) of its own. Here one writer
task takes every write waiting at that moment, hands them to the backend as one batch,
and only after the backend committed resolves each caller's future.

Like python-socketio's managers, the base class owns the protocol and the backends fill
in two hooks: :meth:`GroupCommitter._commit` (run a batch of units in one transaction and
return each statement's rowcount) and :meth:`GroupCommitter._dispose`.

Guarantees, whatever the backend:

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

from sqlalchemy.sql import Executable

log = logging.getLogger(__name__)

MAX_BATCH = 200

Unit = Sequence[tuple[Executable, dict[str, Any]]]


@dataclass(slots=True)
class _Pending:
    unit: Unit
    done: asyncio.Future[list[int]]


class GroupCommitter:
    """The batching protocol; a backend implements :meth:`_commit` and :meth:`_dispose`."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(self, unit: Unit) -> list[int]:
        """Run ``unit`` (statements with parameters) in a committed transaction; return the
        rowcount of each statement."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit, done))
        return await done  # a cancelled caller's unit still runs; only its answer is lost

    async def close(self) -> None:
        """Finish what was submitted, then stop the writer and release the backend."""
        if self._task is not None:
            # Units run in order: once this empty one is settled, every earlier one is (its
            # own failure, e.g. a database that is gone, says nothing about theirs).
            with contextlib.suppress(Exception):
                await self.write([])
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._dispose()

    # -- the backend's hooks ------------------------------------------------------------
    async def _commit(self, units: list[Unit]) -> list[list[int]]:
        """Run ``units`` in order in one transaction and commit; return the rowcounts of
        each unit's statements. Raise (having rolled back) if any statement fails."""
        raise NotImplementedError

    async def _dispose(self) -> None:
        """Release the backend's connections (pending writes are already done)."""

    # -- the protocol -------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._commit([p.unit for p in batch])
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
                [counts] = await self._commit([pending.unit])
            except Exception as exc:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            else:
                if not pending.done.done():
                    pending.done.set_result(counts)
