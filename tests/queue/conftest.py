"""The queue suite runs once per backend with identical assertions.

``queue`` is one backend; ``queues`` is several handles on the same shared state (for
Redis: separate ``RedisQueue`` instances with their own connection pools, as several
broker processes would have; in-process there is only ever one); ``lose_state`` returns a
handle on the state after a crash (a fresh process, or a Redis that lost its keys).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from broker.queue.base import QueueBackend, QueuedRequest, queue_key
from broker.queue.memory import MemoryQueue
from broker.queue.redis_backend import RedisQueue
from tests.services import forget_prefix, shared_handles

HANDLES = 5


def req(
    request_id: str,
    enqueued_at: float,
    priority: int = 0,
    *,
    vendor: str = "acme",
    language: str = "en",
    subject: str = "math",
    topic: str = "",
) -> QueuedRequest:
    """A queued request with plausible fields; only id, time, priority and queue vary."""
    return QueuedRequest(
        id=request_id,
        queue=queue_key(vendor, language),
        vendor=vendor,
        language=language,
        subject=subject,
        grade_band="6-8",
        school_kind="middle",
        student=f"stu-{request_id}",
        enqueued_at=enqueued_at,
        priority=priority,
        topic=topic,
    )


@pytest.fixture
async def queues(backend: tuple[str, str, str]) -> AsyncIterator[list[QueueBackend]]:
    async with shared_handles(backend, MemoryQueue, RedisQueue, HANDLES) as handles:
        yield list(handles)


@pytest.fixture
async def queue(queues: list[QueueBackend]) -> QueueBackend:
    return queues[0]


@pytest.fixture
async def lose_state(
    backend: tuple[str, str, str], queue: QueueBackend
) -> Callable[[], Awaitable[QueueBackend]]:
    """Simulate losing the queue state: a new process (memory) or FLUSH of the prefix (Redis)."""
    kind, url, prefix = backend

    async def lose() -> QueueBackend:
        if kind == "memory":
            return MemoryQueue()
        await forget_prefix(url, prefix)  # as FLUSHALL would, but only this test's keys
        return queue

    return lose
