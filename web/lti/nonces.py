"""Single-use nonces for LTI launches.

Guarantee: :meth:`NonceStore.use` returns ``True`` for the first use of a nonce and ``False``
for every later use within ``ttl_s`` seconds, also across processes when Redis is configured
(``SET key 1 NX EX ttl`` is atomic). Nonces are stored hashed (SHA-256), under
``{redis_prefix}:lti:nonce:``. The TTL must outlive the token's own validity window (the
validator uses the id_token's maximum age plus leeway), after which a replay is refused
anyway by the ``iat``/``exp`` checks.

The in-memory store is per process: fine for tests and a single-process deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from typing import Protocol

from broker.constants import REDIS_WAIT_S
from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis
from broker.settings import Settings


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


class NonceStore(Protocol):
    async def use(self, nonce: str, ttl_s: float) -> bool:
        """Record ``nonce``; ``True`` only the first time it is seen within ``ttl_s``."""
        ...

    async def close(self) -> None: ...


class MemoryNonceStore:
    """Process-local nonces; expired entries are pruned as new ones arrive."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 200_000):
        self._seen: dict[str, float] = {}
        self._clock = clock
        self._max_entries = max_entries

    async def use(self, nonce: str, ttl_s: float) -> bool:
        now = self._clock()
        key = _digest(nonce)
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        if len(self._seen) >= self._max_entries:
            self._prune(now)
        self._seen[key] = now + ttl_s
        return True

    def _prune(self, now: float) -> None:
        self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
        if len(self._seen) >= self._max_entries:  # still full of live nonces: drop the oldest
            oldest = sorted(self._seen, key=self._seen.__getitem__)[: self._max_entries // 10]
            for key in oldest:
                del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)

    async def close(self) -> None:
        self._seen.clear()


class RedisNonceStore:
    """Nonces in Redis with ``SET NX EX``: single use across every broker process."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client = open_redis(url)
        self._keys = RedisKeys(prefix)

    async def use(self, nonce: str, ttl_s: float) -> bool:
        ttl = max(1, math.ceil(ttl_s))
        async with asyncio.timeout(REDIS_WAIT_S):  # no answer: an outage (the launch's 503)
            stored = await self._client.set(self._keys.lti_nonce(nonce), b"1", nx=True, ex=ttl)
        return bool(stored)

    async def close(self) -> None:
        await self._client.aclose()


def make_nonce_store(settings: Settings) -> NonceStore:
    """Redis when ``settings.redis_url`` is set, else process memory."""
    if settings.redis_url:
        return RedisNonceStore(settings.redis_url, settings.redis_prefix)
    return MemoryNonceStore()
