"""Tutors' time on duty (issue 15, ``tutor_duty``, broker/duty.py), on SQLite and PostgreSQL:
spans opened and closed with the status change, closed at the time presence last saw a
tutor whose connection is gone, reopened when they come back, closed by the next sweep
after a process dies, never duplicated by processes sweeping at once; and coverage's
"observed" counts an idle available tutor.

Time is the broker's fake clock and every sweep is called by the test (the rig has no
background sweep), so nothing depends on the wall clock. The end-to-end test at the
bottom runs real socket.io clients against a served broker on both stacks (SQLite +
memory presence, PostgreSQL + Redis presence).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import duty, safety_store
from broker.capacity import coverage
from broker.catalog_source import load_catalog
from broker.db.duty_models import tutor_duty
from broker.identity import Scope, staff_identity
from broker.lifecycle_store import at
from tests.broker.conftest import clients, fetch_all, rig, stack, stack_settings, start_server
from tests.broker.district import prepare_database
from tests.broker.harness import Client, Server
from tests.broker.harness import tutor as tutor_token
from tests.broker.unit import T0, FakeClock, Rig, broker_rig, tutor

__all__ = ["clients", "rig", "stack", "stack_settings", "start_server"]  # fixtures used here

DISTRICT = staff_identity("d1", Scope.district(), source="test")


@pytest.fixture
async def unit_db(database_url: str) -> str:
    """The test district on SQLite and on PostgreSQL; tests/broker's ``rig`` runs on it."""
    await prepare_database(database_url)
    return database_url


async def _spans(engine: AsyncEngine) -> list[tuple[str, str, float, float | None]]:
    """Every span as (tutor, language, started, ended or None), in the order opened."""
    d = tutor_duty
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(d.c.tutor_id, d.c.language, d.c.started_at, d.c.ended_at).order_by(d.c.id)
        )
        return [
            (str(t), str(lang), s.timestamp(), e.timestamp() if e is not None else None)
            for t, lang, s, e in rows
        ]


def _judging(rig: Rig) -> float:
    """Seconds after which the rig's presence has answered for three sweeps (it judges
    who is gone from then on)."""
    return 3 * rig.broker.sweep_interval


def _past_here(rig: Rig) -> float:
    """Seconds after someone's last touch after which they no longer count as connected."""
    return float(rig.broker.here_within_s) + 0.5


async def test_available_then_away_is_one_span_per_queue(rig: Rig) -> None:
    tut = tutor("t-1", languages=("en", "es"))
    await rig.connect(tut)
    await rig.broker.set_status(tut, "available")
    await rig.broker.set_status(tut, "available")  # again: nothing more opens
    assert await _spans(rig.engine) == [("t-1", "en", T0, None), ("t-1", "es", T0, None)]
    rig.clock.advance(600)
    await rig.broker.set_status(tut, "away")
    assert await _spans(rig.engine) == [
        ("t-1", "en", T0, T0 + 600), ("t-1", "es", T0, T0 + 600)
    ]
    await rig.broker.set_status(tut, "away")  # again: nothing closes twice
    rig.clock.advance(_judging(rig))
    await rig.sweep()  # away and connected: the sweep opens nothing
    assert [s[3] for s in await _spans(rig.engine)] == [T0 + 600, T0 + 600]


async def test_disconnect_closes_at_last_seen_and_reconnect_reopens(rig: Rig) -> None:
    tut = tutor("t-2")
    await rig.connect(tut)
    await rig.broker.set_status(tut, "available")
    seen = rig.clock.advance(_judging(rig))
    await rig.sweep()  # touched at ``seen``
    rig.disconnect(tut)
    rig.clock.advance(1)
    await rig.sweep()  # not long enough: still connected somewhere, perhaps
    assert await _spans(rig.engine) == [("t-2", "en", T0, None)]
    rig.clock.advance(_past_here(rig))
    await rig.sweep()
    assert await _spans(rig.engine) == [("t-2", "en", T0, seen)]  # not the sweep's time
    state = await rig.broker.store.tutor_state("t-2")
    assert state is not None and state["status"] == "available"  # as chosen
    back = rig.clock.advance(300)
    await rig.connect(tut)
    await rig.sweep()
    assert await _spans(rig.engine) == [("t-2", "en", T0, seen), ("t-2", "en", back, None)]
    await rig.sweep()
    assert len(await _spans(rig.engine)) == 2  # nothing flaps while they stay


