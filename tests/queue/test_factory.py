from __future__ import annotations

from broker.queue.factory import make_queue
from broker.queue.memory import MemoryQueue
from broker.queue.redis_backend import RedisQueue
from broker.settings import Settings


async def test_memory_without_redis_url() -> None:
    assert isinstance(make_queue(Settings()), MemoryQueue)


async def test_redis_with_url_and_prefix() -> None:
    queue = make_queue(Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="x"), "p1")
    try:
        assert isinstance(queue, RedisQueue)
        assert queue._built == "p1:q:built"
    finally:
        await queue.close()
    default = make_queue(Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="x"))
    try:
        assert isinstance(default, RedisQueue)
        assert default._built == "x:q:built"
    finally:
        await default.close()
