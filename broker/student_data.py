"""What the broker holds about one student (by pseudonym): staff reads, export and delete.

* :func:`read_student_records` is the staff read of a student's help requests and session
  metadata (never message text), held to the reader's scope: **district** staff see any
  student; **school** staff and teachers only the requests and sessions that name their
  school (a student with none there is :class:`~broker.errors.NotFound`, exactly like an
  unknown pseudonym); **vendor managers**, tutors and students are refused. Every answered
  read is audited (``student.sessions.read``) before the data is returned, and every
  refusal that names a student too (``student.sessions.refused``).

* :func:`export_student` returns everything the broker holds about a pseudonym: help
  requests, tutoring-session metadata, retained chat messages (only when the district
  turned message retention on), the pictures of their sessions still held
  (``chat_images``, bytes in base64), the booked rooms they joined (``booked_joins``) and
  the audit entries that name the pseudonym. Deleting removes the pictures with the
  sessions (``ON DELETE CASCADE``).
* :func:`delete_student` removes the student's chat messages, sessions and requests, and
  unlinks their pseudonym and first name from the booked rooms they joined, **in one
  transaction** together with one audit entry recording the deletion and its counts
  (the audit log keeps the fact of the deletion, not the data; earlier audit entries
  naming the pseudonym stay, being the record of who saw what). It refuses with
  :class:`~broker.errors.Conflict` while the student has a queued request or an open
  session, so live queue state never points at deleted rows; a second delete finds nothing
  and deletes nothing (but is audited too).

The roster (``students``) is keyed by the district's SIS id, which the pseudonym cannot be
turned back into; roster records are the district's SIS data and are corrected there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit
from broker.constants import OPEN_STATUSES
from broker.db.models import metadata
from broker.errors import Conflict, NotAllowed, NotFound
from broker.identity import Identity
from broker.media import store as media_store

requests_t = metadata.tables["help_requests"]
sessions_t = metadata.tables["tutoring_sessions"]
messages_t = metadata.tables["chat_messages"]
joins_t = metadata.tables["session_participants"]


def _plain(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in dict(row).items()}


async def export_student(engine: AsyncEngine, pseudonym: str) -> dict[str, Any]:
    """Everything held about ``pseudonym``, JSON-ready (datetimes as ISO 8601 text)."""
    async with engine.connect() as conn:
        reqs = (
            await conn.execute(
                sa.select(requests_t)
                .where(requests_t.c.student == pseudonym)
                .order_by(requests_t.c.requested_at, requests_t.c.id)
            )
        ).mappings().all()
        sess = (
            await conn.execute(
                sa.select(sessions_t)
                .where(sessions_t.c.student == pseudonym)
                .order_by(sessions_t.c.accepted_at, sessions_t.c.id)
            )
        ).mappings().all()
        msgs = (
            await conn.execute(
                sa.select(messages_t)
                .join(sessions_t, sessions_t.c.id == messages_t.c.session_id)
                .where(sessions_t.c.student == pseudonym)
                .order_by(messages_t.c.at, messages_t.c.id)
            )
        ).mappings().all()
        joins = (
            await conn.execute(
                sa.select(joins_t.c.session_id, joins_t.c.first_name, joins_t.c.joined_at)
                .where(joins_t.c.pseudonym == pseudonym)
                .order_by(joins_t.c.joined_at, joins_t.c.session_id)
            )
        ).mappings().all()
        entries = await audit.entries(conn, subject=pseudonym)
        pictures = await media_store.exported(conn, pseudonym)
    return {
        "pseudonym": pseudonym,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "help_requests": [_plain(r) for r in reqs],
        "tutoring_sessions": [_plain(s) for s in sess],
        "chat_messages": [_plain(m) for m in msgs],
        "booked_joins": [_plain(j) for j in joins],
        "chat_images": pictures,  # the pictures of their sessions (broker.media)
        "audit_entries": [_plain(e) for e in entries],
    }


async def delete_student(
    engine: AsyncEngine, pseudonym: str, actor: Identity, endpoint: str
) -> dict[str, int]:
    """Delete the student's messages, sessions and requests with one audit entry, atomically."""
    own_sessions = sa.select(sessions_t.c.id).where(sessions_t.c.student == pseudonym)
    async with engine.begin() as conn:
        open_requests = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    requests_t.c.student == pseudonym, requests_t.c.status.in_(OPEN_STATUSES)
                )
            )
        ).scalar_one()
        open_sessions = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    sessions_t.c.student == pseudonym, sessions_t.c.ended_at.is_(None)
                )
            )
        ).scalar_one()
        if open_requests or open_sessions:
            raise Conflict(
                "the student has a request or session in progress; try again once it ends"
            )
        counts = {
            "messages": (
                await conn.execute(
                    messages_t.delete().where(messages_t.c.session_id.in_(own_sessions))
                )
            ).rowcount
            or 0,
            "sessions": (
                await conn.execute(sessions_t.delete().where(sessions_t.c.student == pseudonym))
            ).rowcount
            or 0,
            "requests": (
                await conn.execute(requests_t.delete().where(requests_t.c.student == pseudonym))
            ).rowcount
            or 0,
            # booked rooms they joined: the link to the pseudonym and the first name go
            # (the roster's row of the booking is the district's, corrected there)
            "booked_joins": (
                await conn.execute(
                    joins_t.update().where(joins_t.c.pseudonym == pseudonym)
                    .values(pseudonym=None, first_name=None)
                )
            ).rowcount
            or 0,
        }
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        await audit.record(conn, actor, "student.delete", pseudonym, endpoint, detail)
    return {k: int(v) for k, v in counts.items()}


