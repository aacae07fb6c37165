"""The sliding-window throttle contract, over the memory and the Redis backend.

Every backend must: allow ``limit`` events per key in a trailing window and refuse the
next with the seconds until the oldest leaves; slide (not reset in buckets); keep keys
apart; forget a key on ``clear``. Redis handles made separately (as two processes would)
share the counts. Time is a fake clock: nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from broker.throttle import MemoryThrottle, RedisThrottle, Throttle, Throttles


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    if request.param == "memory":
        return None, "hh"
    return str(request.getfixturevalue("redis_url")), str(request.getfixturevalue("redis_prefix"))


Factories = tuple[Clock, list[Throttles]]


async def _two_factories(url: str | None, prefix: str) -> AsyncIterator[Factories]:
    clock = Clock()
    # Two factories over the same store: for Redis, two clients, as two processes have.
    factories = [Throttles(url, prefix, clock), Throttles(url, prefix, clock)]
    yield clock, factories
    for factory in factories:
        await factory.close()


@pytest.fixture
async def make(backend: tuple[str | None, str]) -> AsyncIterator[Factories]:
    async for made in _two_factories(*backend):
        yield made


@pytest.fixture
async def on_redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Factories]:
    """Two Redis factories (two processes' clients) on one fake clock."""
    async for made in _two_factories(redis_url, redis_prefix):
        yield made


def _pair(factories: list[Throttles], limit: int = 3, window: float = 60.0) -> list[Throttle]:
    return [f.make("test", limit, window) for f in factories]


async def test_allows_the_limit_then_refuses_until_the_oldest_leaves(make) -> None:  # type: ignore[no-untyped-def]
    clock, factories = make
    throttle = factories[0].make("test", 3, 60.0)
    for _ in range(3):
        assert await throttle.retry_after("k") == 0
        await throttle.record("k")
        clock.now += 10
    assert await throttle.retry_after("k") == pytest.approx(30.0)
    clock.now += 30.5  # the first event (at t0) left the window at t0 + 60
    assert await throttle.retry_after("k") == 0


async def test_the_window_slides_rather_than_resetting(make) -> None:  # type: ignore[no-untyped-def]
    clock, factories = make
    throttle = factories[0].make("test", 2, 60.0)
    await throttle.record("k")
    clock.now += 50
    await throttle.record("k")
    clock.now += 20  # 70 s after the first, 20 s after the second: one slot free again
    assert await throttle.retry_after("k") == 0
    await throttle.record("k")  # the events at +50 and +70 are in the window
    assert await throttle.retry_after("k") == pytest.approx(40.0)


async def test_retry_after_is_at_least_one_second(make) -> None:  # type: ignore[no-untyped-def]
    clock, factories = make
    throttle = factories[0].make("test", 1, 60.0)
    await throttle.record("k")
    clock.now += 59.9
    assert await throttle.retry_after("k") == 1.0


async def test_keys_and_names_are_separate(make) -> None:  # type: ignore[no-untyped-def]
    _, factories = make
    a = factories[0].make("one", 1, 60.0)
    b = factories[0].make("two", 1, 60.0)
    await a.record("k")
    assert await a.retry_after("k") > 0
    assert await a.retry_after("other") == 0
    assert await b.retry_after("k") == 0


async def test_clear_forgets_the_key(make) -> None:  # type: ignore[no-untyped-def]
    _, factories = make
    throttle = factories[0].make("test", 1, 60.0)
    await throttle.record("k")
    await throttle.clear("k")
    assert await throttle.retry_after("k") == 0


async def test_redis_handles_share_counts_across_processes(on_redis: Factories) -> None:
    _, factories = on_redis
    one, two = _pair(factories, limit=2)
    await one.record("u:x")
    await two.record("u:x")
    assert await one.retry_after("u:x") > 0 and await two.retry_after("u:x") > 0
    await two.clear("u:x")
    assert await one.retry_after("u:x") == 0


async def test_keys_are_hashed_in_redis(on_redis: Factories, redis_prefix: str) -> None:
    _, (factory, _) = on_redis
    await factory.make("login", 1, 60.0).record("u:someone@example.org")
    assert factory.redis is not None
    keys = [k.decode() async for k in factory.redis.scan_iter(match=f"{redis_prefix}:*")]
    assert keys and not any("someone" in k for k in keys)


async def test_memory_backend_forgets_idle_keys_past_its_bound() -> None:
    clock = Clock()
    throttle = MemoryThrottle("test", 1, 60.0, clock, max_keys=10)
    for i in range(10):
        await throttle.record(f"k{i}")
    clock.now += 61
    await throttle.record("fresh")
    assert len(throttle) == 1


async def test_allow_counts_within_the_limit_and_refuses_past_it(make) -> None:  # type: ignore[no-untyped-def]
    clock, factories = make
    throttle = factories[0].make("test", 2, 60.0)
    assert await throttle.allow("k") == 0 and await throttle.allow("k") == 0
    clock.now += 15
    assert await throttle.allow("k") == pytest.approx(45.0)  # refused: nothing counted
    assert await throttle.retry_after("k") == pytest.approx(45.0)
    clock.now += 45.5
    assert await throttle.allow("k") == 0


async def test_allow_now_answers_as_allow_would_or_says_it_cannot(make) -> None:  # type: ignore[no-untyped-def]
    """In memory every event is answered at once, counted and refused as ``allow`` does;
    on Redis only an event of a lease is (None: ``allow`` must ask Redis), and it counts
    against the limit like any other."""
    clock, factories = make
    throttle = factories[0].make("test", 16, 60.0)
    if isinstance(throttle, RedisThrottle):
        assert throttle.allow_now("k") is None  # nothing lent yet
        assert await throttle.allow("k") == 0  # a grant of 1
        clock.now += 0.01
        assert await throttle.allow("k") == 0  # a grant of 2 (the cap: 16 // 8): 1 lent
        assert throttle.allow_now("k") == 0 and throttle.allow_now("k") is None
        assert throttle.lent == 1
        for _ in range(13):
            assert await throttle.allow("k") == 0
        assert await throttle.allow("k") > 0  # the 17th within the window: refused
        return
    answers = [throttle.allow_now("k") for _ in range(17)]
    assert answers[:16] == [0.0] * 16 and answers[16] == pytest.approx(60.0)
    assert await throttle.allow("k") == pytest.approx(60.0)  # the same count underneath
    clock.now += 60.5
    assert throttle.allow_now("k") == 0


async def test_redis_allow_is_shared_across_processes(on_redis: Factories) -> None:
    _, factories = on_redis
    one, two = _pair(factories, limit=2)
    assert await one.allow("k") == 0 and await two.allow("k") == 0
    assert await one.allow("k") > 0 and await two.allow("k") > 0


async def test_redis_calls_made_together_share_one_round_trip(on_redis: Factories) -> None:
    """Calls made while one is on its way go as one script call; each is still counted and
    answered as if sent alone, in the order made: the first ``limit`` pass."""
    _, (factory, _) = on_redis
    throttle = factory.make("test", 3, 60.0)
    assert isinstance(throttle, RedisThrottle)
    waits = await asyncio.gather(*(throttle.allow("k") for _ in range(10)))
    assert waits[:3] == [0, 0, 0] and all(w == pytest.approx(60.0) for w in waits[3:])
    assert throttle.round_trips == 1
    assert await throttle.allow("other") == 0 and throttle.round_trips == 2


async def test_redis_calls_in_one_round_trip_keep_their_own_times(
    redis_url: str, redis_prefix: str
) -> None:
    """Each call of a batch is judged at the time it was made, not the batch's."""
    times = iter([100.0, 110.0, 125.0, 130.0])
    factory = Throttles(redis_url, redis_prefix, lambda: next(times))
    try:
        throttle = factory.make("test", 1, 60.0)
        assert isinstance(throttle, RedisThrottle)
        waits = await asyncio.gather(
            throttle.allow("k"), throttle.allow("k"), throttle.allow("k"), throttle.allow("j")
        )
        assert waits == [0, pytest.approx(50.0), pytest.approx(35.0), 0]
        assert throttle.round_trips == 1
    finally:
        await factory.close()


async def test_redis_that_forgot_the_script_is_given_it_again(on_redis: Factories) -> None:
    _, (factory, _) = on_redis
    throttle = factory.make("test", 2, 60.0)
    assert isinstance(throttle, RedisThrottle) and factory.redis is not None
    assert await throttle.allow("k") == 0
    await factory.redis.script_flush()  # as a restarted Redis would
    assert await asyncio.gather(throttle.allow("k"), throttle.allow("k")) == [
        0, pytest.approx(60.0)
    ]


async def test_an_unreachable_redis_fails_every_call_of_the_batch() -> None:
    factory = Throttles("redis://127.0.0.1:1/0", "hh", Clock())
    try:
        throttle = factory.make("test", 2, 60.0)
        assert isinstance(throttle, RedisThrottle)
        results = await asyncio.gather(
            throttle.allow("a"), throttle.allow("b"), return_exceptions=True
        )
        assert all(isinstance(r, RedisError | OSError) for r in results), results
        assert throttle.round_trips == 1
        (again,) = await asyncio.gather(throttle.allow("c"), return_exceptions=True)
        assert isinstance(again, RedisError | OSError)
        assert throttle.round_trips == 2  # the next call started a new round trip
    finally:
        await factory.close()


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (-1, 60.0), (3, 0.0), (3, -5.0)])
async def test_a_limit_below_one_or_an_empty_window_is_refused(  # type: ignore[no-untyped-def]
    make, limit: int, window: float,
) -> None:
    """A limit of 0 used to refuse nothing on memory and fail every script on Redis (which
    the broker then let through, logging "throttle unavailable" per event)."""
    _, factories = make
    with pytest.raises(ValueError, match="limit must be >= 1"):
        factories[0].make("test", limit, window)


