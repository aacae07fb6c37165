"""MemoryQueue against a reference model: a plain list sorted by (score, id) on every read."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.errors import AlreadyTaken, OverCapacity
from broker.queue.base import QueuedRequest
from broker.queue.memory import MemoryQueue
from tests.queue.conftest import req

T = TypeVar("T")

IDS = st.sampled_from([f"r{i}" for i in range(12)])
TUTORS = st.sampled_from(["t1", "t2", "t3"])
LANGUAGES = st.sampled_from(["en", "es"])
# few distinct times and priorities, so equal scores (ties by id) happen often
TIMES = st.integers(min_value=0, max_value=6).map(lambda n: 1000.0 + 60.0 * n)
PRIORITIES = st.integers(min_value=0, max_value=3)


class MemoryQueueModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.queue = MemoryQueue()
        self.queued: dict[str, QueuedRequest] = {}
        self.taken: dict[str, QueuedRequest] = {}
        self.loads: dict[str, int] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    def order(self, name: str) -> list[QueuedRequest]:
        return sorted(
            (r for r in self.queued.values() if r.queue == name), key=lambda r: (r.score, r.id)
        )

    def expected_position(self, request_id: str) -> int:
        request = self.queued[request_id]
        return self.order(request.queue).index(request) + 1

    @rule(request_id=IDS, at=TIMES, priority=PRIORITIES, language=LANGUAGES)
    def enqueue(self, request_id: str, at: float, priority: int, language: str) -> None:
        request = req(request_id, at, priority, language=language)
        position = self.run(self.queue.enqueue(request))
        if request_id not in self.queued:
            self.queued[request_id] = request
            self.taken.pop(request_id, None)
        assert position == self.expected_position(request_id)

    @rule(request_id=IDS)
    def remove(self, request_id: str) -> None:
        removed = self.run(self.queue.remove(request_id))
        assert removed == self.queued.pop(request_id, None)

    @rule(request_id=IDS, tutor=TUTORS, capacity=st.integers(min_value=0, max_value=2))
    def claim(self, request_id: str, tutor: str, capacity: int) -> None:
        load = self.loads.get(tutor, 0)
        try:
            claimed = self.run(self.queue.claim(request_id, tutor, capacity))
        except AlreadyTaken:
            assert request_id not in self.queued
            return
        except OverCapacity:
            assert request_id in self.queued and load >= capacity
            return
        assert load < capacity
        assert claimed == self.queued.pop(request_id)
        self.taken[request_id] = claimed
        self.loads[tutor] = load + 1

    @precondition(lambda self: bool(self.taken))
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.taken)))
        request = self.taken.pop(request_id)
        if request_id not in self.queued:
            self.queued[request_id] = request
        assert self.run(self.queue.requeue(request)) == self.expected_position(request_id)

    @rule(tutor=TUTORS)
    def release(self, tutor: str) -> None:
        self.run(self.queue.release(tutor))
        self.loads[tutor] = max(0, self.loads.get(tutor, 0) - 1)

    @rule()
    def rebuild(self) -> None:
        self.run(self.queue.rebuild(list(self.queued.values()), dict(self.loads)))
        assert self.run(self.queue.has_state())

    @invariant()
    def matches_model(self) -> None:
        names = {r.queue for r in self.queued.values()}
        assert self.run(self.queue.lengths()) == {n: len(self.order(n)) for n in names}
        for name in ("acme:en", "acme:es"):
            assert self.run(self.queue.snapshot(name)) == self.order(name)
        for request_id in [f"r{i}" for i in range(12)]:
            expected = self.expected_position(request_id) if request_id in self.queued else None
            assert self.run(self.queue.position(request_id)) == expected
        for tutor in ("t1", "t2", "t3"):
            assert self.run(self.queue.load(tutor)) == self.loads.get(tutor, 0)


MemoryQueueModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestMemoryQueueModel = MemoryQueueModel.TestCase
