"""The staff reports' read model on each request: ``first_accepted_at`` and ``session_count``.

They are derived facts: a request's first session's ``accepted_at`` and its number of
sessions. The transaction that opens a session writes both
(:meth:`broker.lifecycle_store.LifecycleStore.accept`: ``coalesce`` keeps the first
acceptance through a requeue, the count goes up by one), so they never disagree with the
sessions while the broker is what writes. Migration 0019 filled them from the sessions;
:func:`refresh` does the same for rows written behind the broker's back (test and bench
seeders, an import), and :func:`mismatches` finds any request whose columns differ from
its sessions (the tests run it after real traffic; an operator can run it too).

Why: over a school year, joining every session to its request took about 100-120 ms on
PostgreSQL before any figure was computed; reading the columns makes each report one pass
over ``help_requests`` (docs/stats.md, "Performance").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.db.models import Base

r = Base.metadata.tables["help_requests"]
s = Base.metadata.tables["tutoring_sessions"]


def fill_rows(
    requests: Iterable[dict[str, Any]], sessions: Iterable[Mapping[str, Any]]
) -> None:
    """Set ``first_accepted_at`` and ``session_count`` on request rows about to be inserted
    from their session rows, as the broker's accepting transactions would have (for
    seeders and imports that write both tables directly)."""
    first: dict[Any, Any] = {}
    count: dict[Any, int] = {}
    for session in sessions:
        rid = session.get("request_id")
        if rid is None:
            continue
        count[rid] = count.get(rid, 0) + 1
        at = session["accepted_at"]
        if rid not in first or at < first[rid]:
            first[rid] = at
    for row in requests:
        row["first_accepted_at"] = first.get(row["id"])
        row["session_count"] = count.get(row["id"], 0)


def _derived() -> sa.Subquery:
    """Per request with a session: its first ``accepted_at`` and its number of sessions."""
    return (
        sa.select(
            s.c.request_id,
            sa.func.min(s.c.accepted_at).label("first"),
            sa.func.count().label("n"),
        )
        .where(s.c.request_id.is_not(None))
        .group_by(s.c.request_id)
        .subquery("derived")
    )


async def refresh(conn: AsyncConnection, among: sa.ColumnElement[bool] | None = None) -> int:
    """Set the columns of every request (or of those matching ``among``, a condition on
    ``help_requests``) from its sessions, in the caller's transaction; return how many of
    those requests have a session (the first update's row count: no extra pass over the
    sessions). Retention calls it for the old requests whose sessions it deleted
    (broker/retention.py), seeders for the rows they wrote."""
    scope: sa.ColumnElement[bool] = sa.true() if among is None else among
    has_session = r.c.id.in_(sa.select(s.c.request_id).where(s.c.request_id.is_not(None)))
    first = (
        sa.select(sa.func.min(s.c.accepted_at)).where(s.c.request_id == r.c.id).scalar_subquery()
    )
    count = sa.select(sa.func.count()).where(s.c.request_id == r.c.id).scalar_subquery()
    updated = await conn.execute(
        r.update().where(scope, has_session).values(first_accepted_at=first, session_count=count)
    )
    await conn.execute(
        r.update()
        .where(scope, ~has_session)
        .where(sa.or_(r.c.session_count != 0, r.c.first_accepted_at.is_not(None)))
        .values(first_accepted_at=None, session_count=0)
    )
    return int(updated.rowcount or 0)


async def mismatches(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    """Requests whose ``first_accepted_at`` or ``session_count`` differ from their
    sessions (at most ``limit``); empty when the read model is true."""
    d = _derived()
    n = sa.func.coalesce(d.c.n, 0)
    stmt = (
        sa.select(r.c.id, r.c.first_accepted_at, r.c.session_count, d.c.first, n.label("n"))
        .select_from(r.outerjoin(d, d.c.request_id == r.c.id))
        .where(
            sa.or_(
                r.c.session_count != n,
                sa.and_(d.c.first.is_(None), r.c.first_accepted_at.is_not(None)),
                sa.and_(d.c.first.is_not(None), r.c.first_accepted_at.is_(None)),
                r.c.first_accepted_at != d.c.first,
            )
        )
        .limit(limit)
    )
    return [dict(row._mapping) for row in await conn.execute(stmt)]
