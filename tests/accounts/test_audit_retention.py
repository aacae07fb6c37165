"""Audit log (append-only in the database), retention purge, student export and delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from broker import audit, request_rollup
from broker.constants import BUFFER_AFTER_END_S
from broker.errors import Conflict
from broker.retention import purge
from broker.settings import Settings
from broker.student_data import delete_student, export_student
from broker.tokens import Identity
from tests.accounts.conftest import count, seed_history

STAFF = Identity("staff", "acct-1", {"scope": "district"})


async def test_audit_is_append_only_in_the_database(migrated: str, engine_of: Any) -> None:
    engine = engine_of(migrated)
    await audit.record(engine, STAFF, "student.sessions.read", "s-ana", "GET /x", "one")
    await audit.record(engine, STAFF, "student.sessions.read", "s-ben", "GET /y")
    for statement in (
        "UPDATE audit_log SET subject = 'someone-else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE subject = 's-ana'",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement))
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text("TRUNCATE audit_log"))
    rows = await audit.entries(engine)
    assert [(r["subject"], r["detail"]) for r in rows] == [("s-ana", "one"), ("s-ben", "")]
    assert [r["subject"] for r in await audit.entries(engine, subject="s-ben")] == ["s-ben"]


def test_audit_module_offers_no_update_or_delete() -> None:
    public = {n for n in dir(audit) if not n.startswith("_") and callable(getattr(audit, n))}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "purge"))}


def test_csv_export_neutralises_formulas() -> None:
    text = audit.to_csv([{"id": 1, "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
                          "actor": "=HYPERLINK(1)", "actor_role": "staff", "action": "a",
                          "subject": None, "endpoint": "e", "detail": "@x"}])
    header, line = text.strip().split("\r\n")
    assert header == "id,at,actor,actor_role,action,subject,endpoint,detail"
    assert line == "1,2024-01-02T00:00:00+00:00,'=HYPERLINK(1),staff,a,,e,'@x"


async def test_purge_deletes_expired_metadata_and_messages_idempotently(
    migrated: str, engine_of: Any
) -> None:
    settings = Settings(database_url=migrated, metadata_retention_days=365,
                        message_retention_days=30)
    old = await seed_history(migrated, "s-old", "elem", days_ago=400, messages=2)
    mid = await seed_history(migrated, "s-mid", "elem", days_ago=60, messages=3)
    new = await seed_history(migrated, "s-new", "elem", days_ago=1, messages=1)
    # an old request that is still open (a session left open) is never purged
    await seed_history(migrated, "s-open", "elem", days_ago=500, status="accepted", ended=False)
    await audit.record(engine_of(migrated), STAFF, "x", "s-old", "e")
    counts = await purge(settings)
    assert counts == {"messages": 5, "sessions": 1, "requests": 1}
    assert await count(migrated, "help_requests", id=old[0]) == 0
    assert await count(migrated, "tutoring_sessions", id=old[1]) == 0
    assert await count(migrated, "tutoring_sessions", id=mid[1]) == 1
    assert await count(migrated, "chat_messages", session_id=new[1]) == 1
    assert await count(migrated, "help_requests", student="s-open") == 1
    assert await count(migrated, "audit_log") == 1  # the audit log is not retention's
    assert await purge(settings) == {"messages": 0, "sessions": 0, "requests": 0}


async def test_purge_of_an_earlier_session_leaves_the_requests_read_model_true(
    migrated: str, engine_of: Any
) -> None:
    """A request requeued across the cutoff keeps its later session; its first acceptance
    and session count (broker/request_rollup.py) then say what its sessions say."""
    settings = Settings(database_url=migrated, metadata_retention_days=365)
    rid, _ = await seed_history(migrated, "s-req", "elem", days_ago=400)
    later = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    engine = engine_of(migrated)
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "update help_requests set session_count = 2 where id = :rid"), {"rid": rid})
        await conn.execute(sa.text(
            "insert into tutoring_sessions (id, request_id, student, vendor, tutor_id,"
            " language, subject, school_id, school_kind, grade, queued_at, accepted_at,"
            " ended_at, end_reason) values ('s-later', :rid, 's-req', 'paper', 't-x', 'en',"
            " 'math', 'elem', 'elementary', 3, :at, :at, :at, 'tutor')"),
            {"rid": rid, "at": later})
    assert (await purge(settings))["sessions"] == 1
    assert await count(migrated, "help_requests", id=rid) == 1
    async with engine.connect() as conn:
        assert await request_rollup.mismatches(conn) == []
        row = (await conn.execute(sa.text(
            "select session_count from help_requests where id = :rid"), {"rid": rid})).one()
    assert row.session_count == 1


async def test_message_retention_zero_keeps_no_messages(sqlite_db: str) -> None:
    await seed_history(sqlite_db, "s-a", "elem", days_ago=0.1, messages=2)
    settings = Settings(database_url=sqlite_db, message_retention_days=0)
    assert await purge(settings) == {"messages": 2, "sessions": 0, "requests": 0}


async def test_an_open_sessions_messages_are_its_buffer_and_never_purged(
    migrated: str, engine_of: Any
) -> None:
    _, open_sid = await seed_history(
        migrated, "s-open", "elem", days_ago=0, messages=2, status="accepted", ended=False
    )
    await seed_history(migrated, "s-done", "elem", days_ago=0.1, messages=3)
    engine = engine_of(migrated)
    async with engine.begin() as conn:
        await conn.execute(sa.text("update help_requests set topic = 'my words'"))
    settings = Settings(database_url=migrated, message_retention_days=0)
    assert (await purge(settings))["messages"] == 3
    assert await count(migrated, "chat_messages", session_id=open_sid) == 2
    async with engine.connect() as conn:
        topics = dict((await conn.execute(
            sa.text("select student, topic from help_requests"))).all())
    assert topics == {"s-open": "my words", "s-done": None}


async def test_a_just_ended_sessions_messages_stay_its_buffer_for_two_minutes(
    migrated: str, engine_of: Any
) -> None:
    """With retention off, an ended session's messages stay BUFFER_AFTER_END_S (what a
    participant who missed the end or a last push fetches with session:sync), whenever the
    purge runs; then it deletes them. Found by the kill -9 fault test: the worker's purge,
    run at its start, deleted a message acknowledged just before the session ended, and
    the tutor, reconnecting a moment later, could not fetch it."""
    _, sid = await seed_history(migrated, "s-end", "elem", days_ago=0, messages=2)
    engine = engine_of(migrated)
    async with engine.connect() as conn:
        ended = (await conn.execute(sa.text(
            "select ended_at from tutoring_sessions where id = :sid"), {"sid": sid})).scalar_one()
    ended = ended if isinstance(ended, dt.datetime) else dt.datetime.fromisoformat(str(ended))
    ended = ended if ended.tzinfo else ended.replace(tzinfo=dt.UTC)
    settings = Settings(database_url=migrated, message_retention_days=0)
    buffer = dt.timedelta(seconds=BUFFER_AFTER_END_S)
    for after in (dt.timedelta(0), dt.timedelta(seconds=60), buffer - dt.timedelta(seconds=1)):
        assert (await purge(settings, ended + after))["messages"] == 0
        assert await count(migrated, "chat_messages", session_id=sid) == 2
    assert (await purge(settings, ended + buffer + dt.timedelta(seconds=1)))["messages"] == 2
    assert await count(migrated, "chat_messages", session_id=sid) == 0


async def test_metadata_retention_off_keeps_everything(sqlite_db: str) -> None:
    await seed_history(sqlite_db, "s-a", "elem", days_ago=5000)
    settings = Settings(database_url=sqlite_db, metadata_retention_days=0)
    assert await purge(settings) == {"messages": 0, "sessions": 0, "requests": 0}


async def test_export_and_delete_one_student(migrated: str, engine_of: Any) -> None:
    engine = engine_of(migrated)
    rid, sid = await seed_history(migrated, "s-ana", "elem", days_ago=3, messages=2)
    other = await seed_history(migrated, "s-ben", "elem", days_ago=3, messages=1)
    await audit.record(engine, STAFF, "student.sessions.read", "s-ana", "GET /x")

    data = await export_student(engine, "s-ana")
    assert [r["id"] for r in data["help_requests"]] == [rid]
    assert [s["id"] for s in data["tutoring_sessions"]] == [sid]
    assert [m["text"] for m in data["chat_messages"]] == ["msg 0", "msg 1"]
    assert [e["action"] for e in data["audit_entries"]] == ["student.sessions.read"]
    assert "s-ben" not in str(data)

    counts = await delete_student(engine, "s-ana", STAFF, "cli:student delete")
    assert counts == {"messages": 2, "sessions": 1, "requests": 1, "booked_joins": 0}
    left = await export_student(engine, "s-ana")
    assert left["help_requests"] == left["tutoring_sessions"] == left["chat_messages"] == []
    actions = [(e["action"], e["detail"]) for e in left["audit_entries"]]
    assert actions[-1] == (
        "student.delete", "messages=2, sessions=1, requests=1, booked_joins=0")
    assert "msg" not in str(left["audit_entries"])  # the fact, not the data
    assert await count(migrated, "chat_messages", session_id=other[1]) == 1
    assert await delete_student(engine, "s-ana", STAFF, "cli") == {
        "messages": 0, "sessions": 0, "requests": 0, "booked_joins": 0}


async def test_delete_refuses_while_a_session_is_open(sqlite_db: str, engine_of: Any) -> None:
    engine = engine_of(sqlite_db)
    await seed_history(sqlite_db, "s-ana", "elem", status="accepted", ended=False)
    with pytest.raises(Conflict):
        await delete_student(engine, "s-ana", STAFF, "cli")
    assert await count(sqlite_db, "help_requests", student="s-ana") == 1
    assert await count(sqlite_db, "audit_log") == 0
