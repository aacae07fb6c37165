"""The hot-path reader (broker/db/reader.py), on SQLite and PostgreSQL: the native backend
(a reader thread; asyncpg connections of its own) gives every store read the same rows as
SQLAlchemy does, sees what has committed, fails a bad read alone, and goes on after a
broken connection."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from broker.db.reader import AsyncpgReader, EngineReader, Reader, SqliteReader, reader_for
from broker.lifecycle_store import LifecycleStore
from tests.broker.conftest import prepare_database
from tests.broker.unit import Rig, broker_rig, student, tutor


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    """A broker (fake clock, memory backends) on a migrated SQLite file or PostgreSQL."""
    await prepare_database(database_url)
    async with broker_rig(database_url) as made:
        yield made


async def every_read(store: LifecycleStore, ids: dict[str, str]) -> dict[str, Any]:
    """Each of the store's standalone reads, with arguments that find rows."""
    queue = ids["queue"]
    return {
        "request": await store.request(ids["waiting"]),
        "missing request": await store.request("nope"),
        "open_request_of": await store.open_request_of("s-bo"),
        "open_request_of, together": await asyncio.gather(
            *(store.open_request_of(x) for x in ("s-bo", "s-cy", "s-ana", "s-bo", "nobody"))
        ),
        "position": await store.position(queue, float(ids["rank"]), ids["waiting"]),
        "queue": await store.queue(queue),
        "queue head": await store.queue(queue, limit=1),
        "queued": await store.queued(),
        "queue_figures": await store.queue_figures(),
        "accepts_since": await store.accepts_since(0.0),
        "open_session_counts": await store.open_session_counts(),
        "open_sessions": await store.open_sessions(),
        "open_sessions of tutor": await store.open_sessions(tutor="t-x"),
        "open_sessions of student": await store.open_sessions(student="s-ana"),
        "open_sessions by id": await store.open_sessions(session_id=ids["session"]),
        "open_session_clocks": await store.open_session_clocks(),
        "session": await store.session(ids["session"]),
        "messages_after": await store.messages_after(ids["session"], 0),
        "message_by_client_id": await store.message_by_client_id(ids["session"], "c-1"),
        "tutor_states": await store.tutor_states(),
        "tutor_state": await store.tutor_state("t-x"),
    }


async def populate(rig: Rig) -> dict[str, str]:
    """Ana in a session with tutor x (two messages), Bo and Cy waiting."""
    ana, bo, cy, x = student("s-ana"), student("s-bo"), student("s-cy"), tutor("t-x")
    first = await rig.ask(ana)
    rig.clock.advance(5)
    waiting = await rig.ask(bo)
    await rig.ask(cy)
    await rig.connect(x)
    rig.clock.advance(0.123457)  # microseconds, for the clocks read as integers
    session = str((await rig.broker.accept(x, first))["session_id"])
    rig.clock.advance(1.000001)
    await rig.broker.send(ana, session, "hi", client_id="c-1")
    await rig.broker.send(ana, session, "2+2?", client_id="c-2")
    row = await rig.request_row(waiting)
    return {"waiting": waiting, "session": session, "queue": str(row["queue"]),
            "rank": str(row["rank"])}


async def test_sqlite_reader_reads_as_sqlalchemy_does(rig: Rig) -> None:
    store = rig.broker.store
    native_kind = SqliteReader if rig.engine.dialect.name == "sqlite" else AsyncpgReader
    assert isinstance(store.reader, native_kind)
    ids = await populate(rig)
    native = await every_read(store, ids)
    store.reader = EngineReader(rig.engine)
    through_engine = await every_read(store, ids)
    for name, rows in through_engine.items():
        assert native[name] == rows, name
    for name in ("request", "queue", "queued", "open_sessions", "session", "messages_after",
                 "tutor_states", "queue_figures", "open_session_clocks"):
        assert native[name], f"{name} found nothing: the comparison would prove nothing"
    assert len(native["queue"][0]) == 2 and native["queue"][1] == 2
    assert len(native["queue head"][0]) == 1 and native["queue head"][1] == 2
    [clocks] = native["open_session_clocks"]
    session = native["session"]
    assert session is not None
    assert clocks[3] == session["accepted_at"].timestamp()  # exactly, to the microsecond
    assert clocks[4] == session["last_activity_at"].timestamp() != clocks[3]
    assert clocks[5] is None and session["first_response_at"] is None
    for key in ("queued_at", "requested_at"):
        when = native["request"][key]
        assert isinstance(when, dt.datetime) and when.utcoffset() == dt.timedelta(0), key


