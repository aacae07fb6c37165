"""Persistence of the request and session lifecycle.

One method per state change, each one transaction, so the hot path writes the database
exactly once per change (requested+queued or unmet, accepted, ended / cancelled /
abandoned / expired, requeued). Message bodies are written only when the district turned
on retention. Everything here survives a restart; the queues are rebuilt from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.commit import GroupCommitter, committer_for
from broker.constants import OPEN_STATUSES
from broker.db.models import Base

UTC = dt.UTC


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    tables = Base.metadata.tables
    return tables["help_requests"], tables["tutoring_sessions"], tables["chat_messages"]


def at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


SESSION_END_FIELDS = (
    "ended_at",
    "end_reason",
    "outcome",
    "tutored_subject",
    "resolved",
    "messages_student",
    "messages_tutor",
    "chars_student",
    "chars_tutor",
    "first_response_s",
)


def _bound(table: sa.Table, names: Sequence[str]) -> dict[str, Any]:
    """SET clause of bind parameters ``v_<column>`` (column names are reserved for VALUES)."""
    return {n: sa.bindparam("v_" + n, type_=table.c[n].type) for n in names}


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {"v_" + k: v for k, v in values.items()}


class LifecycleStore:
    """The hot-path statements are built once; each call only binds its parameters, and the
    state-change writes go through one :class:`GroupCommitter`, so concurrent changes share
    a transaction while each caller still returns only after its own commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writer: GroupCommitter = committer_for(engine)
        self.requests, self.sessions, self.messages = _tables()
        r, s = self.requests, self.sessions
        self._insert_request = r.insert()
        self._insert_session = s.insert()
        self._accept_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(status="accepted", **_bound(r, ["accepted_at"]))
        )
        self._end_session = (
            s.update().where(s.c.id == sa.bindparam("sid")).values(**_bound(s, SESSION_END_FIELDS))
        )
        self._end_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(status="ended", **_bound(r, ["closed_at", "close_reason"]))
        )
        self._requeue_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(status="queued", accepted_at=None)
        )
        self._close_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"), r.c.status == "queued")
            .values(
                status=sa.bindparam("new_status"),
                closed_at=sa.bindparam("when", type_=r.c.closed_at.type),
                close_reason=sa.bindparam("reason"),
            )
        )
        self._open_request_of = (
            sa.select(r)
            .where(
                r.c.student == sa.bindparam("student"),
                # or_ rather than in_: no "expanding" parameter to post-compile per call
                sa.or_(*(r.c.status == status for status in OPEN_STATUSES)),
            )
            .order_by(r.c.requested_at.desc())
            .limit(1)
        )

    async def close(self) -> None:
        """Finish pending writes."""
        await self.writer.close()

    async def record_request(self, row: dict[str, Any]) -> None:
        """Insert a request already decided: status ``queued`` or ``unmet``."""
        await self.writer.write([(self._insert_request, row)])

    async def close_request(
        self, request_id: str, status: str, when: float, reason: str | None = None
    ) -> bool:
        """Move a queued request to cancelled / abandoned / expired. False if not queued."""
        params = {
            "rid": request_id,
            "new_status": status,
            "when": at(when),
            "reason": reason or status,
        }
        [count] = await self.writer.write([(self._close_request, params)])
        return bool(count)

    async def start_session(self, row: dict[str, Any]) -> None:
        """Insert the session and mark its request accepted, in one transaction."""
        await self.writer.write(
            [
                (self._insert_session, row),
                (
                    self._accept_request,
                    {"rid": row["request_id"], "v_accepted_at": row["accepted_at"]},
                ),
            ]
        )

    async def end_session(
        self, session_id: str, request_id: str, values: dict[str, Any], *, requeue: bool
    ) -> None:
        """Close the session; its request ends too, or goes back to ``queued`` on requeue.

        A requeued request keeps its original ``queued_at`` so it regains its place.
        """
        end = (self._end_session, {"sid": session_id, **_params(values)})
        if requeue:
            then = (self._requeue_request, {"rid": request_id})
        else:
            closed = {"closed_at": values["ended_at"], "close_reason": values["end_reason"]}
            then = (self._end_request, {"rid": request_id, **_params(closed)})
        await self.writer.write([end, then])

    async def rate(self, session_id: str, student: str, helped: bool | None, stars: int) -> bool:
        """Store a rating of an ended session by its own student. False if not theirs/ended."""
        s = self.sessions
        async with self.engine.begin() as conn:
            result = await conn.execute(
                s.update()
                .where(s.c.id == session_id, s.c.student == student, s.c.ended_at.is_not(None))
                .values(rating_helped=helped, rating_stars=stars)
            )
        return bool(result.rowcount)

    async def set_outcome(
        self,
        session_id: str,
        tutor_id: str,
        outcome: str | None,
        tutored_subject: str | None,
        resolved: bool | None,
    ) -> bool:
        """The tutor's account of an ended session of theirs. False if not theirs/ended."""
        s = self.sessions
        async with self.engine.begin() as conn:
            result = await conn.execute(
                s.update()
                .where(s.c.id == session_id, s.c.tutor_id == tutor_id, s.c.ended_at.is_not(None))
                .values(outcome=outcome, tutored_subject=tutored_subject, resolved=resolved)
            )
        return bool(result.rowcount)

    async def store_message(
        self, message_id: str, session_id: str, sender: str, text: str, when: float
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                self.messages.insert().values(
                    id=message_id, session_id=session_id, sender=sender, text=text, at=at(when)
                )
            )

    async def open_request_of(self, student: str) -> dict[str, Any] | None:
        """The student's queued or accepted request, if any (newest first)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(self._open_request_of, {"student": student})
            row = result.mappings().first()
        return dict(row) if row else None

    async def queued_requests(self) -> Sequence[dict[str, Any]]:
        r = self.requests
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(r).where(r.c.status == "queued").order_by(r.c.queued_at, r.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows]

    async def open_sessions(self) -> Sequence[dict[str, Any]]:
        s, r = self.sessions, self.requests
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(s, r.c.priority, r.c.queue, r.c.groups)
                        .join(r, r.c.id == s.c.request_id)
                        .where(s.c.ended_at.is_(None))
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows]
