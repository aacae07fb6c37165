r"""Group commit: concurrent writes share one transaction, each caller still waits for its own.

Under load, every ``help:request`` and ``help:cancel`` would otherwise pay a whole
transaction (connection checkout, BEGIN, statement, COMMIT) of its own. Here one writer
task takes every write waiting at that moment, hands them to the backend as one batch,
and only after the backend committed resolves each caller's future.

Like python-socketio's managers, the base class owns the protocol and the backends fill
in two hooks: :meth:`GroupCommitter._commit` (run a batch of units in one transaction and
return each unit's :class:`Outcome`) and :meth:`GroupCommitter._dispose`.

A unit is a short program of :class:`Step`\ s, which is how one state change stays one
transaction however many rows it touches:

* a step with ``expect`` is a **guard**: if its rowcount differs, the unit stops there and
  every write it made is undone (a savepoint is rolled back; a unit whose only guard is its
  first step needs none, since nothing was written before it). The outcome says which step
  failed, so the caller can answer ``already_taken``, ``over_capacity``... and a guard that
  fails is not an error: the rest of the batch commits;
* a step with ``returning`` gives back its rows (``RETURNING``), e.g. the sequence number a
  message was given.

Guarantees, whatever the backend:

* **Durable before acknowledged**: a caller's ``await write(...)`` returns only after the
  transaction holding its statements committed.
* **Isolation of failures**: if a batch fails, each unit is retried alone in its own
  transaction, so one bad write fails only its own caller.
* **Order**: with one lane (SQLite, which has one writer anyway) units run in the order
  they were submitted. With several lanes (PostgreSQL: a connection each) batches run in
  parallel, so units of different callers may commit in any order; a caller's own units
  stay in order, because a caller awaits each write before making the next. Nothing here
  relies on an order between callers: every unit carries its own guards. A unit's
  statements run in order, in one transaction (all or nothing).
* **A unit happens whole or not at all**: a failed guard undoes the unit's own writes; an
  error fails the unit's caller with nothing of the unit written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql import Executable

log = logging.getLogger(__name__)

MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a unit (see the module docstring for ``expect`` and ``returning``)."""

    stmt: Executable
    params: Mapping[str, Any]
    expect: int | None = None
    returning: bool = False


Unit = Sequence[Step | tuple[Executable, Mapping[str, Any]]]
StepResult = int | list[tuple[Any, ...]]  # a rowcount, or the rows of a RETURNING step


class Outcome(list[StepResult]):
    """The result of each step that ran, in order (a rowcount, or rows for ``returning``
    steps); ``failed`` is the index of the guard that stopped the unit (its writes were
    undone), or ``None`` when every step ran."""

    failed: int | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None

    def rows(self, index: int) -> list[tuple[Any, ...]]:
        value = self[index]
        assert isinstance(value, list), "not a returning step"
        return value


def steps(unit: Unit) -> list[Step]:
    """The unit's steps (plain ``(statement, parameters)`` pairs are unguarded steps)."""
    return [s if isinstance(s, Step) else Step(s[0], s[1]) for s in unit]


def needs_savepoint(unit_steps: Sequence[Step]) -> bool:
    """Whether a guard after the first step may have to undo earlier writes."""
    return any(step.expect is not None for step in unit_steps[1:])


def check(step: Step, result: StepResult) -> bool:
    """Whether ``result`` passes ``step``'s guard (always, for an unguarded step)."""
    count = len(result) if isinstance(result, list) else result
    return step.expect is None or count == step.expect


@dataclass(slots=True)
class _Pending:
    unit: Unit
    done: asyncio.Future[Outcome]


class GroupCommitter:
    """The batching protocol; a backend implements :meth:`_commit` and :meth:`_dispose`.

    ``lanes``: how many batches may run at once (each on a connection of its own)."""

    def __init__(self, lanes: int = 1) -> None:
        self.lanes = max(1, lanes)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def write(self, unit: Unit) -> Outcome:
        """Run ``unit`` (its steps) in a committed transaction; return its :class:`Outcome`
        (each step's rowcount or rows, and which guard failed, if one did)."""
        if len(self._tasks) < self.lanes or any(t.done() for t in self._tasks):
            self._tasks = [t for t in self._tasks if not t.done()]
            taken = {int(t.get_name().rsplit("-", 1)[1]) for t in self._tasks}
            for lane in sorted(set(range(self.lanes)) - taken):
                self._tasks.append(
                    asyncio.create_task(self._run(lane), name=f"group-commit-{lane}")
                )
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit, done))
        return await done  # a cancelled caller's unit still runs; only its answer is lost

    async def close(self) -> None:
        """Finish what was submitted, then stop the writers and release the backend."""
        if self._tasks:
            # Every unit submitted is settled (committed, or failed on its own) before the
            # writers stop.
            with contextlib.suppress(Exception):
                await self._queue.join()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
        await self._dispose()

    # -- the backend's hooks ------------------------------------------------------------
    async def _commit(self, units: list[Unit], lane: int = 0) -> list[Outcome]:
        """Run ``units`` in order in one transaction and commit; return each unit's
        :class:`Outcome`, undoing a unit whose guard failed (:func:`needs_savepoint`).
        Raise (having rolled back) if any statement fails."""
        raise NotImplementedError

    async def _dispose(self) -> None:
        """Release the backend's connections (pending writes are already done)."""

    # -- the protocol -------------------------------------------------------------------
    async def _run(self, lane: int) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._settle(batch, lane)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _settle(self, batch: list[_Pending], lane: int) -> None:
        try:
            results = await self._commit([p.unit for p in batch], lane)
        except Exception:
            if len(batch) > 1:
                log.warning("a batch of %d writes failed; retrying each alone", len(batch))
            await self._one_by_one(batch, lane)
            return
        for pending, counts in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(counts)

    async def _one_by_one(self, batch: list[_Pending], lane: int) -> None:
        for pending in batch:
            try:
                [counts] = await self._commit([pending.unit], lane)
            except Exception as exc:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            else:
                if not pending.done.done():
                    pending.done.set_result(counts)
