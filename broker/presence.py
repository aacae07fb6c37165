"""Presence: who is connected, as heartbeats (after python-socketio's managers: a base with
the logic, backends that fill in the storage hooks).

Every process touches the people it holds connections for, every sweep (and, while a sweep
waits on the database, by a heartbeat of its own: ``Broker._heartbeat_forever``); the
broker reads ``last_seen`` to decide who has been gone longer than the grace period.
Presence is allowed to be lost (it is not a fact that must survive), and losing it never
makes anyone look gone:

* ``last_seen`` answers, for a subject never touched, the **epoch** of the store: the moment
  it was created, or re-created after it was lost (a fresh process, a Redis that was
  flushed or restarted empty). So after a loss everyone gets a whole grace period, within
  which the processes holding their connections touch them again (one sweep).
* With Redis, every process shares one sorted set (``<prefix>:presence:seen``, score = last
  touch) and one epoch key (``<prefix>:presence:epoch``, set only if absent, in the same
  round trip as each touch), so a subject connected to any process is present for all of
  them. Entries older than :data:`FORGET_AFTER_S` are dropped as touches go by, so the set
  holds only people seen in the last day.

Times are the caller's clock (epoch seconds), so tests use a fake clock.
"""

from __future__ import annotations

import abc

import redis.asyncio as aioredis

from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis
from broker.round_trips import RoundTrips

FORGET_AFTER_S = 24 * 3600.0
TOUCH_CHUNK = 500  # members per ZADD inside the touch script (Lua's unpack has a limit)

# KEYS: seen, epoch. ARGV: the epoch (set if absent), the prune horizon, then pairs of a
# time and the subjects touched at it joined by newlines. One string per time instead of
# one argument per subject: a sweep touching 18,000 connections cost ~49 ms of the
# process's CPU to pack as a plain ZADD, and a few ms as this.
_TOUCH = f"""
redis.call('SET', KEYS[2], ARGV[1], 'NX')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
for i = 3, #ARGV, 2 do
  local now, batch = ARGV[i], {{}}
  for member in string.gmatch(ARGV[i + 1], '[^\\n]+') do
    batch[#batch + 1] = now
    batch[#batch + 1] = member
    if #batch >= {2 * TOUCH_CHUNK} then
      redis.call('ZADD', KEYS[1], 'GT', unpack(batch))
      batch = {{}}
    end
  end
  if #batch > 0 then redis.call('ZADD', KEYS[1], 'GT', unpack(batch)) end
end
"""


def student_subject(pseudonym: str) -> str:
    """The presence subject of a student (their pseudonym): the one spelling every module
    uses, so a touch and a look-up always name the same person."""
    return f"student:{pseudonym}"


def tutor_subject(tutor_id: str) -> str:
    """The presence subject of a tutor account."""
    return f"tutor:{tutor_id}"


def gone_past(
    seen: dict[str, float], subjects: list[str], now: float, grace_s: float
) -> set[str]:
    """Of ``subjects``, those whose last touch in ``seen`` is more than ``grace_s`` before
    ``now`` (one missing from ``seen`` counts as touched now): the one rule of "gone"."""
    return {s for s in subjects if now - seen.get(s, now) > grace_s}


class Presence(abc.ABC):
    shared = False  # whether several processes touch and read the same store

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def touch(self, subjects: list[str], now: float) -> None:
        """Record that these subjects (``role:id``) are connected at ``now``. A subject's
        time only moves forward: a touch older than its last one changes nothing (until
        :meth:`forget`)."""

    @abc.abstractmethod
    async def last_seen(self, subjects: list[str], now: float) -> dict[str, float]:
        """When each subject was last touched, or the store's epoch for one never touched
        since the store was (re)created; the epoch is ``now`` if the store has none yet."""

    @abc.abstractmethod
    async def forget(self, subjects: list[str]) -> None:
        """The subjects left on purpose (a tutor signed out): they are gone at once, until
        a connection of theirs touches them again."""

    async def gone(self, subjects: list[str], now: float, grace_s: float) -> set[str]:
        """The subjects nobody has touched for longer than ``grace_s``."""
        return gone_past(await self.last_seen(subjects, now), subjects, now, grace_s)


