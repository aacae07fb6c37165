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
  transaction holding its statements committed (with a backend that commits a batch's
  units one by one, as soon as its own did, before the rest of its batch).
* **Isolation of failures**: if a batch fails, each unit of it not committed is retried
  alone in its own transaction, so one bad write fails only its own caller (a backend may
  commit a batch's units one by one, and report the ones committed before a failure:
  :class:`PartialCommit`; those are answered, never run twice). A batch whose connection
  broke while a statement was under way may have committed (:meth:`GroupCommitter.
  _in_doubt`): its units are retried beside the lane, waiting up to ``IN_DOUBT_WAIT_S``
  for the database, and their guards answer what the first run did; past that, its
  callers get the error.
* **Order**: units with the same ``key`` go to the same lane and run in the order they were
  submitted, except that a batch runs its units sorted by ``order`` (stable). With one lane
  (SQLite, which has one writer anyway) that is every unit. With several lanes
  (PostgreSQL: a connection each) batches of different lanes run in parallel, so units of
  different keys may commit in any order; nothing here relies on an order between them:
  every unit carries its own guards. A unit's statements run in order, in one transaction
  (all or nothing).
* **No lock cycles between lanes** (PostgreSQL would break one after ``deadlock_timeout``,
  a second, and the batch would be retried unit by unit): callers give each unit the key
  of the rows it contends for first (a session, a request), so those rows are only ever
  locked by one lane of a process, and the ``order`` of the rows every lane shares (a
  tutor's row), so every batch takes those in one global order. Between processes a
  cycle can form; the PostgreSQL backend bounds how long a batch waits for a lock
  (:mod:`broker.commit.postgres`).
* **A unit happens whole or not at all**: a failed guard undoes the unit's own writes; an
  error fails the unit's caller with nothing of the unit written.

**Fused statements.** A backend that pays a round trip per statement (PostgreSQL) sets
:attr:`GroupCommitter.fuses`; then units of one registered statement (:meth:`~GroupCommitter.
fuse`: a single guarded ``RETURNING`` step each, such as a cancel) in one batch run as one
statement over arrays of their parameters, at the place of the first of them. Outcomes are
those of running them one after another in an order that keeps each key's: a key's later
units of that statement join a later round (a second fused statement), placed after the
key's earlier units, so fused units of one statement never touch the same rows, and each
unit gets its own rows and guard. If a fused statement fails, the batch is retried unit by
unit as any failed batch is, unfused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql import Executable

from broker.constants import (
    CLOSE_SETTLE_S,
    IN_DOUBT_PAUSE_MAX_S,
    IN_DOUBT_PAUSE_S,
    IN_DOUBT_WAIT_S,
)
from broker.outages import OutageLog, kind_of

log = logging.getLogger(__name__)

# The lane number of the connection batches in doubt are retried on, beside the lanes
# (one batch at a time, whatever its lane: GroupCommitter._retry_in_doubt).
ASIDE_LANE = -1
_outages = OutageLog(log)

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
    # True when the unit ran again because its first run's outcome was in doubt
    # (:meth:`GroupCommitter._retry_in_doubt`): a guard that failed may have been failed by
    # the first run's own change, which the caller can then look for.
    in_doubt: bool = False

    @property
    def ok(self) -> bool:
        return self.failed is None

    def add(self, value: StepResult, expect: int | None) -> bool:
        """Record the next step's result; False if it was a guard that failed (the unit
        stops there, and ``failed`` says which step)."""
        self.append(value)
        count = len(value) if isinstance(value, list) else value
        if expect is not None and count != expect:
            self.failed = len(self) - 1
            return False
        return True

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


@dataclass(frozen=True, slots=True)
class Fusion:
    """How units of one single-statement kind run as one statement.

    ``stmt`` takes one array per parameter of the single statement (``arrays`` maps each
    array parameter of ``stmt`` to the single statement's parameter it collects, in unit
    order) and returns, per row the single statements would have returned, the unit's
    1-based place in the arrays (``WITH ORDINALITY``) followed by the single statement's
    ``RETURNING`` columns. ``unused`` names parameters of the single statement that the
    fused one does without; a unit with any other parameter than these and the collected
    ones runs on its own (nothing it was given is ever dropped)."""

    stmt: Executable
    arrays: Mapping[str, str]
    unused: frozenset[str] = frozenset()

    def takes(self, params: Mapping[str, Any]) -> bool:
        """Whether a unit with these parameters can join (exactly the expected ones)."""
        names = set(params)
        return names - self.unused == set(self.arrays.values())


class PartialCommit(Exception):
    """Raised by a backend that commits a batch's units one after another, each its own
    transaction (:mod:`broker.commit.postgres`), when one failed part way: the first
    ``len(done)`` units committed with these outcomes, the next one failed with ``error``
    (nothing of it written) and the rest were not run."""

    def __init__(self, done: list[Outcome], error: Exception) -> None:
        super().__init__(f"{len(done)} units committed before: {error}")
        self.done = done
        self.error = error


@dataclass(slots=True)
class _Pending:
    unit: Unit
    done: asyncio.Future[Outcome]
    order: str = ""
    key: str = ""


# A unit to run, and the batch's units it stands for (one; or, fused, two or more).
_Run = tuple[Unit, list[int]]
# Told by a backend that unit ``i`` of the units it was given committed with this outcome.
Answer = Callable[[int, "Outcome"], None]


class GroupCommitter:
    """The batching protocol; a backend implements :meth:`_commit` and :meth:`_dispose`.

    ``lanes``: how many batches may run at once (each on a connection of its own)."""

    #: whether units of a statement registered with :meth:`fuse` run fused
    fuses = False

    def __init__(self, lanes: int = 1) -> None:
        self.lanes = max(1, lanes)
        self._fusions: dict[int, tuple[Executable, Fusion]] = {}
        self._queues: list[asyncio.Queue[_Pending]] = [
            asyncio.Queue() for _ in range(self.lanes)
        ]
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._aside: set[asyncio.Task[None]] = set()  # retries of batches in doubt
        self._aside_lock = asyncio.Lock()  # one such batch at a time, on ASIDE_LANE

    def lane(self, key: str) -> int:
        """The lane of units with this key (always the same one)."""
        return zlib.crc32(key.encode()) % self.lanes if self.lanes > 1 else 0

    async def write(self, unit: Unit, *, key: str = "", order: str = "") -> Outcome:
        """Run ``unit`` (its steps) in a committed transaction; return its :class:`Outcome`
        (each step's rowcount or rows, and which guard failed, if one did). ``key`` picks
        the lane, ``order`` the unit's place in its batch (see the module's guarantees)."""
        lane = self.lane(key)
        task = self._tasks.get(lane)
        if task is None or task.done():
            self._tasks[lane] = asyncio.create_task(self._run(lane), name=f"group-commit-{lane}")
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queues[lane].put_nowait(_Pending(unit, done, order, key))
        return await done  # a cancelled caller's unit still runs; only its answer is lost

    def fuse(self, single: Executable, fusion: Fusion) -> None:
        """Run the units whose one step is ``single`` (a ``RETURNING`` statement) fused as
        ``fusion`` when the backend :attr:`fuses` (see the module's doc); else a no-op."""
        if self.fuses:
            self._fusions[id(single)] = (single, fusion)  # kept: its id is never reused

    async def close(self, settle_s: float = CLOSE_SETTLE_S) -> None:
        """Finish what was submitted, then stop the writers and release the backend.

        Every unit submitted is settled (committed, or failed on its own) before the
        writers stop, unless the database has not answered within ``settle_s``: then the
        writers stop without them (logged as a warning), their callers are never
        answered, and a batch under way is left to the database, which rolls it back
        when its connection drops unless it had already committed it."""
        if self._tasks:
            running: list[Awaitable[Any]] = [
                queue.join() for lane, queue in enumerate(self._queues)
                if lane in self._tasks and not self._tasks[lane].done()
            ]
            running += self._aside
            try:
                async with asyncio.timeout(settle_s):
                    await asyncio.gather(*running)
            except TimeoutError:
                log.warning(
                    "closing: the database did not settle the writes under way within "
                    "%.1f s; stopping without them (%d more waiting), none of them answered",
                    settle_s, sum(queue.qsize() for queue in self._queues),
                )
            except Exception:  # a writer that failed: nothing more to wait for
                pass
            tasks, self._tasks = [*self._tasks.values(), *self._aside], {}
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._dispose()

    # -- the backend's hooks ------------------------------------------------------------
    async def _commit(
        self, units: list[Unit], lane: int = 0, answer: Answer | None = None
    ) -> list[Outcome]:
        """Run ``units`` in order in one transaction and commit; return each unit's
        :class:`Outcome`, undoing a unit whose guard failed (:func:`needs_savepoint`).
        Raise (having rolled back) if any statement fails. A backend may instead commit
        each unit as a transaction of its own, in order; one that fails after others
        committed then raises :class:`PartialCommit` with what committed. Such a backend
        may call ``answer(i, outcome)`` as soon as unit ``i`` committed: its callers are
        answered then, not once the whole batch is done."""
        raise NotImplementedError

    async def _dispose(self) -> None:
        """Release the backend's connections (pending writes are already done)."""

    async def _release(self, lane: int) -> None:
        """Close ``lane``'s connection, if the backend keeps one; the next write on the
        lane opens another. Never raises."""

    def _in_doubt(self, error: Exception) -> bool:
        """Whether ``error`` may have come after the database committed: the connection
        broke while a statement or ``COMMIT`` was sent and its answer not yet back. Such
        a batch's units are retried alone for up to :data:`IN_DOUBT_WAIT_S` while the
        database cannot be reached (:meth:`_retry_in_doubt`). False by default (an embedded
        database has no connection to lose)."""
        return False

    # -- the protocol -------------------------------------------------------------------
    async def _run(self, lane: int) -> None:
        queue = self._queues[lane]
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            if len(batch) > 1:
                batch.sort(key=lambda pending: pending.order)
            try:
                await self._settle(batch, lane)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _settle(self, batch: list[_Pending], lane: int) -> None:
        runs: list[_Run] | None = None

        def answer(run: int, outcome: Outcome) -> None:
            """The backend's word that unit (or fused run) ``run`` committed."""
            indexes = [run] if runs is None else runs[run][1]
            for index, share in _shares(batch, indexes, outcome):
                if not batch[index].done.done():
                    batch[index].done.set_result(share)

        try:
            if self._fusions and len(batch) > 1:
                runs = self._runs(batch)
                done = await self._commit([unit for unit, _ in runs], lane, answer)
                if len(done) != len(runs):
                    raise RuntimeError(f"{len(done)} outcomes for {len(runs)} runs")
                results: Sequence[Outcome | None] = _unfused(batch, runs, done)
            else:
                results = await self._commit([p.unit for p in batch], lane, answer)
        except PartialCommit as partial:  # the first runs committed: answer those
            if runs is None:
                runs = [(pending.unit, [index]) for index, pending in enumerate(batch)]
            results = _unfused(batch, runs, partial.done)
            await self._failed(batch, results, partial.error, lane)
            return
        except Exception as error:
            await self._failed(batch, [None] * len(batch), error, lane)
            return
        for pending, counts in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(counts)  # type: ignore[arg-type]  # all committed

    async def _failed(
        self, batch: list[_Pending], results: list[Outcome | None], error: Exception, lane: int
    ) -> None:
        """Answer the units that committed (``results``); retry the others alone."""
        rest = []
        for pending, counts in zip(batch, results, strict=True):
            if counts is None:
                rest.append(pending)
            elif not pending.done.done():
                pending.done.set_result(counts)
        kind = kind_of(error)
        if kind is not None:  # every batch fails alike while it lasts: one paced line
            _outages.report(kind, f"a batch of {len(rest)} writes", error)
        elif len(rest) > 1:
            log.warning(
                "a batch of %d writes failed (%s); retrying each alone",
                len(rest), str(error).splitlines()[0][:300],
            )
        if rest and self._in_doubt(error):
            task = asyncio.create_task(self._retry_in_doubt(rest), name="in-doubt")
            self._aside.add(task)
            task.add_done_callback(self._aside.discard)
            return
        # each alone: one bad write fails only its caller, and after a lost connection
        # (a restart) they run on a fresh one
        await self._one_by_one(rest, lane)

    async def _retry_in_doubt(self, batch: list[_Pending]) -> None:
        """A batch whose outcome is in doubt (:meth:`_in_doubt`), retried unit by unit
        beside its lane, on a connection of its own (:data:`ASIDE_LANE`), for up to
        :data:`IN_DOUBT_WAIT_S` while the database cannot be reached: a unit that did
        commit is answered by its retry, whose guards see the first run's rows, not with
        an error that would say nothing changed; its outcome says it ran in doubt
        (:attr:`Outcome.in_doubt`), so that a caller whose guard failed can look for its
        own first run's change. The lane goes on meanwhile (while the database cannot be reached
        its batches fail before anything is sent, so they are not in doubt), and its
        callers are not held up. A later unit of the same key may so commit first; its
        caller was answered after this unit's was submitted but before this unit's
        caller was answered, an order the two could have had."""
        async with self._aside_lock:
            try:
                await self._one_by_one(batch, ASIDE_LANE, in_doubt=True)
            finally:  # an outage is rare: its connection is not kept idle until shutdown
                await self._release(ASIDE_LANE)

    async def _one_by_one(
        self, batch: list[_Pending], lane: int, *, in_doubt: bool = False
    ) -> None:
        """Run each unit alone, in order, on ``lane``'s connection. ``in_doubt`` (the
        batch's outcome was in doubt): each outcome says so (:attr:`Outcome.in_doubt`),
        and a unit that fails because the database cannot be reached is tried again after
        a pause (``IN_DOUBT_PAUSE_S``, doubling up to ``IN_DOUBT_PAUSE_MAX_S``) until
        :data:`IN_DOUBT_WAIT_S` has passed."""
        deadline = time.monotonic() + (IN_DOUBT_WAIT_S if in_doubt else 0.0)
        for pending in batch:
            pause = IN_DOUBT_PAUSE_S
            while True:
                try:
                    [counts] = await self._commit([pending.unit], lane)
                except Exception as exc:
                    if kind_of(exc) == "database" and time.monotonic() + pause < deadline:
                        await asyncio.sleep(pause)
                        pause = min(2 * pause, IN_DOUBT_PAUSE_MAX_S)
                        continue
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                else:
                    counts.in_doubt = in_doubt
                    if not pending.done.done():
                        pending.done.set_result(counts)
                break

    def _runs(self, batch: list[_Pending]) -> list[_Run]:
        """The batch as units to run. Units of a registered statement (a lone
        ``RETURNING`` step with the parameters it collects) run fused, in rounds: a unit
        joins the first round of its statement placed after every earlier unit of its key,
        else starts a round at its own place; a round runs at the place of its first
        member. So a key's units keep their order (a round never holds two of one key, and
        a key's second message runs in a later round than its first), and the units run in
        an order one-by-one execution could have had. A round of one is its unit as it is;
        every other unit keeps its place."""
        rounds: dict[int, list[list[int]]] = {}
        latest: dict[str, int] = {}  # a key's last unit so far: the place it runs at
        for index, pending in enumerate(batch):
            place = index
            unit = pending.unit
            if len(unit) == 1 and isinstance(unit[0], Step):
                step = unit[0]
                fusion = self._fusions.get(id(step.stmt))
                if step.returning and fusion is not None and fusion[1].takes(step.params):
                    after = latest.get(pending.key, -1)
                    kind = rounds.setdefault(id(step.stmt), [])
                    joined = next((members for members in kind if members[0] > after), None)
                    if joined is None:
                        kind.append([index])
                    else:
                        joined.append(index)
                        place = joined[0]
            latest[pending.key] = place
        fused = {
            members[0]: members
            for kind in rounds.values() for members in kind if len(members) > 1
        }
        joined_later = {index for members in fused.values() for index in members[1:]}
        runs: list[_Run] = []
        for index, pending in enumerate(batch):
            members = fused.get(index)
            if members is not None:
                runs.append(
                    (self._fused_unit([steps(batch[i].unit)[0] for i in members]), members)
                )
            elif index not in joined_later:
                runs.append((pending.unit, [index]))
        return runs

    def _fused_unit(self, members: list[Step]) -> Unit:
        """One unit for the members' steps (one registered statement): its arrays hold each
        collected parameter of every member, in the members' order."""
        _, fusion = self._fusions[id(members[0].stmt)]
        arrays = {
            array: [step.params[name] for step in members]
            for array, name in fusion.arrays.items()
        }
        return [Step(fusion.stmt, arrays, returning=True)]


def _unfused(
    batch: list[_Pending], runs: list[_Run], done: list[Outcome]
) -> list[Outcome | None]:
    """Each unit's outcome, in batch order: a fused run's rows shared out by ordinal, each
    unit's guard checked on its own rows. ``done`` may cover only the first runs (a
    :class:`PartialCommit`): the units of the others get None."""
    outcomes: list[Outcome | None] = [None] * len(batch)
    for (_, indexes), outcome in zip(runs[: len(done)], done, strict=True):
        for index, share in _shares(batch, indexes, outcome):
            outcomes[index] = share
    return outcomes


def _shares(
    batch: list[_Pending], indexes: list[int], outcome: Outcome
) -> list[tuple[int, Outcome]]:
    """One run's outcome as its units' (``indexes`` in the batch): a fused run's rows
    shared out by ordinal, each unit's guard checked on its own rows."""
    if len(indexes) == 1:
        return [(indexes[0], outcome)]
    rows: dict[int, list[tuple[Any, ...]]] = {}
    for row in outcome.rows(0):
        rows.setdefault(int(row[0]), []).append(tuple(row[1:]))
    shares = []
    for place, index in enumerate(indexes, start=1):
        step = steps(batch[index].unit)[0]
        mine = rows.get(place, [])
        share = Outcome([mine])
        if not check(step, mine):
            share.failed = 0
        shares.append((index, share))
    return shares
