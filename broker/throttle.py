"""Sliding-window throttles with a memory and a Redis backend (after python-socketio's
managers: the base holds the logic, backends fill in the storage hooks).

``throttle.retry_after(key)`` is 0 while fewer than ``limit`` events were recorded for
``key`` in the trailing ``window_s`` seconds, else the seconds until the oldest leaves the
window (at least 1). ``record(key)`` counts an event; ``clear(key)`` forgets the key.
``allow(key)`` does both at once: it counts the event and answers 0 if it is within the
limit, else answers the wait and counts nothing (one round trip to Redis, atomic).
``allow_now(key)`` is the same answer when it needs no waiting (the memory backend always;
an event of a lease on Redis), else None: the caller then awaits ``allow`` (under its own
time bound), and an event answered at once pays no coroutine, timer or bound.

Guarantees:

* A true sliding window (a log of times, not fixed buckets), so a burst at a bucket edge
  cannot double the rate.
* With Redis every process shares the counts (one sorted set per key, which expires one
  window after its last event), so a limit holds per person, not per process. Losing
  Redis loses the counts, which is allowed: a throttle is protection, not a record.
* Busy keys cost Redis little. A key that comes back within a second of its last round
  trip is lent its next events ahead (a *lease*: 2, 4, ... up to
  :data:`~broker.constants.THROTTLE_LEASE_MAX` and an eighth of the limit), which its
  process spends without asking Redis for :data:`~broker.constants.THROTTLE_LEASE_S`. Lent
  events are counted in Redis at once, timed at the lease's end, so Redis always counts
  at least every event a process has let through and never more than the limit in any
  trailing window get through, as above. The price is paid in refusals that come early:
  a lent event leaves the window up to ``THROTTLE_LEASE_S`` after it happened, and what
  another process's lease has not spent yet counts (an eighth of the limit at most). A
  lapsed lease's rest is given back by the key's next round trip; only the last lease
  of a person who stopped, or moved to another process, keeps its rest counted until it
  leaves the window. A limit under 16 is never lent (each event is asked for, as
  before), nor is a key used now and then (one event a second or less).
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
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from broker.constants import THROTTLE_LEASE_MAX, THROTTLE_LEASE_S, THROTTLE_LEASE_SHARE
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
        return self._wait(count, oldest, now)

    def _wait(self, count: int, oldest: float | None, now: float) -> float:
        """The wait for a window of ``count`` events, the oldest at ``oldest``."""
        if count < self.limit or oldest is None:
            return 0.0
        return max(oldest + self.window_s - now, 1.0)

    def allow_now(self, key: str) -> float | None:
        """:meth:`allow`'s answer (the event counted as it counts it) when it can be given
        without waiting on a store; None when only :meth:`allow` can answer."""
        return None

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

    async def allow(self, key: str) -> float:
        return self.allow_now(key)

    def allow_now(self, key: str) -> float:
        """Always answered at once: the counts are this process's memory."""
        now = self.clock()
        wait = self._wait(*self._window_now(key, now - self.window_s), now)
        if wait <= 0:
            self._add_now(key, now)
        return wait

    async def _window(self, key: str, horizon: float) -> tuple[int, float | None]:
        return self._window_now(key, horizon)

    def _window_now(self, key: str, horizon: float) -> tuple[int, float | None]:
        times = self._log.get(key)
        if times is None:
            return 0, None
        while times and times[0] <= horizon:
            times.popleft()
        return len(times), (times[0] if times else None)

    async def _add(self, key: str, now: float) -> None:
        self._add_now(key, now)

    def _add_now(self, key: str, now: float) -> None:
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
local window, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local answers = {}
for i, key in ipairs(KEYS) do
  local at = 7 * i - 3
  local now, score = tonumber(ARGV[at]), ARGV[at + 1]
  local want, member = tonumber(ARGV[at + 2]), ARGV[at + 3]
  local back, first, last = ARGV[at + 4], tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
  for j = first, last do
    redis.call('ZREM', key, back .. ':' .. j)
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local free = limit - redis.call('ZCARD', key)
  if free > 0 then
    local n = math.min(want, free)
    local add = {}
    for j = 1, n do
      add[2 * j - 1] = score
      add[2 * j] = member .. ':' .. j
    end
    redis.call('ZADD', key, unpack(add))
    redis.call('EXPIRE', key, ttl)
    answers[i] = {n, '0'}
  else
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    answers[i] = {0, tostring(math.max(tonumber(oldest[2]) + window - now, 1.0))}
  end
