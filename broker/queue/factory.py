"""Pick the queue backend from settings: Redis when ``REDIS_URL`` is set, else in-process."""

from __future__ import annotations

from broker.queue.base import QueueBackend
from broker.queue.memory import MemoryQueue
from broker.settings import Settings


def make_queue(settings: Settings, prefix: str | None = None) -> QueueBackend:
    """A :class:`RedisQueue` under ``prefix`` (default ``settings.redis_prefix``) when
    ``settings.redis_url`` is set, else a :class:`MemoryQueue` (one process only)."""
    if settings.redis_url:
        from broker.queue.redis_backend import RedisQueue

        return RedisQueue(settings.redis_url, prefix or settings.redis_prefix)
    return MemoryQueue()
