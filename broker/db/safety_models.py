"""Chat safety's tables (migration ``0013``): flags for staff review and staff alerts.
Same :data:`~broker.db.models.metadata` as the broker's tables.

* A **flag** is one thing staff must look at: a message the moderation step held or
  masked (its original words in ``text``, which no participant ever received), a report
  by a student or tutor (of a session, or of one message by ``seq``), or a message that
  suggested distress. While any flag of a session has ``keep_until`` in the future, that
  session's message buffer is kept for review even with message retention off
  (:mod:`broker.retention`, :meth:`broker.lifecycle_store.LifecycleStore.drop_ended_buffers`);
  after it, the buffer and the flag's ``text`` are deleted like any other body.
* An **alert** is something staff must act on now: distress in a session, or a queue
  with students waiting and no tutor available. At most one *open* alert per
  ``dedupe_key`` (a partial unique index), so every process may raise the same alert and
  it is recorded once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import EMPTY, Base
from broker.db.types import UTCDateTime

OPEN_FLAG = sql("status = 'open'")
OPEN_ALERT = sql("cleared_at IS NULL")


class SafetyFlagRow(Base):
    """One held or masked message, report or distress signal, waiting for (or given) a
    staff decision. Scoped by the session's ``school_id`` and ``vendor``."""

    __tablename__ = "safety_flags"
    __table_args__ = (
        Index("ix_safety_flags_open", "created_at", sqlite_where=OPEN_FLAG,
              postgresql_where=OPEN_FLAG),
        # A resend of a held message (same client id) makes no second flag.
        Index("uq_safety_flags_client", "session_id", "client_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # held | masked | report | distress
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str] = mapped_column(String(32), index=True)
    school_id: Mapped[str | None] = mapped_column(String(64), index=True)
    vendor: Mapped[str] = mapped_column(String(32))
    tutor_id: Mapped[str] = mapped_column(String(64))
    # who wrote the flagged message, or who reported: "student" | "tutor" | "s<i>" (room)
    by: Mapped[str] = mapped_column(String(8))
    categories: Mapped[str] = mapped_column(String(200), default="", server_default=EMPTY)
    seq: Mapped[int | None] = mapped_column(Integer)  # the reported message, if one
    text: Mapped[str | None] = mapped_column(Text)  # the held/masked original; None after
    note: Mapped[str] = mapped_column(String(500), default="", server_default=EMPTY)
    client_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    keep_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # open | dismissed | session_ended | tutor_suspended
    status: Mapped[str] = mapped_column(String(16), server_default=sql("'open'"))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffAlertRow(Base):
    """An alert on the staff dashboard (and in the outbox): ``distress`` in a session, or
    ``no_tutor`` for a queue with students waiting and nobody available."""

    __tablename__ = "staff_alerts"
    __table_args__ = (
        Index("uq_staff_alerts_open", "dedupe_key", unique=True,
              sqlite_where=OPEN_ALERT, postgresql_where=OPEN_ALERT),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(120))
    queue: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(32))
    school_id: Mapped[str | None] = mapped_column(String(64), index=True)
    vendor: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(300), default="", server_default=EMPTY)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
