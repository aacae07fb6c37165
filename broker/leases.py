"""Leases: "run this job once across workers", with expiry and renewal (after
python-socketio's managers: the base holds the protocol, backends fill in two hooks).

``acquire(name, owner, ttl_s)`` takes the lease ``name`` for ``owner`` for ``ttl_s``
seconds if nobody holds it; ``renew`` extends it and ``release`` gives it up, both only if
``owner`` still holds it. An owner is a token unique to one holding (a worker id and a
random part), so a worker whose lease expired can neither renew nor release the lease of
whoever took it next.

Guarantees, and what they are not:

* While a lease is held and renewed before it expires, no other owner acquires it.
* A lease is **allowed to be lost**: it expires when its holder stops renewing it (a
  crashed or paused worker, a renewal that could not reach Redis), and a flushed or
  restarted Redis forgets it. Then another worker may take it and run the same job while
  the first one is still running. So a lease makes a job run once *in the normal case*;
  it is not a guarantee of mutual exclusion, and **every job run under a lease must be
  idempotent** (safe to run twice, or at the same time twice): it decides from the
  database what is left to do, and writes with keys that make a second write a no-op
  (the outbox's ``dedupe_key``, conditional updates).
* The memory backend holds leases for one process (the embedded default, and tests) on an
  injected clock; the Redis backend shares them between processes: acquiring is one
  ``SET NX PX``, renewing and releasing are one Lua script each that compares the owner
  first, so neither can touch a lease someone else holds. Expiry is Redis's own clock.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis

Clock = Callable[[], float]

# KEYS[1] = the lease, ARGV[1] = the owner, ARGV[2] = the new time to live in ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] = the lease, ARGV[1] = the owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _ttl_ms(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError(f"a lease needs a positive time to live, got {ttl_s!r}")
    return max(1, math.ceil(ttl_s * 1000))


class Leases(abc.ABC):
    """Named, expiring, owner-checked leases."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (not leases: those expire)."""

    async def acquire(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take lease ``name`` for ``owner`` for ``ttl_s`` seconds if nobody holds it
        (an expired lease is nobody's). False if it is held, by anyone, ``owner`` too."""
        return await self._acquire(name, owner, _ttl_ms(ttl_s))

    async def renew(self, name: str, owner: str, ttl_s: float) -> bool:
        """Make ``owner``'s lease last ``ttl_s`` seconds from now. False if ``owner`` no
        longer holds it (it expired, was released, or is someone else's): the job may now
        be running elsewhere."""
        return await self._if_owner(name, owner, _ttl_ms(ttl_s))

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` still holds it (else do nothing)."""
        await self._if_owner(name, owner, None)

    @abc.abstractmethod
    async def _acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Set ``name`` to ``owner`` for ``ttl_ms`` if it is not set (atomically)."""

    @abc.abstractmethod
    async def _if_owner(self, name: str, owner: str, ttl_ms: int | None) -> bool:
        """If ``name`` is held by ``owner``: extend it to ``ttl_ms`` from now, or delete it
        when ``ttl_ms`` is None, and return True; else change nothing and return False
        (atomically)."""


class MemoryLeases(Leases):
    """One process's leases, on ``clock`` (epoch seconds; a fake one in tests)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._held: dict[str, tuple[str, float]] = {}  # name -> (owner, expires at)

    def _holder(self, name: str, now: float) -> str | None:
        held = self._held.get(name)
        if held is None:
            return None
        if held[1] <= now:
            del self._held[name]
            return None
        return held[0]

    async def _acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = self.clock()
        if self._holder(name, now) is not None:
            return False
        self._held[name] = (owner, now + ttl_ms / 1000)
        return True

    async def _if_owner(self, name: str, owner: str, ttl_ms: int | None) -> bool:
        now = self.clock()
        if self._holder(name, now) != owner:
            return False
        if ttl_ms is None:
            del self._held[name]
        else:
            self._held[name] = (owner, now + ttl_ms / 1000)
        return True

    def forget_all(self) -> None:
        """Lose every lease, as a restarted process (or a wiped Redis) would (for tests)."""
        self._held.clear()


class RedisLeases(Leases):
    """Leases shared by every process: one string key per lease (value: the owner)."""

    def __init__(self, url: str, keys: RedisKeys) -> None:
        self._redis: aioredis.Redis = open_redis(url)
        self._keys = keys
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _acquire(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._redis.set(self._keys.lease(name), owner, nx=True, px=ttl_ms))

    async def _if_owner(self, name: str, owner: str, ttl_ms: int | None) -> bool:
        key = self._keys.lease(name)
        if ttl_ms is None:
            return bool(await self._release(keys=[key], args=[owner]))
        return bool(await self._renew(keys=[key], args=[owner, ttl_ms]))


def make_leases(redis_url: str | None, prefix: str, clock: Clock = time.time) -> Leases:
    """Redis when ``redis_url`` is set (several workers), else process memory (one)."""
    if redis_url:
        return RedisLeases(redis_url, RedisKeys(prefix))
    return MemoryLeases(clock)