async def test_a_read_after_a_commit_sees_it(rig: Rig) -> None:
    store = rig.broker.store
    assert await store.open_request_of("s-ana") is None
    rid = await rig.ask(student("s-ana"))  # committed by the group committer's thread
    found = await store.open_request_of("s-ana")
    assert found is not None and found["id"] == rid
    await rig.broker.cancel(student("s-ana"), rid)
    assert await store.open_request_of("s-ana") is None


async def test_open_requests_looked_up_together_match_one_by_one(rig: Rig) -> None:
    """Many students at once (more than one statement's worth, repeats, nobodies): each
    gets what a lookup of their own gives, in fewer statements, and a copy of its own."""
    store = rig.broker.store
    names = [f"s-{i}" for i in range(40)]
    for name in names[::2]:
        await rig.ask(student(name))
    asked = [*names, "s-0", "s-1", "s-0"]
    one_by_one = [await store.open_request_of(x) for x in asked]
    before = store._open_of.sent
    together = await asyncio.gather(*(store.open_request_of(x) for x in asked))
    assert together == one_by_one
    assert [row is not None for row in together[:40]] == [i % 2 == 0 for i in range(40)]
    assert store._open_of.sent - before == 1
    first, again = together[0], together[40]
    assert first is not None and again is not None and first is not again


async def test_a_bad_read_fails_alone_and_the_reader_goes_on(rig: Rig) -> None:
    reader = rig.broker.store.reader
    missing = sa.table("no_such_table", sa.column("id"))
    with pytest.raises(DBAPIError):
        await reader.all(sa.select(missing.c.id))
    tutors = rig.broker.store.tutors
    assert await reader.all(sa.select(tutors.c.tutor_id)) == []


async def test_a_statement_expanded_at_execution_is_read_through_the_engine(rig: Rig) -> None:
    await rig.ask(student("s-ana"))
    r = rig.broker.store.requests
    expanding = sa.select(r.c.student).where(r.c.student.in_(["s-ana", "s-bo"]))
    assert await rig.broker.store.reader.all(expanding) == [{"student": "s-ana"}]


async def test_a_closed_reader_starts_again_on_the_next_read(rig: Rig) -> None:
    reader = rig.broker.store.reader
    tutors = rig.broker.store.tutors
    await reader.all(sa.select(tutors.c.tutor_id))
    await reader.close()
    assert await reader.all(sa.select(tutors.c.tutor_id)) == []


def test_an_in_memory_database_is_read_through_its_engine() -> None:
    from broker.db.engine import create_engine

    picked: Reader = reader_for(create_engine("sqlite+aiosqlite:///:memory:"))
    assert isinstance(picked, EngineReader)


async def test_a_reader_never_writes(rig: Rig) -> None:
    r = rig.broker.store.requests
    with pytest.raises(DBAPIError):
        await rig.broker.store.reader.all(
            r.delete().where(r.c.id == "x").returning(r.c.id)
        )


async def test_after_its_connection_is_killed_the_next_read_reconnects(
        postgres_url: str) -> None:
    """PostgreSQL: a read on a connection the server ended runs on a new connection and
    succeeds, whether or not asyncpg already saw the old one close (it used to fail with a
    database error when it had not, answering the page's event ``internal`` after the
    server was back)."""
    await prepare_database(postgres_url)
    async with broker_rig(postgres_url) as rig:
        await _reconnects(rig)


async def _reconnects(rig: Rig) -> None:
    reader = rig.broker.store.reader
    assert isinstance(reader, AsyncpgReader)
    await rig.ask(student("s-ana"))
    assert await rig.broker.store.open_request_of("s-ana")
    ended = await reader.scalar(sa.select(sa.func.pg_backend_pid().label("pid")))
    async with rig.engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
    assert (await rig.broker.store.open_request_of("s-ana") or {}).get("student") == "s-ana"
    now = await reader.scalar(sa.select(sa.func.pg_backend_pid().label("pid")))
    assert now != ended  # read on a new connection


async def test_a_fresh_process_tells_an_on_demand_session_from_a_room_by_its_row(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart every open session's first message reaches a process that has
    cached nothing of it: an on-demand session is told apart from a booked room by its
    row (one hot-path read, which also caches its participants), not by the rooms'
    queries (several statements through SQLAlchemy)."""
    ids = await populate(rig)
    broker = rig.broker
    broker._participants.clear()  # as in a process that has just started
    looked: list[object] = []

    async def load(ids: object) -> list[dict[str, Any]]:
        looked.append(ids)
        return []

    monkeypatch.setattr(broker.rooms, "_load", load)
    ana = student("s-ana")
    sent = await broker.send(ana, ids["session"], "3x = 9", client_id="c-3")
    assert sent["seq"] == 3
    await broker.typing(ana, ids["session"])
    assert looked == []
    assert ids["session"] in broker._participants
    with pytest.raises(Exception, match="no such open session"):
        await broker.send(ana, "no-such-session", "hello")
    assert looked == []
