"""Sliding-window throttles with a memory and a Redis backend (after python-socketio's
managers: the base holds the logic, backends fill in the storage hooks).

``throttle.retry_after(key)`` is 0 while fewer than ``limit`` events were recorded for
``key`` in the trailing ``window_s`` seconds, else the seconds until the oldest leaves the
window (at least 1). ``record(key)`` counts an event; ``clear(key)`` forgets the key.
``allow(key)`` does both at once: it counts the event and answers 0 if it is within the
limit, else answers the wait and counts nothing (one round trip to Redis, atomic).

Guarantees:

* A true sliding window (a log of times, not fixed buckets), so a burst at a bucket edge
  cannot double the rate.
* With Redis every process shares the counts (one sorted set per key, which expires one
  window after its last event), so a limit holds per person, not per process. Losing
  Redis loses the counts, which is allowed: a throttle is protection, not a record.
* Keys are hashed before they are stored (:func:`broker.redis_keys.digest`): usernames and
  addresses do not appear in Redis.
* Memory is bounded: the memory backend forgets keys idle for a whole window once it
  holds more than ``max_keys``.
"""

from __future__ import annotations

import abc
import collections
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis
from broker.round_trips import RoundTrips

Clock = Callable[[], float]


class Throttle(abc.ABC):
    """At most ``limit`` events per key in any trailing ``window_s`` seconds."""

    def __init__(self, name: str, limit: int, window_s: float, clock: Clock = time.time) -> None:
        if limit < 1 or not window_s > 0:
            # a limit of 0 would refuse everything (Redis) or nothing (memory)
            raise ValueError(f"throttle {name!r}: limit must be >= 1 and window_s > 0, "
                             f"got {limit!r} and {window_s!r}")
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self.clock = clock

    async def retry_after(self, key: str) -> float:
        """Seconds until another event is allowed for ``key`` (0: allowed now)."""
        now = self.clock()
        count, oldest = await self._window(key, now - self.window_s)
        if count < self.limit or oldest is None:
            return 0.0
        return max(oldest + self.window_s - now, 1.0)

    async def record(self, key: str) -> None:
        await self._add(key, self.clock())

    async def allow(self, key: str) -> float:
        """Count an event of ``key`` if the limit allows it (0.0), else the seconds until it
        would (nothing counted)."""
        wait = await self.retry_after(key)
        if wait <= 0:
            await self.record(key)
        return wait

    @abc.abstractmethod
    async def _window(self, key: str, horizon: float) -> tuple[int, float | None]:
        """How many events of ``key`` are after ``horizon``, and the oldest one's time (None
        if none), dropping older ones. A count and one time, not the log: a generous limit
        (a district's, a benchmark's) must not make every check copy thousands of times."""

    @abc.abstractmethod
    async def _add(self, key: str, now: float) -> None:
        """Count an event of ``key`` at ``now``."""

    @abc.abstractmethod
    async def clear(self, key: str) -> None:
        """Forget every event of ``key``."""


class MemoryThrottle(Throttle):
    """Per-process counts: right for one process (the embedded default) and for tests."""

    def __init__(
        self, name: str, limit: int, window_s: float, clock: Clock = time.time,
        max_keys: int = 50_000,
    ) -> None:
        super().__init__(name, limit, window_s, clock)
        self.max_keys = max_keys
        self._log: dict[str, collections.deque[float]] = {}

    async def _window(self, key: str, horizon: float) -> tuple[int, float | None]:
        times = self._log.get(key)
        if times is None:
            return 0, None
        while times and times[0] <= horizon:
            times.popleft()
        return len(times), (times[0] if times else None)

    async def _add(self, key: str, now: float) -> None:
        self._log.setdefault(key, collections.deque()).append(now)
        if len(self._log) > self.max_keys:  # bound memory under a spray of keys
            horizon = now - self.window_s
            for stale in [k for k, v in self._log.items() if not v or v[-1] <= horizon]:
                del self._log[stale]

    async def clear(self, key: str) -> None:
        self._log.pop(key, None)

    def __len__(self) -> int:
        return len(self._log)


