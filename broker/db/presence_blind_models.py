"""Processes that cannot vouch for their own connections (migration ``0023``): one row per
``serve`` process whose heartbeats cannot reach the shared presence store (Redis) while
the other processes' can. Same :data:`~broker.db.models.metadata` as the broker's tables;
written and read by :mod:`broker.presence_blind`.

* ``process`` names the process (``host:pid:random``), the primary key: a process has at
  most one row, whose ``seen_at`` it moves forward every sweep while it stays blind.
* ``since`` is when it first found presence unreachable, for the operators' eyes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import Base
from broker.db.types import UTCDateTime


class PresenceBlindRow(Base):
    """A process that says, as of ``seen_at``, that it cannot touch its connections."""

    __tablename__ = "presence_blind"

    process: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


presence_blind = Base.metadata.tables[PresenceBlindRow.__tablename__]
