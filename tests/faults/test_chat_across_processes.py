"""Chat between two processes: a burst arrives in order, exactly once; the per-sender rate
limit holds across processes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from tests.faults.conftest import Populate, StartCluster
from tests.faults.invariants import check
from tests.faults.people import Tutor
from tests.faults.seeds import seeds
from tests.faults.workload import Timeline, pair_up, wait_for

pytestmark = pytest.mark.faults

BURST = 30
TUTOR_TRIES = 25
LIMIT = 10  # docs/protocol.md: 10 messages per 10 s per sender


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_burst_from_a_student_reaches_the_tutor_in_order_once(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    timing = random.Random(seed)
    cluster = await start_cluster(env={"HH_CHAT_RATE_MESSAGES": str(BURST * 2)})
    people = await populate(cluster, seed, students=1, tutors=1)
    [(kid, teacher, sid)] = await pair_up(people, per_tutor=1)
    assert kid.server != teacher.server
    timeline = Timeline(
        f"burst of {BURST} messages from serve-{kid.server} to serve-{teacher.server}", seed
    )
    offsets, at = [], 0.0
    for _ in range(BURST):
        offsets.append(at)
        at += timing.choice([0.0, 0.0, timing.uniform(0, 0.002)])

    async def send(i: int) -> None:
        await asyncio.sleep(offsets[i])
        await kid.say(sid, f"s{i}")

    timeline.fault_from = time.time()
    await asyncio.gather(*(asyncio.create_task(send(i)) for i in range(BURST)))
    timeline.fault_until = timeline.churn_until = time.time()
    log = teacher.log(sid)
    with contextlib.suppress(AssertionError):  # what did not arrive is reported below
        await wait_for(lambda: len(log.delivered) >= BURST, "the whole burst delivered", 3)
    report = await check(cluster, people, timeline, active=False)
    acked = sorted(kid.sent, key=lambda sent: sent[0])
    report.add(
        f"all {BURST} acknowledged",
        [f"{BURST - len(acked)} refused"] if len(acked) != BURST else [],
        BURST,
    )
    shown = [m["text"] for m in log.delivered]
    sent = [m["text"] for _, m in acked]
    misplaced = sum(a != b for a, b in zip(shown, sent, strict=False)) + abs(len(shown) - len(sent))
    report.add(
        "the tutor sees the burst in the order sent, each once (messages out of place)",
        [] if shown == sent else [f"tutor shows {shown[:12]}", f"arrival seqs {log.arrivals[:12]}"],
        BURST,
        failed=misplaced,
    )
    assert report.ok, report.table()


@pytest.mark.parametrize("seed", seeds(1, 2))
async def test_tutor_on_both_processes_is_limited_once(
    start_cluster: StartCluster, populate: Populate, seed: int
) -> None:
    timing = random.Random(seed)
    cluster = await start_cluster()  # the documented default limit
    people = await populate(cluster, seed, students=1, tutors=1)
    [(_, teacher, sid)] = await pair_up(people, per_tutor=1)
    twin = Tutor(teacher.identity, cluster, 1 - teacher.home, teacher.queue_names)
    people.tutors.append(await twin.connect())
    await wait_for(lambda: sid in twin.sessions and twin.sessions[sid].open, "twin sees session")
    assert {teacher.server, twin.server} == {0, 1}
    timeline = Timeline(f"one tutor sending {TUTOR_TRIES} messages through both processes", seed)
    timeline.fault_from = time.time()
    calls = []
    for i in range(TUTOR_TRIES):
        tab = (teacher, twin)[(i + timing.randrange(2)) % 2]
        calls.append(await tab.say(sid, f"t{i}"))
        await asyncio.sleep(timing.uniform(0, 0.06))
    timeline.fault_until = timeline.churn_until = time.time()
    assert timeline.fault_until - timeline.fault_from < 10
    report = await check(cluster, people, timeline, active=False)
    accepted = sum(c.ok for c in calls)
    per_server = {i: sum(c.ok for c in calls if c.server == i) for i in (0, 1)}
    report.add(
        f"at most {LIMIT} of {TUTOR_TRIES} accepted within 10 s across both processes",
        [f"{accepted} accepted (by server {per_server})"] if accepted > LIMIT else [],
        TUTOR_TRIES,
        failed=max(0, accepted - LIMIT),
    )
    expected = ["ok"] * LIMIT + ["rate_limited"] * (TUTOR_TRIES - LIMIT)
    codes = [c.code for c in calls]
    report.add(
        f"the first {LIMIT} accepted, the rest refused as rate_limited",
        [] if codes == expected else [f"codes {codes}"],
        TUTOR_TRIES,
        failed=sum(a != b for a, b in zip(codes, expected, strict=True)),
    )
    assert report.ok, report.table()
