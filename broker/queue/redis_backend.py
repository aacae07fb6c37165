"""The Redis queue backend: one shared queue state for several broker processes.

Key layout (every key starts with the ``prefix`` given to the backend, then ``:q:``):

===============================  ============  ==============================================
key                              type          holds
===============================  ============  ==============================================
``<prefix>:q:z:<queue>``         sorted set    request ids, score = ``QueuedRequest.score``
``<prefix>:q:req``               hash          request id -> JSON of the ``QueuedRequest``
``<prefix>:q:where``             hash          request id -> queue name (``vendor:language``)
``<prefix>:q:loads``             hash          tutor id -> slots held (absent = 0)
``<prefix>:q:names``             set           every queue name ever used since the rebuild
``<prefix>:q:built``             string        marker set by :meth:`RedisQueue.rebuild`
===============================  ============  ==============================================

Ordering: Redis orders a sorted set by score, and members with equal scores
lexicographically by their bytes. Members are the request ids (UTF-8), and byte order of
UTF-8 is code point order, so ties fall to the smaller id exactly as ``(score, id)`` does
in Python and in :class:`~broker.queue.memory.MemoryQueue`. Scores are sent as Python's
``repr`` of the float and never converted by Lua, so they keep full double precision.

Atomicity: every operation that changes state is one Lua script (``enqueue``, ``requeue``,
``remove``, ``claim``, ``release``), which Redis runs without interleaving any other
command; :meth:`RedisQueue.rebuild` is one MULTI/EXEC transaction guarded by WATCH on the
names set. So of concurrent claims for one request, from any number of processes, exactly
one wins, and a tutor never holds more than ``capacity`` slots.

The scripts build the sorted-set key of a queue from the queue name they read in Redis,
so they assume a single Redis (or a primary with replicas), not Redis Cluster.

Durability: the database is the source of truth. If Redis loses its data (restart without
persistence, FLUSHALL, eviction of the marker), :meth:`RedisQueue.has_state` returns
``False`` and the broker rebuilds from the database. Run Redis with
``maxmemory-policy noeviction`` so that it cannot lose part of the state silently.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from broker.errors import AlreadyTaken, BrokerError, OverCapacity
from broker.queue.base import QueueBackend, QueuedRequest
from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis

# KEYS: req, where, names.  ARGV: zset prefix, id, score, json, queue.  -> 1-based position.
# Idempotent: an id already queued (in any queue) is left where it is.
_ENQUEUE = """
local current = redis.call('HGET', KEYS[2], ARGV[2])
if current then
  return redis.call('ZRANK', ARGV[1] .. current, ARGV[2]) + 1
