"""Live state in Redis, shared by several broker processes.

Key layout (all under ``<prefix>:live:``): ``seen`` hash subject -> epoch seconds;
``tutors`` hash tutor id -> JSON; ``s:<id>`` hash per open session (JSON ``data`` plus
integer counters updated with HINCRBY); ``sessions`` set of open ids; ``built`` marker.
``holds`` hash student -> their open request id. Closing runs one Lua script (read +
delete), so exactly one closer gets the session; holding (check + set) and releasing
(compare + delete) are scripts too, and a rebuild is one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis

from broker.live.base import LiveSession, LiveState, MessageStamp, TutorPresence
from broker.redis_pool import open_redis


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_COUNTERS = ("seq", "messages_student", "messages_tutor", "chars_student", "chars_tutor")

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'last_activity_at', ARGV[3])
local first = 0
if ARGV[1] == 'tutor' then
  redis.call('HINCRBY', KEYS[1], 'messages_tutor', 1)
  redis.call('HINCRBY', KEYS[1], 'chars_tutor', ARGV[2])
  if redis.call('HSETNX', KEYS[1], 'first_response_at', ARGV[3]) == 1 then first = 1 end
else
  redis.call('HINCRBY', KEYS[1], 'messages_student', 1)
  redis.call('HINCRBY', KEYS[1], 'chars_student', ARGV[2])
end
return {seq, first}
"""

_CLOSE = """
local data = redis.call('HGETALL', KEYS[1])
if #data == 0 then return nil end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return data
"""


_HOLD = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return nil
end
if held == ARGV[2] then return nil end
return held
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


_CLEAR = """
local ids = redis.call('SMEMBERS', KEYS[1])
for _, sid in ipairs(ids) do redis.call('DEL', ARGV[1] .. sid) end
redis.call('DEL', KEYS[1], KEYS[2])
return #ids
"""


class RedisLiveState(LiveState):
    def __init__(self, url: str, prefix: str) -> None:
        self._redis: aioredis.Redis = open_redis(url)
        self._p = f"{prefix}:live:"
        self._record = self._redis.register_script(_RECORD)
        self._close = self._redis.register_script(_CLOSE)
        self._hold = self._redis.register_script(_HOLD)
        self._release = self._redis.register_script(_RELEASE)
        self._clear = self._redis.register_script(_CLEAR)

    def _k(self, name: str) -> str:
        return self._p + name

    async def close(self) -> None:
        await self._redis.aclose()

    async def touch(self, subjects: list[str], now: float) -> None:
        if subjects:
            await self._redis.hset(self._k("seen"), mapping={s: now for s in subjects})

    async def last_seen(self, subjects: list[str]) -> dict[str, float]:
        if not subjects:
            return {}
        raw = await self._redis.hmget(self._k("seen"), subjects)
        return {s: float(v) for s, v in zip(subjects, raw, strict=True) if v is not None}

    async def set_tutor(self, presence: TutorPresence | None, tutor_id: str) -> None:
        if presence is None:
            await self._redis.hdel(self._k("tutors"), tutor_id)
            return
        body = orjson.dumps([presence.vendor, list(presence.languages), presence.status])
        await self._redis.hset(self._k("tutors"), tutor_id, body)

    async def tutors(self) -> list[TutorPresence]:
        raw = await self._redis.hgetall(self._k("tutors"))
        out = []
        for key, value in raw.items():
            vendor, languages, status = orjson.loads(value)
            out.append(TutorPresence(_text(key), vendor, tuple(languages), status))
        return out

    def _fields(self, session: LiveSession) -> dict[Any, Any]:
        data = session.to_dict()
        fields: dict[Any, Any] = {c: data.pop(c) for c in _COUNTERS}
        fields["last_activity_at"] = data.pop("last_activity_at")
        first = data.pop("first_response_at")
        if first is not None:
            fields["first_response_at"] = first
        fields["data"] = orjson.dumps(data)
        return fields

    @staticmethod
    def _session(raw: Mapping[Any, Any]) -> LiveSession:
        data: dict[str, Any] = orjson.loads(raw[b"data"])
        for c in _COUNTERS:
            data[c] = int(raw.get(c.encode(), b"0"))
        data["last_activity_at"] = float(raw.get(b"last_activity_at", b"0"))
        first = raw.get(b"first_response_at")
        data["first_response_at"] = float(first) if first is not None else None
        return LiveSession.from_dict(data)

    async def open_session(self, session: LiveSession) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("s:" + session.id), mapping=self._fields(session))
            pipe.sadd(self._k("sessions"), session.id)
            await pipe.execute()

    async def get_session(self, session_id: str) -> LiveSession | None:
        raw = await self._redis.hgetall(self._k("s:" + session_id))
        return self._session(raw) if raw else None

    async def sessions(self) -> list[LiveSession]:
        ids = await self._redis.smembers(self._k("sessions"))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(self._k("s:" + _text(sid)))
            rows = await pipe.execute()
        return [self._session(r) for r in rows if r]

    async def record_message(
        self, session_id: str, sender: str, chars: int, now: float
    ) -> MessageStamp | None:
        result = await self._record(keys=[self._k("s:" + session_id)], args=[sender, chars, now])
        if result is None:
            return None
        return MessageStamp(seq=int(result[0]), first_response=bool(int(result[1])))

    async def close_session(self, session_id: str) -> LiveSession | None:
        flat = await self._close(
            keys=[self._k("s:" + session_id), self._k("sessions")], args=[session_id]
        )
        if not flat:
            return None
        raw = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        return self._session(raw)

    async def hold_student(self, student: str, request_id: str) -> str | None:
        held = await self._hold(keys=[self._k("holds")], args=[student, request_id])
        return None if held is None else _text(held)

    async def release_student(self, student: str, request_id: str) -> None:
        await self._release(keys=[self._k("holds")], args=[student, request_id])

    async def has_state(self) -> bool:
        return bool(await self._redis.exists(self._k("built")))

    async def rebuild(self, sessions: list[LiveSession], holds: dict[str, str]) -> None:
        """One transaction: the old sessions are read and deleted inside it (a script), so a
        session opened meanwhile by another process is either replaced whole or kept whole."""
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._clear(
                keys=[self._k("sessions"), self._k("holds")], args=[self._k("s:")], client=pipe
            )
            if holds:
                pipe.hset(self._k("holds"), mapping=holds)  # type: ignore[arg-type]
            for session in sessions:
                pipe.hset(self._k("s:" + session.id), mapping=self._fields(session))
                pipe.sadd(self._k("sessions"), session.id)
            pipe.set(self._k("built"), 1)
            await pipe.execute()