@pytest.mark.parametrize(("name", "value"), [
    ("HH_CHAT_RATE_MESSAGES", "0"), ("HH_REQUEST_RATE_LIMIT", "-3"),
    ("HH_CHAT_RATE_WINDOW_S", "0"), ("HH_REQUEST_RATE_WINDOW_S", "-1"),
])
def test_the_settings_refuse_a_limit_that_could_not_throttle(name: str, value: str) -> None:
    from broker.errors import ConfigError
    from broker.settings import Settings

    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
    assert Settings.from_env({"HH_CHAT_RATE_MESSAGES": "1"}).chat_rate_messages == 1


# -- leases: a busy key's next events lent ahead (RedisThrottle) ------------------------------


async def test_an_occasional_user_is_asked_for_event_by_event(on_redis: Factories) -> None:
    """One event every few seconds never gets a lease: each is its own round trip."""
    clock, (factory, _) = on_redis
    throttle = factory.make("test", 1000, 60.0)
    assert isinstance(throttle, RedisThrottle)
    for _ in range(5):
        assert await throttle.allow("k") == 0
        clock.now += 1.5
    assert throttle.round_trips == 5 and throttle.lent == 0


async def test_a_busy_key_is_lent_its_next_events_and_asks_again_when_they_lapse(
    on_redis: Factories
) -> None:
    """Events within a second of each other: grants of 1, 2, 4, 8 (the cap: 64 // 8), the
    lent ones answered without Redis; a lease unspent past ``lease_s`` is not used."""
    clock, (factory, _) = on_redis
    throttle = factory.make("test", 64, 60.0)
    assert isinstance(throttle, RedisThrottle) and throttle.lease_max == 8
    for _ in range(1 + 2 + 4 + 8 + 8):
        assert await throttle.allow("k") == 0
        clock.now += 0.01
    assert throttle.round_trips == 5 and throttle.lent == 23 - 5
    assert await throttle.allow("k") == 0  # a sixth grant of 8: 7 left
    assert throttle.round_trips == 6
    clock.now += 1.01  # past the lease's end: its rest may not be spent
    assert await throttle.allow("k") == 0
    assert throttle.round_trips == 7
    # Redis counts the events spent (24) and the new one; the lapsed 7 were given back
    assert factory.redis is not None
    assert await factory.redis.zcard(factory.keys.throttle("test", "k")) == 25


