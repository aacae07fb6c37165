"""The SQL of chat images (table ``chat_images``, :mod:`broker.db.media_models`).

Guarantees:

* :meth:`MediaStore.insert` is one unit of the broker's group committer, keyed by the
  session (so it runs in the lane of that session's messages): it locks the session's row
  while the session is open (a no-op update guarded by ``ended_at IS NULL``) and inserts
  the picture only if the session's pictures stay within the count and byte caps. Two
  uploads racing in one session, on one process or several, cannot both pass a cap.
* A picture is announced by the message whose ``client_id`` is ``img-<image id>``
  (:func:`announced`), so the link between them is written by the message's own
  transaction.
* Deletion follows the session's message buffer: :meth:`MediaStore.drop_ended` (every
  process's sweep, retention off) and :func:`purge` (the retention job, in its
  transaction) never touch an open session's pictures, and keep a flagged session's
  while its flags' review period lasts, as for its messages.
* :meth:`MediaStore.staff_read` (a safety reviewer's look at a flagged session's picture)
  writes its audit entry in the transaction that reads the bytes, so no staff look at a
  child's picture goes unrecorded, and an entry is written only for a picture answered.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import audit, safety_store
from broker.commit import GroupCommitter, Step
from broker.db.models import metadata
from broker.identity import Identity

images = metadata.tables["chat_images"]
messages = metadata.tables["chat_messages"]
sessions = metadata.tables["tutoring_sessions"]

CLIENT_ID_PREFIX = "img-"  # the announcing message's client_id: img-<image id>
VIEW_COLUMNS = (
    images.c.id, images.c.media_type, images.c.width, images.c.height, images.c.size_bytes,
)
INSERTED = ("id", "session_id", "sender", "media_type", "width", "height", "size_bytes", "data",
            "created_at")


def _message_of(img: sa.TableClause | sa.Table = images) -> sa.ColumnElement[bool]:
    """The join condition of a picture and the message that announced it."""
    return sa.and_(
        messages.c.session_id == img.c.session_id,
        messages.c.client_id == sa.literal(CLIENT_ID_PREFIX) + img.c.id,
    )


class MediaStore:
    def __init__(self, engine: AsyncEngine, writer: GroupCommitter, *, keep: bool) -> None:
        """``keep``: the district keeps messages (retention on), so pictures too."""
        self.engine = engine
        self.writer = writer
        self.keep = keep
        self._lock_open_session = (
            sessions.update()
            .where(sessions.c.id == sa.bindparam("sid"), sessions.c.ended_at.is_(None))
            .values(seq=sessions.c.seq)
        )
        mine = images.c.session_id == sa.bindparam("sid")
        count = sa.select(sa.func.count(images.c.id)).where(mine).scalar_subquery()
        total = sa.select(sa.func.coalesce(sa.func.sum(images.c.size_bytes), 0)).where(mine)
        self._insert_within_caps = images.insert().from_select(
            list(INSERTED),
            sa.select(*(
                sa.bindparam(f"v_{name}", type_=images.c[name].type) for name in INSERTED
            )).where(
                count < sa.bindparam("max_count", type_=sa.Integer()),
                total.scalar_subquery() + sa.bindparam("v_bytes_again", type_=sa.Integer())
                <= sa.bindparam("max_bytes", type_=sa.Integer()),
            ),
        )

    async def insert(self, row: dict[str, Any], max_count: int, max_bytes: int) -> int | None:
        """Insert ``row`` into its open session within the caps: ``None`` if inserted, else
        the step that refused it (0: the session is not open, 1: a cap)."""
        params = {f"v_{name}": row[name] for name in INSERTED}
        params.update(v_bytes_again=row["size_bytes"], max_count=max_count, max_bytes=max_bytes,
                      sid=row["session_id"])
        outcome = await self.writer.write([
            Step(self._lock_open_session, {"sid": row["session_id"]}, expect=1),
            Step(self._insert_within_caps, params, expect=1),
        ], key=row["session_id"])
        return outcome.failed

    async def usage(self, session_id: str) -> tuple[int, int]:
        """(pictures, bytes) the session holds."""
        query = sa.select(
            sa.func.count(images.c.id), sa.func.coalesce(sa.func.sum(images.c.size_bytes), 0)
        ).where(images.c.session_id == session_id)
        async with self.engine.connect() as conn:
            count, total = (await conn.execute(query)).one()
        return int(count), int(total)

    async def find(self, session_id: str, image_id: str) -> dict[str, Any] | None:
        """The picture (without its bytes) and whether a message announced it."""
        query = (
            sa.select(*VIEW_COLUMNS, images.c.sender, messages.c.seq)
            .select_from(images.outerjoin(messages, _message_of()))
            .where(images.c.id == image_id, images.c.session_id == session_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return dict(row) if row else None

    async def data(self, image_id: str) -> bytes | None:
        async with self.engine.connect() as conn:
            value = await conn.scalar(sa.select(images.c.data).where(images.c.id == image_id))
        return bytes(value) if value is not None else None

    async def staff_read(
        self, session_id: str, image_id: str, *, held: bool, actor: Identity, endpoint: str,
        detail: str,
    ) -> tuple[bytes, str] | None:
        """(bytes, media type) of the session's picture for a safety reviewer, audited in
        the same transaction; ``None`` (nothing recorded) if the session holds no such
        picture, or holds it unannounced and it is not the flagged one (``held``: the
        picture of the flag's held message)."""
        query = (
            sa.select(images.c.data, images.c.media_type, messages.c.seq)
            .select_from(images.outerjoin(messages, _message_of()))
            .where(images.c.id == image_id, images.c.session_id == session_id)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is None or (row["seq"] is None and not held):
                return None
            await audit.record(
                conn, actor, "safety.read_image", session_id, endpoint,
                f"{detail} image={image_id}",
            )
        return bytes(row["data"]), str(row["media_type"])

    async def announced_after(self, session_id: str, after_seq: int) -> dict[int, dict[str, Any]]:
        """The session's announced pictures by their message's ``seq`` (``seq > after_seq``)."""
        query = (
            sa.select(*VIEW_COLUMNS, messages.c.seq)
            .select_from(images.join(messages, _message_of()))
            .where(images.c.session_id == session_id, messages.c.seq > after_seq)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {int(row["seq"]): dict(row) for row in rows}

    async def drop_ended(self, ended_before: dt.datetime) -> int:
        """Delete the pictures of sessions that ended before ``ended_before`` (retention
        off), except a flagged session's while it is kept for review; how many."""
        if self.keep:
            return 0
        ended = sa.select(sessions.c.id).where(
            sessions.c.ended_at.is_not(None), sessions.c.ended_at < ended_before
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(
                images.delete().where(
                    images.c.session_id.in_(ended),
                    images.c.session_id.not_in(safety_store.kept_sessions(ended_before)),
                )
            )
        return int(result.rowcount or 0)


async def purge(
    conn: AsyncConnection, now: dt.datetime, message_cutoff: dt.datetime, keep: bool,
    buffered: sa.Select[Any],
) -> int:
    """The retention job's share (in its transaction): with message retention on
    (``keep``), pictures older than ``message_cutoff``; off, every picture of a session
    not in ``buffered`` (open, or just ended: :func:`broker.retention.buffered_sessions`).
    Never a buffered session's, nor a flagged session's under review."""
    old: sa.ColumnElement[bool] = images.c.created_at < message_cutoff if keep else sa.true()
    result = await conn.execute(
        images.delete().where(
            old,
            images.c.session_id.not_in(buffered),
            images.c.session_id.not_in(safety_store.kept_sessions(now)),
        )
    )
    return int(result.rowcount or 0)


async def exported(conn: AsyncConnection, pseudonym: str) -> list[dict[str, Any]]:
    """Every picture of the student's sessions, JSON-ready (the bytes in base64), for a
    district's data request (:func:`broker.student_data.export_student`)."""
    rows = (await conn.execute(
        sa.select(images)
        .join(sessions, sessions.c.id == images.c.session_id)
        .where(sessions.c.student == pseudonym)
        .order_by(images.c.created_at, images.c.id)
    )).mappings().all()
    return [
        {**{k: v for k, v in row.items() if k not in ("data", "created_at")},
         "created_at": row["created_at"].isoformat(),
         "data_base64": base64.b64encode(bytes(row["data"])).decode("ascii")}
        for row in rows
    ]
