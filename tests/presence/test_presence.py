"""The presence contract, over the memory and the Redis backend (fake clock, no sleeping).

Every backend must: report a touched subject's last touch; answer the store's epoch for a
subject never touched (so nobody looks gone right after the store was created or lost);
call ``gone`` only those untouched for longer than the grace. Redis handles made separately
(as several processes have) share one view, and a Redis that loses its data restarts
everyone's grace instead of ending anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broker.presence import TOUCH_CHUNK, MemoryPresence, Presence, RedisPresence
from broker.redis_keys import RedisKeys
from tests.services import forget_prefix

GRACE = 120.0
T0 = 1_000_000.0


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    if request.param == "memory":
        return "memory", "", ""
    return "redis", str(request.getfixturevalue("redis_url")), str(
        request.getfixturevalue("redis_prefix")
    )


@pytest.fixture
async def handles(backend: tuple[str, str, str]) -> AsyncIterator[list[Presence]]:
    """Two handles on one presence store (one, twice, in memory: one process)."""
    kind, url, prefix = backend
    if kind == "memory":
        shared = MemoryPresence()
        yield [shared, shared]
        return
    made = [RedisPresence(url, RedisKeys(prefix)) for _ in range(2)]
    yield list(made)
    for handle in made:
        await handle.close()


async def test_touched_subjects_report_their_last_touch(handles: list[Presence]) -> None:
    one, two = handles
    await one.touch(["student:a", "tutor:t"], T0)
    await two.touch(["student:a"], T0 + 5)
    seen = await one.last_seen(["student:a", "tutor:t"], T0 + 6)
    assert seen == {"student:a": T0 + 5, "tutor:t": T0}


async def test_touches_made_together_each_count(handles: list[Presence]) -> None:
    """Concurrent touches (a reconnecting crowd) all land; a subject touched twice keeps
    its latest time."""
    one, _ = handles
    await asyncio.gather(
        one.touch(["student:a"], T0 + 3),
        one.touch(["student:a", "student:b"], T0 + 1),
        *(one.touch([f"student:{i}"], T0 + 2) for i in range(50)),
    )
    seen = await one.last_seen(["student:a", "student:b", "student:49"], T0 + 9)
    assert seen == {"student:a": T0 + 3, "student:b": T0 + 1, "student:49": T0 + 2}


async def test_redis_touches_made_together_share_round_trips(
    redis_url: str, redis_prefix: str
) -> None:
    presence = RedisPresence(redis_url, RedisKeys(prefix=redis_prefix))
    try:
        await asyncio.gather(*(presence.touch([f"student:{i}"], T0) for i in range(100)))
        assert presence._touches.sent == 1
        await presence.touch(["student:0"], T0 + 1)
        assert presence._touches.sent == 2
        assert await presence.last_seen(["student:99"], T0 + 1) == {"student:99": T0}
    finally:
        await presence.close()


async def test_redis_touch_of_many_survives_a_forgotten_script(
    redis_url: str, redis_prefix: str
) -> None:
    """More subjects than one ZADD of the script takes, after Redis forgot the script (a
    restart); a subject with a newline is refused, not split."""
    presence = RedisPresence(redis_url, RedisKeys(prefix=redis_prefix))
    try:
        many = [f"student:{i}" for i in range(3 * TOUCH_CHUNK + 7)]
        await presence._redis.script_flush()
        await presence.touch(many, T0)
        seen = await presence.last_seen(many, T0 + 1)
        assert set(seen.values()) == {T0} and len(seen) == len(many)
        with pytest.raises(ValueError, match="newline"):
            await presence.touch(["student:a\nstudent:b"], T0 + 2)
        assert await presence.last_seen(["student:a"], T0 + 3) == {"student:a": T0}  # epoch
    finally:
        await presence.close()


async def test_never_touched_subjects_answer_the_epoch(handles: list[Presence]) -> None:
    one, _ = handles
    assert await one.last_seen(["student:x"], T0) == {"student:x": T0}  # the store begins
    await one.touch(["student:a"], T0 + 10)
    assert (await one.last_seen(["student:new"], T0 + 50))["student:new"] == T0


async def test_gone_means_untouched_for_longer_than_the_grace(handles: list[Presence]) -> None:
    one, two = handles
    await one.touch(["student:old", "student:fresh"], T0)
    await two.touch(["student:fresh"], T0 + GRACE)
    now = T0 + GRACE + 1
    assert await two.gone(["student:old", "student:fresh"], now, GRACE) == {"student:old"}
    assert await one.gone([], now, GRACE) == set()


async def test_a_lost_store_restarts_everyones_grace(backend: tuple[str, str, str]) -> None:
    kind, url, prefix = backend
    presence: Presence
    if kind == "memory":
        presence = MemoryPresence()
    else:
        presence = RedisPresence(url, RedisKeys(prefix))
    try:
        await presence.touch(["student:a"], T0)
        later = T0 + 10 * GRACE
        assert await presence.gone(["student:a"], later, GRACE) == {"student:a"}
        if isinstance(presence, MemoryPresence):
            presence.forget_all()  # a restarted process
        else:
            await forget_prefix(url, prefix)  # a flushed or restarted Redis
        assert await presence.gone(["student:a"], later, GRACE) == set()
        assert await presence.gone(["student:a"], later + GRACE + 1, GRACE) == {"student:a"}
        await presence.touch(["student:a"], later + GRACE)
        assert await presence.gone(["student:a"], later + GRACE + 1, GRACE) == set()
    finally:
        await presence.close()


async def test_redis_forgets_subjects_not_seen_for_a_day(redis_url: str, redis_prefix: str) -> None:
    presence = RedisPresence(redis_url, RedisKeys(redis_prefix))
    try:
        await presence.touch(["student:left"], T0)
        await presence.touch(["student:here"], T0 + 2 * 86400)
        seen = await presence.last_seen(["student:left"], T0 + 2 * 86400)
        assert seen["student:left"] == T0  # forgotten: the epoch (the first touch) answers
        assert presence._redis is not None
        assert await presence._redis.zcard(RedisKeys(redis_prefix).presence_seen) == 1
    finally:
        await presence.close()
