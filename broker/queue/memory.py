"""The in-process queue backend: the embedded default, for a single broker process.

Each queue is a Python list of ``(score, request id)`` kept sorted with :mod:`bisect`, so
the service order is exactly the contract's ``(score, id)`` order, :meth:`position` is a
binary search (O(log n)) and :meth:`snapshot` is one pass over the list. Inserting and
removing shift the list (O(n) memmove), which is microseconds for the thousands of
requests a district has waiting at once.

Atomicity: every method runs to completion without an ``await`` between reading and
changing the state, so on one event loop no other coroutine can observe or interleave with
a half-done operation. In particular :meth:`claim` checks that the request is queued and
that the tutor has a free slot, then removes the request and takes the slot, all in one
uninterrupted step: of concurrent claims for one request exactly one wins.

Durability: nothing survives the process. :meth:`has_state` is ``False`` until
:meth:`rebuild` has loaded the database's queued requests, so a restarted broker rebuilds
the queues in their original order.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from broker.errors import AlreadyTaken, OverCapacity
from broker.queue.base import QueueBackend, QueuedRequest

_Entry = tuple[float, str]


class MemoryQueue(QueueBackend):
    """Queues and tutor loads in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._queues: dict[str, list[_Entry]] = {}
        self._requests: dict[str, QueuedRequest] = {}
        self._loads: dict[str, int] = {}
        self._built = False

    # -- helpers (synchronous: no await, hence atomic on the event loop) ------------------
    def _position_of(self, request: QueuedRequest) -> int:
        entries = self._queues[request.queue]
        return bisect_left(entries, (request.score, request.id)) + 1

    def _add(self, request: QueuedRequest) -> int:
        existing = self._requests.get(request.id)
        if existing is not None:
            return self._position_of(existing)
        self._requests[request.id] = request
        insort(self._queues.setdefault(request.queue, []), (request.score, request.id))
        return self._position_of(request)

    def _take(self, request: QueuedRequest) -> None:
        del self._requests[request.id]
        entries = self._queues[request.queue]
        index = bisect_left(entries, (request.score, request.id))
        del entries[index]
        if not entries:
            del self._queues[request.queue]

    # -- the contract ---------------------------------------------------------------------
    async def enqueue(self, request: QueuedRequest) -> int:
        """Add ``request``; if its id is already queued, leave it and return its position."""
        return self._add(request)

    async def requeue(self, request: QueuedRequest) -> int:
        """Put ``request`` back at its original place (its score is from ``enqueued_at``)."""
        return self._add(request)

    async def remove(self, request_id: str, student: str | None = None) -> QueuedRequest | None:
        request = self._requests.get(request_id)
        if request is None or (student is not None and request.student != student):
            return None
        self._take(request)
        return request

    async def claim(self, request_id: str, tutor_id: str, capacity: int) -> QueuedRequest:
        """Check and take in one step with no ``await`` in between: at most one winner."""
        request = self._requests.get(request_id)
        if request is None:
            raise AlreadyTaken("this request has already been taken", request_id=request_id)
        load = self._loads.get(tutor_id, 0)
        if load >= capacity:
            raise OverCapacity(
                "you already have as many sessions as you can take",
                load=load,
                capacity=capacity,
            )
        self._take(request)
        self._loads[tutor_id] = load + 1
        return request

    async def release(self, tutor_id: str) -> None:
        load = self._loads.get(tutor_id, 0)
        if load <= 1:
            self._loads.pop(tutor_id, None)
        else:
            self._loads[tutor_id] = load - 1

    async def load(self, tutor_id: str) -> int:
        return self._loads.get(tutor_id, 0)

    async def get(self, request_id: str) -> QueuedRequest | None:
        return self._requests.get(request_id)

    async def position(self, request_id: str) -> int | None:
        request = self._requests.get(request_id)
        return None if request is None else self._position_of(request)

    async def snapshot(self, queue: str) -> list[QueuedRequest]:
        requests = self._requests
        return [requests[request_id] for _, request_id in self._queues.get(queue, ())]

    async def lengths(self) -> dict[str, int]:
        return {name: len(entries) for name, entries in self._queues.items() if entries}

    async def has_state(self) -> bool:
        return self._built

    async def rebuild(self, requests: list[QueuedRequest], loads: dict[str, int]) -> None:
        """Replace everything at once (no await), then mark the state as built."""
        queues: dict[str, list[_Entry]] = {}
        by_id: dict[str, QueuedRequest] = {}
        for request in requests:
            if request.id in by_id:
                continue
            by_id[request.id] = request
            queues.setdefault(request.queue, []).append((request.score, request.id))
        for entries in queues.values():
            entries.sort()
        self._queues = queues
        self._requests = by_id
        self._loads = {tutor: n for tutor, n in loads.items() if n > 0}
        self._built = True