async def test_sign_out_and_suspension_close_the_span(rig: Rig) -> None:
    out, bad = tutor("t-out"), tutor("t-bad")
    for who in (out, bad):
        await rig.connect(who)
        await rig.broker.set_status(who, "available")
    rig.clock.advance(60)
    await rig.broker.sign_out(out)
    async with rig.engine.begin() as conn:
        await conn.execute(sa.text(
            "insert into users (id, username, display_name, role, vendor_id, languages, "
            "password_hash, disabled, created_at) values ('t-bad', 't-bad', 'T', 'tutor', "
            "'paper', 'en', 'x', false, :now)"), {"now": at(T0)})
    rig.clock.advance(60)
    assert await safety_store.suspend_account(
        rig.engine, "t-bad", DISTRICT, "test", at(rig.clock.now)
    )
    assert await _spans(rig.engine) == [
        ("t-out", "en", T0, T0 + 60), ("t-bad", "en", T0, T0 + 120)
    ]
    rig.clock.advance(_judging(rig))
    await rig.sweep()  # both still "connected" here, neither available: nothing reopens
    assert len(await _spans(rig.engine)) == 2


async def test_one_open_span_per_tutor_and_queue_is_a_constraint(rig: Rig) -> None:
    tut = tutor("t-3")
    await rig.connect(tut)
    await rig.broker.set_status(tut, "available")
    with pytest.raises(IntegrityError):
        async with rig.engine.begin() as conn:
            await conn.execute(tutor_duty.insert().values(
                tutor_id="t-3", vendor="paper", language="en", started_at=at(T0 + 1)))


async def test_two_processes_sweeping_at_once_leave_one_open_span(unit_db: str) -> None:
    clock = FakeClock()
    async with broker_rig(unit_db, clock) as one, broker_rig(unit_db, clock) as two:
        two.broker.presence = one.broker.presence  # shared, as Redis shares it
        tut = tutor("t-4", languages=("en", "es"))
        await one.connect(tut)
        await one.broker.set_status(tut, "available")
        seen = clock.advance(_judging(one))
        await one.sweep()
        one.disconnect(tut)
        clock.advance(_past_here(one))
        await asyncio.gather(one.broker.sweep(), two.broker.sweep())  # both close
        assert await _spans(one.engine) == [
            ("t-4", "en", T0, seen), ("t-4", "es", T0, seen)
        ]
        back = clock.advance(10)
        two.connected.add("tutor:t-4")  # back, through the other process
        await asyncio.gather(*(rig.broker.sweep() for rig in (one, two, one, two)))
        opened = [s for s in await _spans(one.engine) if s[3] is None]
        assert opened == [("t-4", "en", back, None), ("t-4", "es", back, None)]
        # the reconciliation itself, many at once from both processes' engines
        two.connected.clear()
        clock.advance(_past_here(one))
        now = clock.now
        results = await asyncio.gather(*(
            duty.reconcile(rig.engine, _seen(rig, now), rig.broker.here_within_s, now)
            for rig in (one, two, one, two, one, two)
        ))
        assert sum(r.closed for r in results) == 2 and sum(r.opened for r in results) == 0
        assert all(s[3] is not None for s in await _spans(one.engine))


async def test_a_sweep_that_read_available_does_not_reopen_for_a_tutor_gone_away(
    rig: Rig,
) -> None:
    tut = tutor("t-race")
    await rig.connect(tut)
    await rig.broker.set_status(tut, "available")
    rig.clock.advance(_judging(rig))
    await rig.sweep()
    rig.disconnect(tut)
    rig.clock.advance(_past_here(rig))
    await rig.sweep()  # gone: closed
    await rig.connect(tut)  # back, and the sweep has read their status as available...
    now = rig.clock.now

    async def away_meanwhile(subjects: list[str]) -> dict[str, float]:
        await rig.broker.set_status(tut, "away")  # ...when they go away
        return await rig.presence.last_seen(subjects, now)

    done = await duty.reconcile(rig.engine, away_meanwhile, rig.broker.here_within_s, now)
    assert done == duty.Reconciled(opened=0, closed=0)
    assert all(span[3] is not None for span in await _spans(rig.engine))


