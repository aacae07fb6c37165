"""Calls that share round trips: made while one is on its way, they go together next.

A backend that answers many small concurrent calls (a Redis throttle's ``allow`` per chat
message, a presence heartbeat and an open-request lookup per connecting client) spends
more of its CPU packing, sending and parsing one round trip per call than doing the work.
:class:`RoundTrips` queues the calls and sends them in batches: the first call starts a
sender task; calls made while a batch is on its way wait for it to come back and then go
together as the next batch. So a lone call costs one round trip as before, and a burst
costs about one per round-trip time, whatever its size.

Guarantees:

* Every call is in exactly one batch, and batches are sent one at a time, in the order
  their calls were made (a call never overtakes an earlier one).
* Each caller gets its own answer, or the exception ``send`` returned for it; a batch whose
  ``send`` raised fails every call in it with that exception, and the next batch is still
  sent.
* A cancelled caller's call may still be sent (it was already queued); its answer is
  dropped.
* No caller waits forever: if the sender task itself is cancelled (the process stops),
  every call it still held is cancelled too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

Send = Callable[[list[Item]], Awaitable[list[Answer | BaseException]]]


class RoundTrips(Generic[Item, Answer]):
    """Batch concurrent calls into one ``send`` per round trip (see the module's doc).

    ``send(items)`` answers one value or exception per item, in order."""

    def __init__(self, name: str, send: Send[Item, Answer]) -> None:
        self.name = name
        self._send = send
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0  # batches sent (tests read it)

    async def call(self, item: Item) -> Answer:
        """Send ``item`` with the next batch and return its answer (or raise its error)."""
        done: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._run(), name=f"round-trips:{self.name}")
        return await done

    async def _run(self) -> None:
        """Send what waits, one batch per round trip, until nothing does."""
        batch: list[tuple[Item, asyncio.Future[Answer]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self.sent += 1
                try:
                    answers = await self._send([item for item, _ in batch])
                except Exception as exc:  # each caller of the batch gets it
                    answers = [exc] * len(batch)
                if len(answers) != len(batch):
                    wrong = RuntimeError(f"{self.name}: {len(answers)} answers for {len(batch)}")
                    answers = [wrong] * len(batch)
                for (_, done), answer in zip(batch, answers, strict=True):
                    if done.done():
                        continue  # its caller was cancelled
                    if isinstance(answer, BaseException):
                        done.set_exception(answer)
                    else:
                        done.set_result(answer)
        finally:
            self._sender = None
            for _, done in [*batch, *self._waiting]:
                done.cancel()  # a no-op for the answered; only a cancelled sender leaves any
            self._waiting = []


def padded_params(items: list[str], size: int, prefix: str) -> list[dict[str, str]]:
    """``items`` as the parameters of statements built once for ``size`` values each
    (``<prefix>0`` .. ``<prefix><size-1>``, so a native reader prepares each statement
    once): one dict per statement, in order, the last filled up with its first item (a
    repeat finds the same rows again)."""
    out = []
    for k in range(0, len(items), size):
        chunk = items[k:k + size]
        chunk += [chunk[0]] * (size - len(chunk))
        out.append({f"{prefix}{i}": x for i, x in enumerate(chunk)})
    return out
