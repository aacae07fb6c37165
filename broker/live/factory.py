"""Pick the live-state backend from settings: Redis when ``REDIS_URL`` is set."""

from __future__ import annotations

from broker.live.base import LiveState
from broker.live.memory import MemoryLiveState
from broker.settings import Settings


def make_live(settings: Settings, prefix: str | None = None) -> LiveState:
    if settings.redis_url:
        from broker.live.redis_state import RedisLiveState

        return RedisLiveState(settings.redis_url, prefix or settings.redis_prefix)
    return MemoryLiveState()