REQUEST_FIELDS = (
    "id", "school_id", "school_kind", "grade", "language", "subject", "vendor", "overflow",
    "unmet_reason", "status", "requested_at", "queued_at", "accepted_at", "closed_at",
    "close_reason",
)
SESSION_FIELDS = (
    "id", "request_id", "vendor", "tutor_id", "language", "subject", "school_id",
    "school_kind", "grade", "queued_at", "accepted_at", "ended_at", "end_reason", "outcome",
    "tutored_subject", "resolved", "messages_student", "messages_tutor", "rating_helped",
    "rating_stars", "tutor_notes",
)


def _fields(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: (v.isoformat() if isinstance(v := row[f], dt.datetime) else v) for f in fields}


async def read_student_records(
    engine: AsyncEngine, reader: Identity, pseudonym: str, endpoint: str
) -> dict[str, Any]:
    """A student's requests and sessions as ``reader`` may see them (see the module
    docstring); the read, or its refusal, is audited."""
    scope = reader.scope if reader.is_staff else None
    if scope is None or not scope.reads_student_records:
        why = f"role={reader.role} scope={scope.kind if scope else None}"
        await audit.record(engine, reader, "student.sessions.refused", pseudonym, endpoint, why)
        if reader.is_staff and scope is None:
            reader.require_scope()  # says why this staff account has no usable scope
        raise NotAllowed("your role does not give access to students' records")
    req_query = sa.select(requests_t).where(requests_t.c.student == pseudonym)
    ses_query = sa.select(sessions_t).where(sessions_t.c.student == pseudonym)
    if scope.school is not None:
        req_query = req_query.where(requests_t.c.school_id == scope.school)
        ses_query = ses_query.where(sessions_t.c.school_id == scope.school)
    async with engine.connect() as conn:
        reqs = (await conn.execute(req_query.order_by(requests_t.c.requested_at))).mappings().all()
        sess = (await conn.execute(ses_query.order_by(sessions_t.c.accepted_at))).mappings().all()
    if not reqs and not sess:
        if scope.school is not None:
            await audit.record(engine, reader, "student.sessions.refused", pseudonym,
                               endpoint, f"not in school {scope.school}")
        raise NotFound("no such student" + (" in your school" if scope.school else ""))
    await audit.record(
        engine, reader, "student.sessions.read", pseudonym, endpoint,
        f"scope={scope.label()} requests={len(reqs)} sessions={len(sess)}",
    )
    return {
        "student": pseudonym,
        "requests": [_fields(r, REQUEST_FIELDS) for r in reqs],
        "sessions": [_fields(s, SESSION_FIELDS) for s in sess],
    }
