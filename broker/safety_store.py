"""The SQL of chat safety (:mod:`broker.safety`): flags for staff review, staff alerts, and
the staff actions on them. Nothing here decides anything; the rules are
:mod:`broker.safety`'s and :mod:`broker.moderation`'s.

Guarantees:

* :func:`add_flag` and :func:`raise_alert` are idempotent: a resend of a held message
  (same ``client_id``) makes no second flag, and an alert already open under its
  ``dedupe_key`` (a partial unique index) is not raised again, so every process may raise
  the same alert and it is recorded once. Each returns whether it inserted.
* :func:`review` decides an open flag at most once (guarded by ``status = 'open'``), and
  writes its audit entry in the same transaction.
* :func:`suspend_account` disables a tutor's account and decides every open flag against
  them in one transaction with its audit entry and the vendor's notice.
* :func:`flag_context` (the flagged session's messages) writes its audit entry in the
  transaction that reads, so no staff read of a child's words goes unrecorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit, duty, outbox
from broker.db.engine import dialect_insert
from broker.db.models import metadata
from broker.identity import Identity

Row = dict[str, Any]

flags = metadata.tables["safety_flags"]
alerts = metadata.tables["staff_alerts"]
messages = metadata.tables["chat_messages"]
sessions = metadata.tables["tutoring_sessions"]
users = metadata.tables["users"]
tutor_states = metadata.tables["tutor_states"]

OPEN = "open"


def kept_sessions(now: datetime) -> sa.Select[Any]:
    """The sessions whose messages are kept for review at ``now`` (for retention)."""
    return sa.select(flags.c.session_id).where(flags.c.keep_until > now)


async def add_flag(engine: AsyncEngine, values: Mapping[str, Any]) -> bool:
    """Insert one flag; ``False`` if a flag with its session and ``client_id`` exists."""
    stmt = dialect_insert(engine, flags).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["session_id", "client_id"])
    async with engine.begin() as conn:
        return bool((await conn.execute(stmt)).rowcount)


async def raise_alert(
    engine: AsyncEngine, values: Mapping[str, Any], notices: Sequence[Mapping[str, Any]] = ()
) -> bool:
    """Open an alert (and enqueue its ``notices``, in the same transaction) unless one is
    already open under its ``dedupe_key``; ``True`` if this call opened it."""
    stmt = dialect_insert(engine, alerts).values(**values).on_conflict_do_nothing(
        index_elements=["dedupe_key"], index_where=alerts.c.cleared_at.is_(None)
    )
    async with engine.begin() as conn:
        opened = bool((await conn.execute(stmt)).rowcount)
        if opened and notices:
            await outbox.enqueue(conn, list(notices))
    return opened


async def clear_alerts(engine: AsyncEngine, kind: str, keys: Sequence[str], now: datetime) -> int:
    """Clear the open ``kind`` alerts under ``keys``; return how many."""
    if not keys:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            alerts.update()
            .where(alerts.c.kind == kind, alerts.c.dedupe_key.in_(list(keys)),
                   alerts.c.cleared_at.is_(None))
            .values(cleared_at=now)
        )
    return int(result.rowcount or 0)


async def open_alert_keys(engine: AsyncEngine, kind: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(alerts.c.dedupe_key).where(
                alerts.c.kind == kind, alerts.c.cleared_at.is_(None)
            )
        )
        return {str(key) for (key,) in rows}


def _scoped(query: sa.Select[Any], table: sa.Table, school_id: str | None) -> sa.Select[Any]:
    return query if school_id is None else query.where(table.c.school_id == school_id)


async def list_flags(
    engine: AsyncEngine, school_id: str | None, *, status: str | None = OPEN, limit: int = 200
) -> list[Row]:
    """Flags (newest first) of one school, or all when ``school_id`` is None, without
    their words (:func:`flag_context` reads those, audited)."""
    columns = [c for c in flags.c if c.name not in ("text", "client_id")]
    query = _scoped(sa.select(*columns), flags, school_id)
    if status is not None:
        query = query.where(flags.c.status == status)
    query = query.order_by(flags.c.created_at.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_flag(engine: AsyncEngine, flag_id: str) -> Row | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(flags).where(flags.c.id == flag_id))).mappings()
        found = row.first()
    return dict(found) if found else None


async def flag_context(
    engine: AsyncEngine, flag: Mapping[str, Any], actor: Identity, endpoint: str
) -> list[Row]:
    """The flagged session's kept messages (and the flag's own held words), audited."""
    query = (
        sa.select(messages.c.seq, messages.c.sender, messages.c.text, messages.c.at)
        .where(messages.c.session_id == flag["session_id"])
        .order_by(messages.c.seq)
    )
    async with engine.begin() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        await audit.record(
            conn, actor, "safety.read_messages", flag["session_id"], endpoint,
            f"flag={flag['id']} messages={len(rows)}",
        )
    return rows


async def review(
    engine: AsyncEngine, flag_id: str, status: str, actor: Identity, endpoint: str,
    now: datetime,
) -> bool:
    """Decide an open flag (``dismissed`` / ``session_ended``); ``False`` if it was not
    open. Audited in the same transaction."""
    async with engine.begin() as conn:
        result = await conn.execute(
            flags.update()
            .where(flags.c.id == flag_id, flags.c.status == OPEN)
            .values(status=status, reviewed_by=actor.subject, reviewed_at=now)
        )
        if not result.rowcount:
            return False
        await audit.record(conn, actor, f"safety.{status}", flag_id, endpoint, at=now)
    return True


async def suspend_account(
    engine: AsyncEngine, tutor_id: str, actor: Identity, endpoint: str, now: datetime,
    notices: Sequence[Mapping[str, Any]] = (), flag_id: str | None = None,
) -> bool:
    """Disable the tutor's account, set them away (off duty), and decide their open flags as
    ``tutor_suspended``, with the audit entry and the notices, in one transaction;
    ``False`` (nothing changed) if no account has that id."""
    async with engine.begin() as conn:
        result = await conn.execute(
            users.update().where(users.c.id == tutor_id, users.c.role == "tutor")
            .values(disabled=True)
        )
        if not result.rowcount:
            return False
        # Not on shift any more: no wait estimate or staff figure counts them.
        await conn.execute(
            tutor_states.update().where(tutor_states.c.tutor_id == tutor_id)
            .values(status="away", updated_at=now)
        )
        await duty.close_spans(conn, tutor_id, now)  # off duty with it (broker/duty.py)
        await conn.execute(
            flags.update()
            .where(flags.c.tutor_id == tutor_id, flags.c.status == OPEN)
            .values(status="tutor_suspended", reviewed_by=actor.subject, reviewed_at=now)
        )
        await audit.record(
            conn, actor, "safety.suspend_tutor", tutor_id, endpoint,
            f"flag={flag_id}" if flag_id else "", at=now,
        )
        if notices:
            await outbox.enqueue(conn, list(notices))
    return True


async def list_alerts(
    engine: AsyncEngine, school_id: str | None, *, open_only: bool = True, limit: int = 100
) -> list[Row]:
    """Alerts, newest first; a school's staff see their school's and the queue-wide ones
    (``no_tutor`` has no school)."""
    query = sa.select(alerts)
    if school_id is not None:
        query = query.where(sa.or_(alerts.c.school_id == school_id, alerts.c.school_id.is_(None)))
    if open_only:
        query = query.where(alerts.c.cleared_at.is_(None))
    query = query.order_by(alerts.c.raised_at.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def acknowledge_alert(
    engine: AsyncEngine, alert_id: str, actor: Identity, endpoint: str, now: datetime,
    school_id: str | None,
) -> bool:
    """Mark an open alert seen (a distress alert is cleared by it: staff have it); audited.
    ``False`` if there is no such open alert in the caller's scope."""
    where = [alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None)]
    if school_id is not None:
        where.append(alerts.c.school_id == school_id)
    async with engine.begin() as conn:
        result = await conn.execute(
            alerts.update().where(*where).values(
                acknowledged_by=actor.subject, acknowledged_at=now,
                cleared_at=sa.case((alerts.c.kind == "distress", now), else_=alerts.c.cleared_at),
            )
        )
        if not result.rowcount:
            return False
        await audit.record(conn, actor, "safety.acknowledge_alert", alert_id, endpoint, at=now)
    return True
