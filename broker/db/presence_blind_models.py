"""Whether each ``serve`` process can vouch for its own connections (migrations ``0023``
and ``0024``): one row per process on shared presence (Redis), ``blind`` while its
heartbeats cannot reach it. Same :data:`~broker.db.models.metadata` as the broker's
tables; written and read by :mod:`broker.presence_blind`.

* ``process`` names the process (``host:pid:random``), the primary key: a process has at
  most one row, whose ``seen_at`` it moves forward every sweep.
* ``blind``: its latest sweep could not touch its connections.
* ``since`` is when it last changed between blind and not, for the operators' eyes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, true
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import Base
from broker.db.types import UTCDateTime


class PresenceBlindRow(Base):
    """A process that says, as of ``seen_at``, whether it can touch its connections."""

    __tablename__ = "presence_blind"

    process: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blind: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


presence_blind = Base.metadata.tables[PresenceBlindRow.__tablename__]