class MemoryPresence(Presence):
    """One process's presence (the embedded default): its epoch is its start."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._epoch: float | None = None
        self._pruned_at = 0.0

    async def touch(self, subjects: list[str], now: float) -> None:
        if self._epoch is None:
            self._epoch = now
        for subject in subjects:
            self._seen[subject] = max(now, self._seen.get(subject, now))
        if len(self._seen) > 10_000 and now - self._pruned_at > 3600:
            self._pruned_at = now
            self._seen = {k: v for k, v in self._seen.items() if now - v <= FORGET_AFTER_S}

    async def forget(self, subjects: list[str]) -> None:
        for subject in subjects:
            self._seen[subject] = float("-inf")

    async def last_seen(self, subjects: list[str], now: float) -> dict[str, float]:
        if self._epoch is None:
            self._epoch = now
        epoch = self._epoch
        return {s: self._seen.get(s, epoch) for s in subjects}

    def forget_all(self) -> None:
        """Lose everything, as a restarted process would (for tests)."""
        self._seen.clear()
        self._epoch = None


class RedisPresence(Presence):
    """Presence shared by every process through Redis.

    Touches made while one is on its way to Redis go together as the next one
    (:class:`~broker.round_trips.RoundTrips`): a reconnecting crowd (every client of a
    stopped process arrives within seconds, each touched as it connects) costs one
    script call per round trip, not one pipeline each. A touch returns once its subjects
    are stored; a subject in several touches of one batch keeps the latest time."""

    shared = True

    def __init__(self, url: str, keys: RedisKeys) -> None:
        self._redis: aioredis.Redis = open_redis(url)
        self._seen_key = keys.presence_seen
        self._epoch_key = keys.presence_epoch
        self._touches: RoundTrips[tuple[list[str], float], None] = RoundTrips(
            "presence", self._touch_all
        )
        self._touch_script = self._redis.register_script(_TOUCH)

    async def close(self) -> None:
        await self._redis.aclose()

    async def touch(self, subjects: list[str], now: float) -> None:
        await self._touches.call((subjects, now))

    async def _touch_all(
        self, touches: list[tuple[list[str], float]]
    ) -> list[BaseException | None]:
        """One script for a batch of touches (atomic): the epoch (if absent) at the
        earliest touch's time, each subject at its latest (never back), and the pruning
        of the forgotten."""
        seen: dict[str, float] = {}
        for subjects, now in touches:
            for subject in subjects:
                seen[subject] = max(now, seen.get(subject, now))
        at: dict[float, list[str]] = {}
        for subject, when in seen.items():
            if "\n" in subject:  # never in a subject we make; refused, not misread
                raise ValueError(f"a presence subject holds a newline: {subject!r}")
            at.setdefault(when, []).append(subject)
        earliest = min(now for _, now in touches)
        latest = max(now for _, now in touches)
        args: list[str] = [repr(earliest), repr(latest - FORGET_AFTER_S)]
        for when, subjects in at.items():
            args += [repr(when), "\n".join(subjects)]
        await self._touch_script(keys=[self._seen_key, self._epoch_key], args=args)
        return [None for _ in touches]

    async def forget(self, subjects: list[str]) -> None:
        # Score 0 (1970): gone for everyone; pruned by the next touch, after which the
        # store's epoch answers for them (their first touch or earlier).
        if subjects:
            await self._redis.zadd(self._seen_key, dict.fromkeys(subjects, 0.0))

    async def last_seen(self, subjects: list[str], now: float) -> dict[str, float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._epoch_key, repr(now), nx=True)
            pipe.get(self._epoch_key)
            if subjects:
                pipe.zmscore(self._seen_key, subjects)
            replies = await pipe.execute()
        epoch = float(replies[1]) if replies[1] is not None else now
        values = replies[2] if subjects else []
        return {
            s: float(v) if v is not None else epoch for s, v in zip(subjects, values, strict=True)
        }


def make_presence(redis_url: str | None, prefix: str) -> Presence:
    """Redis when ``redis_url`` is set (several processes), else process memory."""
    if redis_url:
        return RedisPresence(redis_url, RedisKeys(prefix))
    return MemoryPresence()
