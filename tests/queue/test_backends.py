"""The queue contract (broker/queue/base.py), asserted identically on every backend."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import pytest

from broker.constants import PRIORITY_HEAD_START_S
from broker.errors import AlreadyTaken, OverCapacity
from broker.queue.base import QueueBackend, QueuedRequest
from tests.queue.conftest import req

T0 = 1_718_000_000.0
Q = "acme:en"


async def ids(queue: QueueBackend, name: str = Q) -> list[str]:
    return [r.id for r in await queue.snapshot(name)]


async def test_fifo_order_and_positions(queue: QueueBackend) -> None:
    for i, request_id in enumerate(["c", "a", "b"]):
        assert await queue.enqueue(req(request_id, T0 + i)) == i + 1
    assert await ids(queue) == ["c", "a", "b"]
    assert [await queue.position(x) for x in ("c", "a", "b")] == [1, 2, 3]


async def test_enqueue_out_of_time_order_is_sorted_by_time(queue: QueueBackend) -> None:
    assert await queue.enqueue(req("late", T0 + 10)) == 1
    assert await queue.enqueue(req("early", T0)) == 1
    assert await queue.position("late") == 2
    assert await ids(queue) == ["early", "late"]


async def test_equal_scores_tie_break_by_id(queue: QueueBackend) -> None:
    for request_id in ["m", "b", "z", "a"]:
        await queue.enqueue(req(request_id, T0))
    # priority 1 at T0 + head start has the same score as priority 0 at T0
    await queue.enqueue(req("c", T0 + PRIORITY_HEAD_START_S, priority=1))
    assert await ids(queue) == ["a", "b", "c", "m", "z"]
    assert await queue.position("c") == 3


async def test_priority_head_start_is_bounded(queue: QueueBackend) -> None:
    head = PRIORITY_HEAD_START_S
    await queue.enqueue(req("old", T0))  # enqueued more than one head start before "vip"
    await queue.enqueue(req("recent", T0 + head))  # within one head start before "vip"
    await queue.enqueue(req("vip", T0 + head + head / 2, priority=1))
    await queue.enqueue(req("after", T0 + 2 * head))
    assert await ids(queue) == ["old", "vip", "recent", "after"]
    # two steps overtake up to two head starts, and still not an earlier one
    await queue.enqueue(req("vip2", T0 + 2 * head + 1, priority=2))
    assert await ids(queue) == ["old", "vip2", "vip", "recent", "after"]
    await queue.enqueue(req("vip3", T0 + 2 * head + 1 + 1, priority=2))
    assert (await ids(queue))[:3] == ["old", "vip2", "vip3"]


async def test_positions_after_removes(queue: QueueBackend) -> None:
    for i in range(6):
        await queue.enqueue(req(f"r{i}", T0 + i))
    removed = await queue.remove("r0")
    assert removed == req("r0", T0)
    assert await queue.remove("r3") is not None
    assert await queue.remove("r3") is None
    assert await queue.remove("never") is None
    assert [await queue.position(f"r{i}") for i in range(6)] == [None, 1, 2, None, 3, 4]
    assert await queue.get("r3") is None
    assert await ids(queue) == ["r1", "r2", "r4", "r5"]


async def test_remove_for_a_student_takes_only_their_own(queue: QueueBackend) -> None:
    mine = req("mine", T0)
    await queue.enqueue(mine)
    assert await queue.remove("mine", student=mine.student + "-other") is None
    assert await queue.position("mine") == 1  # untouched
    assert await queue.remove("mine", student=mine.student) == mine
    assert await queue.position("mine") is None


async def test_get_round_trips_every_field(queue: QueueBackend) -> None:
    original = req("ü-1", T0 + 0.123456, priority=2, topic="fractions ½ — 分数", language="zh")
    await queue.enqueue(original)
    assert await queue.get("ü-1") == original
    assert await queue.snapshot(original.queue) == [original]
    assert await queue.get("missing") is None


async def test_enqueue_is_idempotent(queue: QueueBackend) -> None:
    await queue.enqueue(req("a", T0))
    assert await queue.enqueue(req("b", T0 + 1)) == 2
    assert await queue.enqueue(req("b", T0 + 1)) == 2
    # the same id again (even with another time) keeps its place
    assert await queue.enqueue(req("b", T0 - 100)) == 2
    assert await queue.lengths() == {Q: 2}
    assert (await queue.get("b")) == req("b", T0 + 1)


async def test_claim_exactly_once(queue: QueueBackend) -> None:
    await queue.enqueue(req("a", T0))
    await queue.enqueue(req("b", T0 + 1))
    claimed = await queue.claim("a", "tutor-1", 2)
    assert claimed == req("a", T0)
    with pytest.raises(AlreadyTaken):
        await queue.claim("a", "tutor-2", 2)
    with pytest.raises(AlreadyTaken):
        await queue.claim("a", "tutor-1", 2)
    with pytest.raises(AlreadyTaken):
        await queue.claim("unknown", "tutor-2", 2)
    assert await queue.load("tutor-1") == 1
    assert await queue.load("tutor-2") == 0
    assert await queue.position("a") is None
    assert await queue.get("a") is None
    assert await queue.position("b") == 1


async def test_over_capacity_leaves_request_queued(queue: QueueBackend) -> None:
    for i in range(3):
        await queue.enqueue(req(f"r{i}", T0 + i))
    await queue.claim("r0", "t", 1)
    with pytest.raises(OverCapacity) as caught:
        await queue.claim("r1", "t", 1)
    assert caught.value.code == "over_capacity"
    assert await queue.position("r1") == 1
    assert await queue.get("r1") == req("r1", T0 + 1)
    assert await queue.load("t") == 1
    with pytest.raises(OverCapacity):
        await queue.claim("r1", "other", 0)
    # another tutor can still take it
    assert (await queue.claim("r1", "other", 1)).id == "r1"


async def test_release_never_below_zero(queue: QueueBackend) -> None:
    for i in range(3):
        await queue.enqueue(req(f"r{i}", T0 + i))
    await queue.claim("r0", "t", 2)
    await queue.claim("r1", "t", 2)
    assert await queue.load("t") == 2
    with pytest.raises(OverCapacity):
        await queue.claim("r2", "t", 2)
    await queue.release("t")
    assert await queue.load("t") == 1
    assert (await queue.claim("r2", "t", 2)).id == "r2"
    for _ in range(4):
        await queue.release("t")
    assert await queue.load("t") == 0
    await queue.release("nobody")
    assert await queue.load("nobody") == 0


async def test_requeue_goes_back_to_head_with_original_time(queue: QueueBackend) -> None:
    await queue.enqueue(req("a", T0))
    await queue.enqueue(req("b", T0 + 10))
    taken = await queue.claim("a", "t", 2)
    await queue.enqueue(req("c", T0 + 20))
    assert await queue.requeue(taken) == 1
    assert await ids(queue) == ["a", "b", "c"]
    assert (await queue.get("a")) == req("a", T0)
    # requeue of something still queued changes nothing
    assert await queue.requeue(req("b", T0 + 10)) == 2
    assert await queue.lengths() == {Q: 3}


async def test_snapshot_and_lengths_per_queue(queue: QueueBackend) -> None:
    await queue.enqueue(req("e1", T0 + 1, language="es"))
    await queue.enqueue(req("x1", T0 + 2))
    await queue.enqueue(req("e0", T0, language="es"))
    await queue.enqueue(req("o1", T0, vendor="other"))
    assert await ids(queue, "acme:es") == ["e0", "e1"]
    assert await ids(queue, Q) == ["x1"]
    assert await queue.snapshot("nobody:xx") == []
    assert await queue.lengths() == {"acme:es": 2, Q: 1, "other:en": 1}
    await queue.claim("x1", "t", 2)
    await queue.remove("o1")
    assert await queue.lengths() == {"acme:es": 2}


async def test_snapshot_of_thousands_is_ordered(queue: QueueBackend) -> None:
    rng = random.Random(7)
    times = [T0 + rng.randrange(0, 3600) + rng.random() for _ in range(2000)]
    requests = [req(f"r{i:04d}", t, priority=rng.choice([0, 0, 0, 1])) for i, t in enumerate(times)]
    await queue.rebuild(rng.sample(requests, len(requests)), {})
    expected = [r.id for r in sorted(requests, key=lambda r: (r.score, r.id))]
    assert await ids(queue) == expected
    probe = expected[1234]
    assert await queue.position(probe) == 1235


async def test_rebuild_replaces_everything(
    queue: QueueBackend, lose_state: Callable[[], Awaitable[QueueBackend]]
) -> None:
    assert not await queue.has_state()
    await queue.enqueue(req("stale", T0))
    await queue.enqueue(req("stale-es", T0, language="es"))
    await queue.claim("stale", "old-tutor", 2)
    assert not await queue.has_state()

    await queue.rebuild(
        [req("b", T0 + 5), req("a", T0), req("es", T0 + 1, language="es"), req("a", T0)],
        {"t1": 2, "t2": 0},
    )
    assert await queue.has_state()
    assert await ids(queue) == ["a", "b"]
    assert await ids(queue, "acme:es") == ["es"]
    assert await queue.lengths() == {Q: 2, "acme:es": 1}
    assert await queue.get("stale-es") is None
    assert await queue.position("stale-es") is None
    assert await queue.load("t1") == 2
    assert await queue.load("t2") == 0
    assert await queue.load("old-tutor") == 0
    with pytest.raises(OverCapacity):
        await queue.claim("a", "t1", 2)

    # the state is lost (process restart / Redis flushed): has_state says so
    after = await lose_state()
    assert not await after.has_state()
    assert await after.lengths() == {}
    await after.rebuild([req("a", T0)], {})
    assert await after.has_state()
    assert await ids(after) == ["a"]


async def test_rebuild_with_nothing_still_marks_state(queue: QueueBackend) -> None:
    await queue.enqueue(req("a", T0))
    await queue.rebuild([], {})
    assert await queue.has_state()
    assert await queue.lengths() == {}
    assert await queue.snapshot(Q) == []


async def test_handles_share_one_state(queues: list[QueueBackend]) -> None:
    first, second = queues[0], queues[1]
    await first.enqueue(req("a", T0))
    assert await second.position("a") == 1
    await second.claim("a", "t", 2)
    with pytest.raises(AlreadyTaken):
        await first.claim("a", "u", 2)
    assert await first.load("t") == 1


async def test_race_fifty_tutors_twenty_requests(queues: list[QueueBackend]) -> None:
    """50 tutors (capacity 2) each try every one of 20 requests at once, over several
    handles (for Redis: several connection pools, as several broker processes)."""
    requests = [req(f"r{i:02d}", T0 + i) for i in range(20)]
    for r in requests:
        await queues[0].enqueue(r)
    capacity = 2
    wins: dict[str, list[str]] = defaultdict(list)
    refusals: Counter[str] = Counter()

    async def lane(handle: QueueBackend, tutor: str, request_ids: list[str]) -> None:
        for request_id in request_ids:
            try:
                claimed = await handle.claim(request_id, tutor, capacity)
            except (AlreadyTaken, OverCapacity) as exc:
                refusals[exc.code] += 1
                continue
            wins[tutor].append(claimed.id)

    async def tutor(n: int) -> None:
        handle = queues[n % len(queues)]
        order = [r.id for r in requests]
        random.Random(n).shuffle(order)
        lanes = 4  # each tutor has four claims in flight at once
        await asyncio.gather(
            *(lane(handle, f"t{n:02d}", order[i::lanes]) for i in range(lanes))
        )

    await asyncio.gather(*(tutor(n) for n in range(50)))

    claimed = Counter(request_id for won in wins.values() for request_id in won)
    assert sorted(claimed) == sorted(r.id for r in requests)
    assert set(claimed.values()) == {1}
    assert sum(claimed.values()) == 20
    for n in range(50):
        tutor_id = f"t{n:02d}"
        assert len(wins[tutor_id]) <= capacity
        assert await queues[1].load(tutor_id) == len(wins[tutor_id])
    assert sum(refusals.values()) == 50 * 20 - 20
    assert await queues[2].lengths() == {}


@pytest.mark.redis
async def test_redis_key_layout(redis_url: str, redis_prefix: str) -> None:
    """Every key the Redis backend writes is under its prefix, in the documented layout."""
    import redis.asyncio as aioredis

    from broker.queue.redis_backend import RedisQueue

    queue = RedisQueue(redis_url, redis_prefix)
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await queue.rebuild([req("a", T0), req("b", T0 + 1)], {})
        await queue.claim("a", "t", 2)
        keys = {k async for k in client.scan_iter(match=f"{redis_prefix}*", count=500)}
        base = f"{redis_prefix}:q:"
        assert keys == {base + s for s in ("z:acme:en", "req", "where", "loads", "names", "built")}
        assert await client.zrange(base + "z:acme:en", 0, -1, withscores=True) == [
            ("b", req("b", T0 + 1).score)
        ]
        assert await client.hget(base + "where", "b") == Q
        assert await client.hget(base + "loads", "t") == "1"
    finally:
        await client.aclose()
        await queue.close()


async def test_claim_returns_queued_request_type(queue: QueueBackend) -> None:
    await queue.enqueue(req("a", T0))
    claimed = await queue.claim("a", "t", 1)
    assert isinstance(claimed, QueuedRequest)
    assert claimed.score == T0
