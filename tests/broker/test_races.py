"""Claims under contention: 50 tutors, 20 requests, one or two broker processes."""

from __future__ import annotations

import asyncio
import collections

from tests.broker.conftest import fetch_all
from tests.broker.harness import forget_redis, student, tutor


async def test_50_tutors_race_for_20_requests(stack_settings, start_server, clients: list) -> None:
    first = await start_server()
    # on the scaled stack the tutors are split over two broker processes
    second = await start_server() if stack_settings.redis_url else first
    kids = [await first.connect("/student", student(f"s-r{i}", "elem", 3)) for i in range(20)]
    tutors = [
        await (first if i % 2 else second).connect("/tutor", tutor(f"t-r{i}", "paper", ["en"]))
        for i in range(50)
    ]
    clients += kids + tutors
    ids = []
    for kid in kids:
        ack = await kid.call("help:request", {"subject": "math", "language": "en"})
        ids.append(ack["request"]["id"])

    async def grab(t, rid):
        return t, rid, await t.call("help:accept", {"request_id": rid}, timeout=30)

    attempts = [grab(t, rid) for t in tutors for rid in ids]
    results = await asyncio.gather(*attempts)
    won = [(t, rid) for t, rid, ack in results if ack["ok"]]
    codes = collections.Counter(ack["error"]["code"] for _, _, ack in results if not ack["ok"])
    assert set(codes) <= {"already_taken", "over_capacity"}
    per_request = collections.Counter(rid for _, rid in won)
    assert sorted(per_request) == sorted(ids) and set(per_request.values()) == {1}
    per_tutor = collections.Counter(id(t) for t, _ in won)
    assert max(per_tutor.values()) <= 2
    rows = await fetch_all(stack_settings.database_url, "select request_id from tutoring_sessions")
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    for kid in kids:
        await kid.next("session:started")


async def test_a_student_never_holds_two_places(
    stack_settings, start_server, clients: list
) -> None:
    first = await start_server()
    second = await start_server() if stack_settings.redis_url else first
    tabs = [await srv.connect("/student", student("s-twice", "elem", 3)) for srv in (first, second)]
    clients += tabs
    acks = await asyncio.gather(
        *(tab.call("help:request", {"subject": "math", "language": "en"}) for tab in tabs)
    )
    assert sorted(a["ok"] for a in acks) == [False, True]
    won = next(a for a in acks if a["ok"])["request"]["id"]
    lost = next(a for a in acks if not a["ok"])
    assert lost["error"]["code"] == "conflict" and lost["error"]["detail"]["request_id"] == won
    rows = await fetch_all(stack_settings.database_url, "select id from help_requests")
    assert [r["id"] for r in rows] == [won]
    # cancelled, the student may ask again
    assert (await tabs[0].call("help:cancel", {"request_id": won}))["ok"] or (
        await tabs[1].call("help:cancel", {"request_id": won})
    )["ok"]
    again = await tabs[0].call("help:request", {"subject": "math", "language": "en"})
    assert again["ok"], again


async def test_the_hold_survives_a_restart(stack_settings, start_server, clients: list) -> None:
    server = await start_server()
    tab = await server.connect("/student", student("s-hold", "elem", 3))
    rid = (await tab.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    await tab.close()
    await server.stop()
    if stack_settings.redis_url:
        await forget_redis(stack_settings)
    again = await start_server()
    tab = await again.connect("/student", student("s-hold", "elem", 3))
    clients.append(tab)
    ack = await tab.call("help:request", {"subject": "math", "language": "en"})
    assert ack["error"]["code"] == "conflict" and ack["error"]["detail"]["request_id"] == rid