end
return answers
"""


# One ``allow`` for Redis: its key, the time it was made, the time its events are counted
# at (the lease's end), how many events it asks for, its sorted-set members' prefix, and
# the members of a lapsed lease to give back (prefix, first and last number; none: 1, 0).
_Call = tuple[str, str, str, int, str, str, int, int]


@dataclass(slots=True)
class _Lease:
    """Events of one key this process may still let through without asking Redis."""

    left: int  # events still to spend ...
    until: float  # ... until this time (Redis counts them at it)
    size: int  # events the round trip was granted (members ``member:1`` to ``member:size``)
    asked: float  # when that round trip was made
    member: str


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
    Redis, not a cluster (whose keys of one script must share a slot).

    A busy key is lent events ahead (the module's doc): a call that finds its key's lease
    unspent and unexpired is answered at once, without Redis. Each call asks for one event,
    or for twice the last grant when its key's last lease was spent within ``lease_s`` of
    its round trip; the script grants what the limit leaves (at least one, or refuses),
    each event a member timed at ``now + lease_s`` (at ``now`` for a single event). Leases
    live in this process's memory (losing them loses nothing: their events stay counted);
    a newer grant replaces an older one's rest. A lapsed lease's rest is given back by its
    key's next round trip (removed before the count), so that what a person paused
    between bursts did not spend does not count against them; only the last lease of a
    person who stopped, or moved to another process, stays counted until it leaves the
    window."""

    def __init__(
        self, name: str, limit: int, window_s: float, redis: aioredis.Redis, keys: RedisKeys,
        clock: Clock = time.time, lease_s: float = THROTTLE_LEASE_S,
        lease_max: int = THROTTLE_LEASE_MAX, max_keys: int = 50_000,
    ) -> None:
        super().__init__(name, limit, window_s, clock)
        self.redis = redis
        self.keys = keys
        self.lease_s = lease_s
        self.lease_max = max(1, min(lease_max, limit // THROTTLE_LEASE_SHARE))
        self.max_keys = max_keys
        self.lent = 0  # calls answered from a lease, without Redis (tests read it)
        self._leases: dict[str, _Lease] = {}
        self._ttl = math.ceil(window_s + lease_s) + 1  # outlives a lease's last member
        self._allow = redis.register_script(_ALLOW)
        self._batches: RoundTrips[_Call, Any] = RoundTrips(f"throttle:{name}", self._run)

    @property
    def round_trips(self) -> int:
        """Script calls sent (tests read it)."""
        return self._batches.sent

    def allow_now(self, key: str) -> float | None:
        """An event of the key's lease, spent at once; None when the lease has none left
        or has lapsed (:meth:`allow` asks Redis)."""
        lease = self._leases.get(key)
        if lease is not None and lease.left > 0 and self.clock() <= lease.until:
            lease.left -= 1
            self.lent += 1
            return 0.0
        return None

    async def allow(self, key: str) -> float:
        if (at_once := self.allow_now(key)) is not None:
            return at_once
        now = self.clock()
        lease = self._leases.get(key)
        size = 1
        if lease is not None and lease.left == 0 and now - lease.asked <= self.lease_s:
            size = min(2 * lease.size, self.lease_max)
        until = now + self.lease_s if size > 1 else now
        member = f"{now!r}:{uuid.uuid4().hex[:8]}"
        back, first, last = "", 1, 0  # the lapsed lease's unspent members, given back
        if lease is not None and lease.left > 0:
            back, first, last = lease.member, lease.size - lease.left + 1, lease.size
        granted, wait = await self._batches.call(
            (self._key(key), repr(now), repr(until), size, member, back, first, last)
        )
        if int(granted) == 0:
            self._leases.pop(key, None)
            return float(wait)
        lent = _Lease(int(granted) - 1, until, int(granted), now, member)
        self._remember(key, lent, now)
        return 0.0

    def _remember(self, key: str, lease: _Lease, now: float) -> None:
        self._leases[key] = lease
        if len(self._leases) > self.max_keys:  # bound memory under a spray of keys
            old = now - self.lease_s
            for stale in [k for k, v in self._leases.items() if v.asked < old]:
                del self._leases[stale]

    async def _run(self, batch: list[_Call], load: bool = True) -> list[Any]:
        args: list[str | float | int] = [self.window_s, self.limit, self._ttl]
        for _, now, until, size, member, back, first, last in batch:
            args += (now, until, size, member, back, first, last)
        try:
            answers: list[Any] = await self.redis.evalsha(
                self._allow.sha, len(batch), *(call[0] for call in batch), *args
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
            pipe.expire(k, self._ttl)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        self._leases.pop(key, None)
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
