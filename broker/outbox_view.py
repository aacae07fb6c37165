"""The outbox as staff see it on the demo page: the latest reminders and notices, waiting,
sent, withdrawn or given up (:func:`broker.outbox.message_status`), without a mail server.

District staff only; messages name students (by roster id) and their sessions, so each
answered read is audit-logged before it is returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit
from broker.db.models import outbox
from broker.errors import NotAllowed
from broker.identity import Identity
from broker.outbox import message_status
from broker.scheduler import policy

MAX_ROWS = 500
COLUMNS = ("id", "kind", "recipient_kind", "recipient_id", "channel", "locale", "subject",
           "body", "created_at", "due_at", "sent_at", "cancelled_at", "attempts",
           "last_error")


async def latest(engine: AsyncEngine, actor: Identity, endpoint: str, now: datetime,
                 limit: int = 200) -> list[dict[str, Any]]:
    """The ``limit`` (at most :data:`MAX_ROWS`) newest outbox rows, newest first."""
    if policy.staff_scope(actor).kind != "district":
        raise NotAllowed("the outbox is for district staff")
    limit = max(1, min(limit, MAX_ROWS))
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(*(outbox.c[c] for c in COLUMNS))
            .order_by(outbox.c.created_at.desc(), outbox.c.id).limit(limit)
        )).mappings().all()
    await audit.record(engine, actor, "outbox.read", None, endpoint, f"rows={len(rows)}",
                       at=now)
    return [{
        **{c: r[c] for c in COLUMNS if not c.endswith("_at")},
        **{c: (r[c].isoformat() if r[c] is not None else None)
           for c in COLUMNS if c.endswith("_at")},
        "status": message_status(dict(r)),
    } for r in rows]
