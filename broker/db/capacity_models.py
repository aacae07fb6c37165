"""Vendors' shift plans (migration ``0016``). Same :data:`~broker.db.models.metadata` as the
broker's tables; read and written only by :mod:`broker.capacity.shifts`.

Representation (why it is right in daylight-saving weeks):

* :class:`ShiftPlanRow`: that a queue (vendor + language) has a published plan, in which
  IANA zone its weekly pattern is read (the district's, from the catalog, when it was
  published), who published it last and when.
* :class:`ShiftSlotRow`: the **weekly pattern** in the district's *wall clock*: weekday
  (0 = Monday) and half-hour of the local day (``slot`` 0..47, 33 = 16:30), with the
  headcount the vendor puts on that queue then. Slots without a row have headcount 0. It
  is never stored as instants: a concrete week is expanded by walking its UTC half-hours
  and reading each one's local weekday and slot, so a spring-forward week has 334
  half-hours (02:00 and 02:30 do not happen) and a fall-back week 338 (01:00 and 01:30
  happen twice, each with the pattern's headcount).
* :class:`ShiftExceptionRow`: a **dated exception** entered as a local date and times,
  stored as the UTC instants ``[starts_at, ends_at)`` they denote; inside it the
  exception's headcount replaces the pattern's. A queue's exceptions never overlap.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import EMPTY, Base
from broker.db.types import UTCDateTime


class ShiftPlanRow(Base):
    """A queue's published plan: its zone and last publication."""

    __tablename__ = "shift_plans"

    vendor: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShiftSlotRow(Base):
    """One non-zero half-hour of a queue's weekly pattern (district wall clock)."""

    __tablename__ = "shift_slots"

    vendor: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0 = Monday
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # half-hour 0..47
    headcount: Mapped[int] = mapped_column(Integer)


class ShiftExceptionRow(Base):
    """A dated range whose headcount replaces the weekly pattern's."""

    __tablename__ = "shift_exceptions"
    __table_args__ = (
        Index("ix_shift_exceptions_queue_start", "vendor", "language", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    headcount: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="", server_default=EMPTY)