end
local zkey = ARGV[1] .. ARGV[5]
redis.call('ZADD', zkey, ARGV[3], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[5])
return redis.call('ZRANK', zkey, ARGV[2]) + 1
"""

# KEYS: req, where.  ARGV: zset prefix, id, student ('' = anyone's).  -> JSON payload or nil.
_REMOVE = """
local queue = redis.call('HGET', KEYS[2], ARGV[2])
if not queue then return false end
local payload = redis.call('HGET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' and cjson.decode(payload)['student'] ~= ARGV[3] then return false end
redis.call('ZREM', ARGV[1] .. queue, ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return payload
"""

# KEYS: req, where, loads.  ARGV: zset prefix, id, tutor, capacity.
# -> {'ok', payload} | {'already_taken'} | {'over_capacity', load}
_CLAIM = """
local queue = redis.call('HGET', KEYS[2], ARGV[2])
if not queue then return {'already_taken'} end
local load = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
if load >= tonumber(ARGV[4]) then return {'over_capacity', load} end
local payload = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('ZREM', ARGV[1] .. queue, ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return {'ok', payload}
"""

# KEYS: loads.  ARGV: tutor.  -> the load after release (never below zero).
_RELEASE = """
local load = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if load <= 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
return redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
"""

# KEYS: where.  ARGV: zset prefix, id.  -> 1-based position or nil.
_POSITION = """
local queue = redis.call('HGET', KEYS[1], ARGV[2])
if not queue then return false end
local rank = redis.call('ZRANK', ARGV[1] .. queue, ARGV[2])
if not rank then return false end
return rank + 1
"""

# KEYS: zset of the queue, req.  -> payloads in service order (one consistent read).
# HGET per id rather than HMGET with unpack(): unpack() is limited to a few thousand values.
_SNAPSHOT = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i, id in ipairs(ids) do
  out[i] = redis.call('HGET', KEYS[2], id)
end
return out
"""


def _dump(request: QueuedRequest) -> bytes:
    return orjson.dumps(request.to_dict())


def _load(payload: str | bytes) -> QueuedRequest:
    data: dict[str, Any] = orjson.loads(payload)
    return QueuedRequest.from_dict(data)


class RedisQueue(QueueBackend):
    """Queue state in Redis, shared by every broker process using the same ``prefix``."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis: aioredis.Redis = open_redis(url, decode_responses=True)
        base = RedisKeys(prefix).queue_base
        self._zprefix = base + "z:"
        self._req = base + "req"
        self._where = base + "where"
        self._loads = base + "loads"
        self._names = base + "names"
        self._built = base + "built"
        register = self._redis.register_script
        self._enqueue_script = register(_ENQUEUE)
        self._remove_script = register(_REMOVE)
        self._claim_script = register(_CLAIM)
        self._release_script = register(_RELEASE)
        self._position_script = register(_POSITION)
        self._snapshot_script = register(_SNAPSHOT)

    def _zkey(self, queue: str) -> str:
        return self._zprefix + queue

    async def start(self) -> None:
        """Fail fast if Redis is unreachable."""
        await self._redis.ping()

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self._redis.aclose()

    async def _add(self, request: QueuedRequest) -> int:
        position = await self._enqueue_script(
            keys=[self._req, self._where, self._names],
            args=[self._zprefix, request.id, repr(request.score), _dump(request), request.queue],
        )
        return int(position)

    async def enqueue(self, request: QueuedRequest) -> int:
        """Add ``request`` (one script); if its id is already queued, return its position."""
        return await self._add(request)

    async def requeue(self, request: QueuedRequest) -> int:
        """Put ``request`` back at its original place (its score is from ``enqueued_at``)."""
        return await self._add(request)

    async def remove(self, request_id: str, student: str | None = None) -> QueuedRequest | None:
        payload = await self._remove_script(
            keys=[self._req, self._where], args=[self._zprefix, request_id, student or ""]
        )
        return None if payload is None else _load(payload)

    async def claim(self, request_id: str, tutor_id: str, capacity: int) -> QueuedRequest:
        """One Lua script: check queued, check load < capacity, then remove and take a slot."""
        reply = await self._claim_script(
            keys=[self._req, self._where, self._loads],
            args=[self._zprefix, request_id, tutor_id, capacity],
        )
        status = reply[0]
        if status == "ok":
            return _load(reply[1])
        if status == "already_taken":
            raise AlreadyTaken("this request has already been taken", request_id=request_id)
        if status == "over_capacity":
            raise OverCapacity(
                "you already have as many sessions as you can take",
                load=int(reply[1]),
                capacity=capacity,
            )
        raise BrokerError(f"unexpected claim reply {reply!r}")  # pragma: no cover

    async def release(self, tutor_id: str) -> None:
        await self._release_script(keys=[self._loads], args=[tutor_id])

    async def load(self, tutor_id: str) -> int:
        raw = await self._redis.hget(self._loads, tutor_id)
        return int(raw) if raw is not None else 0

    async def get(self, request_id: str) -> QueuedRequest | None:
        payload = await self._redis.hget(self._req, request_id)
        return None if payload is None else _load(payload)

    async def position(self, request_id: str) -> int | None:
        rank = await self._position_script(keys=[self._where], args=[self._zprefix, request_id])
        return None if rank is None else int(rank)

    async def snapshot(self, queue: str) -> list[QueuedRequest]:
        payloads = await self._snapshot_script(keys=[self._zkey(queue), self._req])
        return [_load(p) for p in payloads if p is not None]

    async def lengths(self) -> dict[str, int]:
        names = sorted(str(name) for name in await self._redis.smembers(self._names))
        if not names:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self._zkey(name))
            counts = await pipe.execute()
        return {name: int(n) for name, n in zip(names, counts, strict=True) if n}

    async def has_state(self) -> bool:
        """True once :meth:`rebuild` ran and Redis has not lost the marker since."""
        return bool(await self._redis.exists(self._built))

    async def rebuild(self, requests: list[QueuedRequest], loads: dict[str, int]) -> None:
        """Delete every queue key and write ``requests`` and ``loads`` in one transaction.

        WATCH on the names set makes the transaction retry if another process adds a queue
        between reading the names (to know which sorted sets to delete) and EXEC.
        """

        async def replace(pipe: Pipeline) -> None:
            names = {str(name) for name in await pipe.smembers(self._names)}
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(
                self._req,
                self._where,
                self._loads,
                self._names,
                self._built,
                *(self._zkey(name) for name in names),
            )
            self._write(pipe, requests, loads)
            pipe.set(self._built, "1")

        await self._redis.transaction(replace, self._names)

    def _write(self, pipe: Pipeline, requests: list[QueuedRequest], loads: dict[str, int]) -> None:
        zsets: dict[str, dict[str, float]] = {}
        payloads: dict[FieldT, EncodableT] = {}
        where: dict[FieldT, EncodableT] = {}
        for request in requests:
            if request.id in payloads:
                continue
            payloads[request.id] = _dump(request)
            where[request.id] = request.queue
            zsets.setdefault(request.queue, {})[request.id] = request.score
        for name, members in zsets.items():
            pipe.zadd(self._zkey(name), members)
        if payloads:
            pipe.hset(self._req, mapping=payloads)
            pipe.hset(self._where, mapping=where)
            pipe.sadd(self._names, *zsets)
        positive: dict[FieldT, EncodableT] = {t: n for t, n in loads.items() if n > 0}
        if positive:
            pipe.hset(self._loads, mapping=positive)
