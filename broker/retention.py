"""Retention: delete session metadata and chat messages the district no longer keeps.

What :func:`purge_engine` deletes, in one transaction:

* **chat messages** older than ``message_retention_days``; when that setting is ``0`` (the
  default: message bodies are relayed, kept only while their session is open) every
  message of a session that is not open is deleted, so turning retention off also clears
  what an earlier setting kept. An open session's messages are its buffer (what a
  reconnecting participant is sent again) and are never purged, nor a session's that ended
  less than ``BUFFER_AFTER_END_S`` ago (:func:`buffered_sessions`: found by the kill -9
  fault test, where the worker's purge at its start deleted a message acknowledged a
  moment before the session ended, before the tutor, reconnecting, could fetch it); a
  flagged session's are kept until its flags' review period ends (``safety_flags.keep_until``,
  ``HH_SAFETY_REVIEW_DAYS``), and a held message's words are deleted then;
* **topics and first names** of requests that are no longer open, on the same terms as
  messages (they are the student's own words);
* **sessions** that *ended* before ``now - metadata_retention_days`` (with their messages);
* **chat pictures** (:mod:`broker.media`) on the same terms as messages (not counted in
  the returned counts);
* **help requests** decided before that cutoff (``requested_at``) that are closed (any
  status but ``queued`` / ``accepted``) and no longer have a session; an older request
  that keeps a later session has its first acceptance and session count
  (:mod:`broker.request_rollup`) set from the sessions it still has.

It never deletes an open request or session, the roster, the accounts or the audit log.
``metadata_retention_days <= 0`` keeps metadata forever (no accidental "delete all").
It is **idempotent**: a second run with the same clock deletes nothing. It returns the
counts ``{"messages", "sessions", "requests"}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import request_rollup, safety_store
from broker.constants import BUFFER_AFTER_END_S, OPEN_STATUSES
from broker.db.engine import create_engine
from broker.db.models import metadata
from broker.media import store as media_store
from broker.settings import Settings

requests_t = metadata.tables["help_requests"]
sessions_t = metadata.tables["tutoring_sessions"]
messages_t = metadata.tables["chat_messages"]
flags_t = metadata.tables["safety_flags"]


def cutoffs(settings: Settings, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime]:
    """(metadata cutoff or None to keep forever, message cutoff)."""
    meta = (
        now - dt.timedelta(days=settings.metadata_retention_days)
        if settings.metadata_retention_days > 0
        else None
    )
    messages = now - dt.timedelta(days=max(settings.message_retention_days, 0))
    return meta, messages


def buffered_sessions(now: dt.datetime) -> sa.Select[Any]:
    """The sessions whose messages and pictures are a buffer at ``now``, never purged here:
    the open ones, and those that ended less than
    :data:`~broker.constants.BUFFER_AFTER_END_S` ago (a participant who missed the end, or
    a last message's push, fetches them with ``session:sync``; every serving process's
    sweep drops them after that, :meth:`LifecycleStore.drop_ended_buffers`)."""
    ended_since = now - dt.timedelta(seconds=BUFFER_AFTER_END_S)
    return sa.select(sessions_t.c.id).where(
        sa.or_(sessions_t.c.ended_at.is_(None), sessions_t.c.ended_at >= ended_since)
    )


async def purge_engine(
    engine: AsyncEngine, settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """Delete what is past retention on ``engine``'s database; return the counts."""
    now = now or dt.datetime.now(dt.UTC)
    meta_cutoff, message_cutoff = cutoffs(settings, now)
    counts = {"messages": 0, "sessions": 0, "requests": 0}
    async with engine.begin() as conn:
        expired_sessions = None
        if meta_cutoff is not None:
            expired_sessions = sa.select(sessions_t.c.id).where(
                sessions_t.c.ended_at.is_not(None), sessions_t.c.ended_at < meta_cutoff
            )
        old_messages: sa.ColumnElement[bool] = messages_t.c.at < message_cutoff
        old_requests: sa.ColumnElement[bool] = requests_t.c.closed_at < message_cutoff
        if settings.message_retention_days <= 0:
            old_messages = old_requests = sa.true()
        if expired_sessions is not None:
            old_messages = sa.or_(old_messages, messages_t.c.session_id.in_(expired_sessions))
        buffered = buffered_sessions(now)
        result = await conn.execute(
            messages_t.delete().where(
                old_messages,
                messages_t.c.session_id.not_in(buffered),
                messages_t.c.session_id.not_in(safety_store.kept_sessions(now)),
            )
        )
        await conn.execute(
            flags_t.update()
            .where(flags_t.c.keep_until <= now, flags_t.c.text.is_not(None))
            .values(text=None)
        )
        counts["messages"] = int(result.rowcount or 0)
        await media_store.purge(
            conn, now, message_cutoff, settings.message_retention_days > 0, buffered
        )
        await conn.execute(
            requests_t.update()
            .where(
                old_requests,
                requests_t.c.status.not_in(OPEN_STATUSES),
                sa.or_(requests_t.c.topic.is_not(None), requests_t.c.first_name.is_not(None)),
            )
            .values(topic=None, first_name=None)
        )
        if meta_cutoff is None:
            return counts
        result = await conn.execute(
            sessions_t.delete().where(
                sessions_t.c.ended_at.is_not(None), sessions_t.c.ended_at < meta_cutoff
            )
        )
        counts["sessions"] = int(result.rowcount or 0)
        has_session = sa.exists().where(sessions_t.c.request_id == requests_t.c.id)
        result = await conn.execute(
            requests_t.delete().where(
                requests_t.c.requested_at < meta_cutoff,
                requests_t.c.status.not_in(OPEN_STATUSES),
                ~has_session,
            )
        )
        counts["requests"] = int(result.rowcount or 0)
        # An old request kept for a later session (it was requeued across the cutoff) has
        # lost a session: its read model follows what its sessions now say.
        await request_rollup.refresh(
            conn, sa.and_(requests_t.c.requested_at < meta_cutoff, requests_t.c.session_count > 0)
        )
    return counts


async def purge(settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Purge ``settings.database_url`` (for ``homework-help purge`` and the scheduler)."""
    engine = create_engine(settings.database_url)
    try:
        return await purge_engine(engine, settings, now)
    finally:
        await engine.dispose()