def _seen(rig: Rig, now: float) -> Any:
    async def last_seen(subjects: list[str]) -> dict[str, float]:
        return await rig.presence.last_seen(subjects, now)

    return last_seen


async def test_a_span_left_by_a_dead_process_is_closed_by_the_next_sweep(unit_db: str) -> None:
    clock = FakeClock()
    async with broker_rig(unit_db, clock) as dead:
        tut = tutor("t-5")
        await dead.connect(tut)
        await dead.broker.set_status(tut, "available")
        seen = clock.advance(_judging(dead))
        await dead.sweep()
        presence = dead.presence
        # killed here: no more sweeps of its own, its connection gone with it
    async with broker_rig(unit_db, clock) as other:
        other.broker.presence = presence  # shared presence (Redis) remembers the last touch
        clock.advance(_past_here(other))
        await other.sweep()
        assert await _spans(other.engine) == [("t-5", "en", T0, seen)]

    async with broker_rig(unit_db, clock) as dead:  # again, on the embedded stack's presence
        await dead.connect(tut)
        await dead.broker.set_status(tut, "available")
        opened = clock.now
        clock.advance(_judging(dead))
        await dead.sweep()
    restarted = clock.advance(1)
    async with broker_rig(unit_db, clock) as other:  # memory presence starts empty: its epoch
        clock.advance(_judging(other) + _past_here(other))
        await other.sweep()
        assert (await _spans(other.engine))[1] == ("t-5", "en", opened, restarted)


async def test_coverage_counts_an_idle_available_tutor(rig: Rig) -> None:
    tut = tutor("t-6")
    await rig.connect(tut)
    await rig.broker.set_status(tut, "available")  # 06:13:20 UTC
    for _ in range(12):  # an idle hour, swept every five minutes
        rig.clock.advance(300)
        await rig.sweep()
    await rig.broker.set_status(tut, "away")  # 07:13:20
    start = dt.datetime(2024, 6, 10, 6, 0, tzinfo=dt.UTC)
    report = await coverage.coverage(
        rig.engine, DISTRICT, load_catalog(), start, start + dt.timedelta(hours=2),
        vendor="paper", language="en", now=at(rig.clock.now), needed_fn=None,
    )
    (queue,) = report["queues"]
    assert [(x["observed"], x["observed_chatting"]) for x in queue["slots"]] == [
        (1, 0), (1, 0), (1, 0), (0, 0)
    ]


# -- end to end: real socket.io clients, both stacks ---------------------------------------


async def _db_spans(server: Server) -> list[dict[str, Any]]:
    return await fetch_all(
        server.settings.database_url,
        "select tutor_id, language, started_at, ended_at from tutor_duty order by id",
    )


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return float(value.timestamp())


async def test_a_served_tutor_on_and_off_duty(
    start_server: Any, clients: list[Client]
) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock=clock)
    identity = tutor_token("t-e2e", "paper", ["en"])
    tut = await server.connect("/tutor", identity)
    clients.append(tut)
    assert (await tut.call("tutor:status", {"status": "available"}))["ok"]
    [span] = await _db_spans(server)
    assert span["ended_at"] is None and abs(_epoch(span["started_at"]) - clock.now) < 1e-3
    seen = clock.now  # the connection's touches (connect, and sweeps at this time)
    await tut.close()
    await server.disconnected("tutor:t-e2e")
    settle = server.broker.here_within_s + 2 * server.broker.sweep_interval
    clock.advance(settle)
    await server.sweep()
    [span] = await _db_spans(server)
    assert abs(_epoch(span["ended_at"]) - seen) < 1e-3  # closed at last seen
    back = clock.advance(5)
    again = await server.connect("/tutor", identity)
    clients.append(again)
    await server.sweep()
    spans = await _db_spans(server)
    assert len(spans) == 2 and spans[1]["ended_at"] is None
    assert abs(_epoch(spans[1]["started_at"]) - back) < 1e-3
    clock.advance(60)
    assert (await again.call("tutor:status", {"status": "away"}))["ok"]
    spans = await _db_spans(server)
    assert abs(_epoch(spans[1]["ended_at"]) - (back + 60)) < 1e-3