async def test_a_limit_under_sixteen_is_never_lent(on_redis: Factories) -> None:
    clock, (factory, _) = on_redis
    throttle = factory.make("test", 15, 60.0)
    assert isinstance(throttle, RedisThrottle)
    waits = []
    for _ in range(16):
        waits.append(await throttle.allow("k"))
        clock.now += 0.01
    assert waits[:15] == [0] * 15 and waits[15] > 0
    assert throttle.round_trips == 16 and throttle.lent == 0


async def test_a_grant_is_what_the_limit_leaves_and_an_unspent_lease_holds_its_events(
    on_redis: Factories
) -> None:
    """Two processes: one is lent events the other then cannot have; the lender's unspent
    events count until they leave the window (refused early, never late)."""
    clock, factories = on_redis
    one, two = (f.make("test", 16, 60.0) for f in factories)  # leases of at most 2
    assert await one.allow("k") == 0  # 1 counted
    assert await one.allow("k") == 0  # a lease of 2: 3 counted, 1 left on `one`
    for _ in range(13):
        assert await two.allow("k") == 0
    assert await two.allow("k") > 0  # 16 counted: the lent one holds the last place
    assert await one.allow("k") == 0  # which `one` still spends, without Redis
    clock.now += 61.5  # everything, the lease's events included, left the window
    assert await two.allow("k") == 0


@pytest.mark.parametrize("seed", range(6))
async def test_leases_never_let_more_than_the_limit_through_in_any_window(
    on_redis: Factories, seed: int
) -> None:
    """Two processes calling one key at random moments, some bursts and some pauses: the
    events let through in every trailing window are at most the limit, and a caller is
    refused only near it: a lent event counts from when it was lent to the window's length
    after the lease's end (``lease_s`` later than it happened, at most), and what the other
    process's lease has not spent yet counts too."""
    rng = random.Random(seed)
    clock, factories = on_redis
    limit, window = 48, 10.0  # leases of at most 6
    throttles = [f.make("test", limit, window) for f in factories]
    allowed: list[float] = []
    refused: list[float] = []
    for _ in range(1500):
        clock.now += rng.choice([0.0, 0.005, 0.02, 0.05, 0.3, 1.2])
        throttle = rng.choice(throttles)
        (allowed if await throttle.allow("k") == 0 else refused).append(clock.now)
    for i, t in enumerate(allowed):
        inside = sum(1 for u in allowed[: i + 1] if u > t - window)
        assert inside <= limit, (t, inside)
    for t in refused:  # refused only with the window nearly full of real events
        inside = sum(1 for u in allowed if t - window - 1.0 < u <= t)
        assert inside >= limit - 6, (t, inside)
    assert sum(t.lent for t in throttles if isinstance(t, RedisThrottle)) > 0
