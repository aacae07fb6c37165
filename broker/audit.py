"""The audit log: who read or removed which student's records, when, through which endpoint.

Guarantees:

* **Append-only.** This module offers :func:`record` and reads; it has no update or delete
  function, and no other module of the broker writes ``audit_log`` except by
  :func:`record`. Migration ``0002`` adds database triggers (PostgreSQL and SQLite) that
  refuse ``UPDATE`` and ``DELETE`` (and ``TRUNCATE`` on PostgreSQL) on the table, so even
  a bug or a hand-written statement through the application's role cannot rewrite it.
* **No personal data beyond the pseudonym**: ``subject`` is a student pseudonym, ``actor``
  an account id (or ``cli:<user>`` for commands), ``detail`` a short free text the caller
  must keep free of names and message text. Student data deletion keeps the audit entries
  (and adds one saying that the data was deleted), never the deleted data.
* :func:`record` can join the caller's transaction (pass an ``AsyncConnection``), so an
  action and its audit entry commit or roll back together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import csv_export
from broker.db.models import metadata
from broker.errors import NotAllowed
from broker.identity import Identity

audit_log = metadata.tables["audit_log"]
CSV_COLUMNS = ("id", "at", "actor", "actor_role", "action", "subject", "endpoint", "detail")
_MAX = {"actor": 64, "actor_role": 16, "action": 64, "subject": 64, "endpoint": 200,
        "detail": 500}


def _clip(name: str, value: str) -> str:
    return value[: _MAX[name]]


async def record(
    db: AsyncEngine | AsyncConnection,
    actor: Identity,
    action: str,
    subject: str | None,
    endpoint: str,
    detail: str = "",
    *,
    at: dt.datetime | None = None,
) -> None:
    """Append one entry. With an ``AsyncConnection`` it joins that connection's transaction;
    with an engine it commits on its own."""
    values = {
        "at": at or dt.datetime.now(dt.UTC),
        "actor": _clip("actor", actor.subject),
        "actor_role": _clip("actor_role", actor.role),
        "action": _clip("action", action),
        "subject": _clip("subject", subject) if subject is not None else None,
        "endpoint": _clip("endpoint", endpoint),
        "detail": _clip("detail", detail),
    }
    if isinstance(db, AsyncConnection):
        await db.execute(audit_log.insert().values(**values))
        return
    async with db.begin() as conn:
        await conn.execute(audit_log.insert().values(**values))


async def entries(
    db: AsyncEngine | AsyncConnection,
    *,
    subject: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Entries in the order they were written, optionally about one subject / in a period."""
    query = sa.select(audit_log).order_by(audit_log.c.id)
    if subject is not None:
        query = query.where(audit_log.c.subject == subject)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if isinstance(db, AsyncConnection):
        rows: Sequence[Any] = (await db.execute(query)).mappings().all()
    else:
        async with db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [dict(r) for r in rows]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The entries as CSV (header row first); formula-like cells are quoted with ``'``."""
    return csv_export.to_csv(CSV_COLUMNS, ([row.get(c) for c in CSV_COLUMNS] for row in rows))


async def export_csv(
    engine: AsyncEngine, actor: Identity, endpoint: str,
    since: dt.datetime | None = None, until: dt.datetime | None = None,
) -> str:
    """The log (or a period of it) as CSV, for district-scope staff only; the export is
    itself audited."""
    scope = actor.require_scope() if actor.is_staff else None
    if actor.role != "staff" or scope is None or scope.kind != "district":
        raise NotAllowed("the audit log is for district staff")
    rows = await entries(engine, since=since, until=until)
    await record(engine, actor, "audit.export", None, endpoint, f"rows={len(rows)}")
    return to_csv(rows)
