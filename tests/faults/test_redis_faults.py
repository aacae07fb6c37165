"""Redis losing its data (FLUSHALL, or a restart with nothing saved) during churn and chat,
Redis frozen (nothing answered, nothing closed), and Redis dropping its pub/sub connections
during chat."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time

import aiohttp
import pytest

from tests.faults.cluster import tail
from tests.faults.conftest import Populate, StartCluster, StartScenario
from tests.faults.invariants import check
from tests.faults.seeds import kinds, seeds
from tests.faults.workload import CHURN_ENV, Churn, Timeline, churn_through, pair_up

pytestmark = pytest.mark.faults

PARTITION_GRACE_S = 3.0

@pytest.mark.parametrize(
    ("how", "seed"),
    kinds([("flushall", 1), ("flushall", 2), ("restart-empty", 1), ("restart-empty", 2)]),
)
async def test_redis_loses_its_data_during_churn(
    scenario: StartScenario, how: str, seed: int
) -> None:
    """Sessions and queues come back from the database; no session whose participants are
    connected is ended, no tutor loses their status, no message id is reused, nobody is
    blocked by a stale one-open-request lock."""
    run = await scenario(seed)
    cluster, timing = run.cluster, run.timing
    down_s = timing.uniform(0.5, 1.0)
    what = "FLUSHALL" if how == "flushall" else f"restarted empty ({down_s:.1f} s down)"

    async def fault(churn: Churn) -> None:
        churn.wave()
        await asyncio.sleep(timing.uniform(0.0, 0.03))
        if how == "flushall":
            await cluster.redis.flushall()
        else:
            await cluster.redis.restart_empty(down_s)

    report = await run.churn(f"Redis {what} during churn and chat", fault)
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(2))
async def test_redis_frozen_during_churn(scenario: StartScenario, seed: int) -> None:
    """Redis answers nothing for longer than the grace period and a client's wait
    (frozen: connections open, nothing closed): every call is still answered meanwhile
    (the throttles and presence give up after ``REDIS_WAIT_S``, the fan-out buffers),
    nobody is judged gone for it, nothing acknowledged is lost, and afterwards every
    invariant holds."""
    run = await scenario(seed)
    freeze_s = 5.0 + run.timing.uniform(0, 0.5)

    async def fault(churn: Churn) -> None:
        churn.wave()
        await run.cluster.redis.freeze(freeze_s)

    report = await run.churn(
        f"Redis frozen {freeze_s:.1f} s during churn and chat", fault, answers_during=True
    )
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_pubsub_connections_killed_during_chat(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    """Twelve sessions chatting across the two processes while Redis drops every pub/sub
    connection twice, and a third of them ended right after: every acknowledged message
    still reaches the other participant once, in order, and every session:ended reaches
    the other side (pushed, or learned through session:sync after server:resync, without
    waiting for the 30 s quiet-spell sync)."""
    timing = random.Random(seed)
    cluster = await start_cluster(env=CHURN_ENV)
    people = await populate(cluster, seed)
    pairs = await pair_up(people)
    timeline = Timeline("Redis pub/sub connections killed twice during chat", seed, prompt=True)

    async def fault(churn: Churn) -> None:
        for _ in range(2):
            await cluster.redis.kill_pubsub()
            await asyncio.sleep(timing.uniform(0.3, 0.6))
        for student, tutor, session_id in pairs[::3]:
            await timing.choice([student, tutor]).end_session(session_id)

    async with asyncio.timeout(60):
        await churn_through(
            people,
            timeline,
            fault,
            before_s=timing.uniform(0.8, 1.2),
            after_s=0.5,
            chat_only=True,
        )
        report = await check(cluster, people, timeline)
    assert report.ok, report.table()


@pytest.mark.parametrize(("how", "seed"), kinds([("cut", 1), ("hold", 2), ("slow", 1)]))
async def test_one_process_cut_off_from_redis(
    scenario: StartScenario, how: str, seed: int
) -> None:
    """One process alone loses its route to Redis for two grace periods during churn and
    chat, while the other reaches Redis as usual (a partition, not an outage: ``cut``
    resets its connections and refuses new ones, ``hold`` answers nothing; or ``slow``, 20
    ms more each way): every call is still answered, the other process judges nobody gone
    who is connected to the cut-off one, nothing acknowledged is lost, and afterwards
    every invariant holds."""
    # A 3 s grace: the cut-off process's people were last touched at most a sweep (0.75 s)
    # before the cut, and it declares itself within a sweep and the bound (1 s) after it,
    # so the grace must exceed 2.5 s (broker/presence_blind.py).
    run = await scenario(seed, grace_s=PARTITION_GRACE_S, redis_links=[0])
    link = run.cluster.redis_links[0]
    seconds = 2 * run.cluster.grace_s + run.timing.uniform(0, 0.5)

    async def fault(churn: Churn) -> None:
        churn.wave()
        await link.fail_for(how, seconds)

    report = await run.churn(
        f"serve-0 alone cut off from Redis ({how}) {seconds:.1f} s during churn and chat",
        fault,
        answers_during=True,
    )
    assert report.ok, report.table()


HAND_OVER_ENV = {**CHURN_ENV, "HH_HAND_OVER_AFTER_S": "2"}
# Back in rotation this long at most after the route is back: Redis reached again (the
# client's reconnection), a sweep that touches presence (every 1.25 s with a 5 s grace),
# then the hand-over watch's next look (every 0.5 s), with room for a slow machine.
BACK_IN_ROTATION_S = 5.0


@pytest.mark.parametrize("seed", seeds(3))
async def test_a_process_cut_off_from_redis_hands_its_clients_over(
    scenario: StartScenario, seed: int
) -> None:
    """One process alone cut off from Redis for longer than ``HH_HAND_OVER_AFTER_S``
    (here 2 s), behind a load balancer that checks ``/healthz``: it tells its clients
    ``server:restart`` and turns new ones away, so that before the route is back every
    client is on the process that reaches Redis, nothing acknowledged is lost, nobody is
    judged gone for the move, and afterwards every invariant holds and the cut-off
    process is in rotation again."""
    # A 5 s grace, as for a deploy: a told client comes back after up to ~3 s.
    run = await scenario(seed, grace_s=5.0, env=HAND_OVER_ENV, redis_links=[0])
    people = run.people
    link, cut = run.cluster.redis_links[0], run.cluster.servers[0]
    homed = [p.name for p in people.everyone if p.server == 0]
    seconds = 10.0 + run.timing.uniform(0, 0.5)
    during: dict[str, list[str]] = {}
    health: list[tuple[float, int]] = []
    route_back: list[float] = []
    in_rotation = asyncio.Event()

    async def balancer() -> None:
        """A load balancer's health check of serve-0: in rotation while it answers 200."""
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(
                        f"{cut.url}/healthz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as resp:
                        health.append((time.time(), resp.status))
                        cut.up = resp.status == 200
                        (in_rotation.set if cut.up else in_rotation.clear)()
                await asyncio.sleep(0.2)

    async def fault(churn: Churn) -> None:
        churn.wave()
        cutting = asyncio.create_task(link.fail_for("cut", seconds))
        await asyncio.sleep(seconds - 1.0)  # before the route is back: who is where
        during["on serve-0"] = [p.name for p in people.everyone if p.server == 0]
        during["offline"] = [p.name for p in people.everyone if p.server is None]
        await cutting
        route_back.append(time.time())

    checks = asyncio.create_task(balancer())
    try:
        report = await run.churn(
            f"serve-0 alone cut off from Redis {seconds:.1f} s, its clients handed over",
            fault,
            answers_during=True,
        )
        left = route_back[0] + BACK_IN_ROTATION_S - time.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(in_rotation.wait(), max(0.0, left))
        back = cut.up
    finally:
        checks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checks
    report.add("clients still on the cut-off process 1 s before the route came back",
               during["on serve-0"], len(people.everyone))
    report.add("clients offline then", during["offline"], len(people.everyone))
    refused = [at for at, status in health if status == 503]
    report.add("/healthz answered 503 while handing over", [] if refused else ["never"], 1)
    report.add(f"in rotation again within {BACK_IN_ROTATION_S:.0f} s of the route's return",
               [] if back else ["not"], 1)
    again = [at - route_back[0] for at, status in health if status == 200 and at > route_back[0]]
    told = re.search(r"told its (\d+) clients to reconnect elsewhere", tail(cut.log, 400))
    report.add("the cut-off process told its clients", [] if told else ["no log line"], 1)
    report.notes.append(
        f"{len(homed)} clients on serve-0 at the start; told {told.group(1) if told else 0}; "
        f"503 for {len(refused) * 0.2:.1f} s; 200 again "
        + (f"{again[0]:.1f} s after the route's return" if again else "never")
    )
    assert report.ok, report.table()
