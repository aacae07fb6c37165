"""Tutors' time on duty (migration ``0018``): spans during which a tutor was available
and connected, per queue. Same :data:`~broker.db.models.metadata` as the broker's tables;
written by :mod:`broker.duty` (in the status change's own transaction, and by the sweep's
reconciliation), read by :mod:`broker.capacity.coverage` ("observed").

One row per queue (vendor + language), not per tutor: coverage reads spans overlapping a
period *per queue*, which an index on ``(vendor, language, ended_at)`` answers without
splitting a languages list in Python, and a change of a tutor's languages while on duty
closes or opens only the queues it concerns. A status change opens or closes all of a
tutor's rows in one statement, so it still costs one statement.

* ``ended_at IS NULL`` while the span is open; a partial **unique** index allows at most
  one open span per tutor and queue, whichever process opens it (a second insert does
  nothing).
* ``ix_tutor_duty_queue_end``: spans of a queue that ended after a period's start (closed
  spans overlapping it); the open ones are the few rows of the partial index.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import Base
from broker.db.types import UTCDateTime

OPEN_DUTY = text("ended_at IS NULL")


class TutorDutyRow(Base):
    """One span of a tutor on duty for one queue: ``[started_at, ended_at)``."""

    __tablename__ = "tutor_duty"
    __table_args__ = (
        Index(
            "uq_tutor_duty_open", "tutor_id", "vendor", "language", unique=True,
            sqlite_where=OPEN_DUTY, postgresql_where=OPEN_DUTY,
        ),
        Index("ix_tutor_duty_queue_end", "vendor", "language", "ended_at"),
    )

    id: Mapped[int] = mapped_column(
        Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True
    )
    tutor_id: Mapped[str] = mapped_column(String(64))
    vendor: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


tutor_duty = Base.metadata.tables[TutorDutyRow.__tablename__]