_ALLOW = """
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl = math.ceil(window) + 1
local answers = {}
for i, key in ipairs(KEYS) do
  local now, member = tonumber(ARGV[1 + 2 * i]), ARGV[2 + 2 * i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, member)
    redis.call('EXPIRE', key, ttl)
    answers[i] = '0'
  else
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    answers[i] = tostring(math.max(tonumber(oldest[2]) + window - now, 1.0))
  end
end
return answers
"""


# One ``allow`` for Redis: its key, the time it was made and its sorted-set member.
_Call = tuple[str, str, str]


class RedisThrottle(Throttle):
    """Counts shared by every process: one sorted set per key (member: time + random).

    ``allow`` calls made while earlier ones are on their way to Redis wait for that round
    trip and then go together, as *one* script call over all their keys (one command to
    pack and one array to parse, not a pipeline of one script each: under the request
    scenario the pipeline's packing and parsing was ~11% of a scaled process's samples).
    The script handles the calls in the order they were made, each with its own time, so
    every key's counts and answers are exactly those of the calls sent one by one; it runs
    atomically, so no other process's call lands between two of a batch. A failed round
    trip fails each call of its batch (the broker lets them through, see
    :meth:`broker.service.Broker._throttle`). One script over many keys assumes a single
    Redis, not a cluster (whose keys of one script must share a slot)."""

    def __init__(
        self, name: str, limit: int, window_s: float, redis: aioredis.Redis, keys: RedisKeys,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(name, limit, window_s, clock)
        self.redis = redis
        self.keys = keys
        self._allow = redis.register_script(_ALLOW)
        self._batches: RoundTrips[_Call, Any] = RoundTrips(f"throttle:{name}", self._run)

    @property
    def round_trips(self) -> int:
        """Pipelines sent (tests read it)."""
        return self._batches.sent

    async def allow(self, key: str) -> float:
        now = repr(self.clock())
        member = f"{now}:{uuid.uuid4().hex[:8]}"
        return float(await self._batches.call((self._key(key), now, member)))

    async def _run(self, batch: list[_Call], load: bool = True) -> list[Any]:
        args: list[str | float | int] = [self.window_s, self.limit]
        for _, now, member in batch:
            args += (now, member)
        try:
            answers: list[Any] = await self.redis.evalsha(
                self._allow.sha, len(batch), *(key for key, _, _ in batch), *args
            )
        except NoScriptError:
            if not load:
                raise
            # A restarted or flushed Redis forgot the script, so none of the batch ran:
            # load it and send the batch again (a refused script changed nothing).
            await self.redis.script_load(_ALLOW)
            return await self._run(batch, load=False)
        return answers

    def _key(self, key: str) -> str:
        return self.keys.throttle(self.name, key)

    async def _window(self, key: str, horizon: float) -> tuple[int, float | None]:
        k = self._key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(k, "-inf", horizon)
            pipe.zcard(k)
            pipe.zrange(k, 0, 0, withscores=True)
            _, count, oldest = await pipe.execute()
        return int(count), (float(oldest[0][1]) if oldest else None)

    async def _add(self, key: str, now: float) -> None:
        k = self._key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(k, {f"{now}:{uuid.uuid4().hex[:8]}": now})
            pipe.expire(k, math.ceil(self.window_s) + 1)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.redis.delete(self._key(key))


class Throttles:
    """Makes throttles on one backend: Redis (one shared client) when ``redis_url`` is set,
    else process memory. Closing it closes the client."""

    def __init__(self, redis_url: str | None, prefix: str, clock: Clock = time.time) -> None:
        self.clock = clock
        self.keys = RedisKeys(prefix)
        self.redis: aioredis.Redis | None = open_redis(redis_url) if redis_url else None

    def make(self, name: str, limit: int, window_s: float) -> Throttle:
        if self.redis is None:
            return MemoryThrottle(name, limit, window_s, self.clock)
        return RedisThrottle(name, limit, window_s, self.redis, self.keys, self.clock)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
