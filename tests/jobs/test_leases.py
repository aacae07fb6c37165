"""The lease contract, over the memory backend (fake clock) and real Redis.

Every backend must: give a free lease to one owner only; let only the holder renew or
release it; forget it once it expires (the holder stopped renewing) or the store is lost
(a flushed Redis), after which another owner takes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broker.leases import Leases, MemoryLeases, RedisLeases
from broker.redis_keys import RedisKeys
from tests.services import forget_prefix


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def env(
    backend: tuple[str, str, str],
) -> AsyncIterator[tuple[list[Leases], Clock, str, str]]:
    """(two handles on one lease store, the memory clock, the Redis url, its prefix)."""
    kind, url, prefix = backend
    clock = Clock()
    if kind == "memory":
        shared = MemoryLeases(clock)
        yield [shared, shared], clock, "", ""
        return
    made: list[Leases] = [RedisLeases(url, RedisKeys(prefix)) for _ in range(2)]
    yield made, clock, url, prefix
    for handle in made:
        await handle.close()


async def expire(env: tuple[list[Leases], Clock, str, str], ttl_s: float) -> None:
    """Let a lease of ``ttl_s`` run out: the fake clock moves, Redis's own clock is waited."""
    _, clock, url, _ = env
    if url:
        await asyncio.sleep(ttl_s + 0.05)
    else:
        clock.t += ttl_s


async def test_one_owner_at_a_time(env: tuple[list[Leases], Clock, str, str]) -> None:
    (a, b), *_ = env
    assert await a.acquire("job", "w1", 30)
    assert not await b.acquire("job", "w2", 30)
    assert not await a.acquire("job", "w1", 30)  # not re-entrant
    assert await b.acquire("other", "w2", 30)  # names are independent


async def test_only_the_holder_renews_or_releases(
    env: tuple[list[Leases], Clock, str, str],
) -> None:
    (a, b), *_ = env
    assert await a.acquire("job", "w1", 30)
    assert not await b.renew("job", "w2", 30)
    await b.release("job", "w2")
    assert not await b.acquire("job", "w2", 30)  # still w1's
    assert await a.renew("job", "w1", 30)
    await a.release("job", "w1")
    assert not await a.renew("job", "w1", 30)
    assert await b.acquire("job", "w2", 30)


async def test_an_expired_lease_goes_to_the_next_owner(
    env: tuple[list[Leases], Clock, str, str],
) -> None:
    (a, b), *_ = env
    ttl = 0.2
    assert await a.acquire("job", "w1", ttl)
    await expire(env, ttl)
    assert await b.acquire("job", "w2", 30)
    assert not await a.renew("job", "w1", ttl)  # the late holder learns it lost it
    await a.release("job", "w1")  # and cannot take it from w2
    assert not await a.acquire("job", "w1", 30)


async def test_renewal_keeps_a_lease_past_its_first_expiry(
    env: tuple[list[Leases], Clock, str, str],
) -> None:
    (a, b), *_ = env
    ttl = 1.0  # on Redis, each renewal has 2/3 s of slack on a loaded machine
    assert await a.acquire("job", "w1", ttl)
    for _ in range(3):
        await expire(env, ttl / 3)
        assert await a.renew("job", "w1", ttl)
    assert not await b.acquire("job", "w2", ttl)


async def test_a_lost_store_frees_every_lease(env: tuple[list[Leases], Clock, str, str]) -> None:
    (a, b), _, url, prefix = env
    assert await a.acquire("job", "w1", 30)
    if url:
        await forget_prefix(url, prefix)
    else:
        assert isinstance(a, MemoryLeases)
        a.forget_all()
    assert await b.acquire("job", "w2", 30)  # the job may now run twice: jobs are idempotent
    assert not await a.renew("job", "w1", 30)


async def test_a_lease_needs_a_positive_ttl(env: tuple[list[Leases], Clock, str, str]) -> None:
    (a, _), *_ = env
    with pytest.raises(ValueError):
        await a.acquire("job", "w1", 0)
