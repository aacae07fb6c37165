"""The live-state suite runs once per backend with identical assertions (as tests/queue).

``live`` is one backend; ``lives`` is several handles on the same shared state (for Redis:
separate ``RedisLiveState`` instances with their own connection pools, as several broker
processes would have; in-process there is only ever one); ``lose_state`` returns a handle
on the state after a crash (a fresh process, or a Redis that lost its keys).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from broker.live.base import LiveState
from broker.live.memory import MemoryLiveState
from broker.live.redis_state import RedisLiveState
from tests.services import forget_prefix, shared_handles

HANDLES = 5


@pytest.fixture
async def lives(backend: tuple[str, str, str]) -> AsyncIterator[list[LiveState]]:
    async with shared_handles(backend, MemoryLiveState, RedisLiveState, HANDLES) as handles:
        yield list(handles)


@pytest.fixture
async def live(lives: list[LiveState]) -> LiveState:
    return lives[0]


@pytest.fixture
def lose_state(
    backend: tuple[str, str, str], live: LiveState
) -> Callable[[], Awaitable[LiveState]]:
    """Simulate losing the live state: a new process (memory) or Redis losing this test's
    keys (every handle then sees the loss; ``live`` is returned)."""
    kind, url, prefix = backend

    async def lose() -> LiveState:
        if kind == "memory":
            return MemoryLiveState()
        await forget_prefix(url, prefix)
        return live

    return lose
