"""Chat images' table (migration ``0014``). Same :data:`~broker.db.models.metadata` as the
broker's tables.

A row is one picture a participant uploaded into an open on-demand session, already
decoded, EXIF-stripped, scaled and re-encoded (:mod:`broker.media.images`): ``data`` holds
only the re-encoded bytes, never what the person sent. It is in the database (not on a
process's disk) so that every process can serve it. It belongs to its session (deleted
with it, ``ON DELETE CASCADE``) and, like the session's message buffer, it is deleted
shortly after the session ends unless the district keeps messages
(:meth:`broker.media.store.MediaStore.drop_ended`, :func:`broker.media.store.purge`).

A picture is *in the chat* once a message announces it: the session's message whose
``client_id`` is ``img-<image id>`` (:data:`broker.media.service.CLIENT_ID_PREFIX`); the
link is that id, so announcing is the message's own transaction and happens at most once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.db.models import Base
from broker.db.types import UTCDateTime


class ChatImageRow(Base):
    """One re-encoded picture of an open (or just ended) session."""

    __tablename__ = "chat_images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tutoring_sessions.id", ondelete="CASCADE"), index=True
    )
    # who uploaded it: "student" or "tutor" (only they may announce it)
    sender: Mapped[str] = mapped_column(String(8))
    media_type: Mapped[str] = mapped_column(String(16))  # image/jpeg or image/png
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)  # len(data): the session cap adds these up
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
