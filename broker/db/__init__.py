"""Persistence: async engines, the models, and their column types.

``create_engine(url)`` / ``session_factory(engine)`` make connections; the schema is
applied with :func:`broker.migrate.migrate` (Alembic) or, in tests that want speed,
:func:`create_schema` (``metadata.create_all`` and stamping is *not* done: use it only on
throw-away databases).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db.engine import create_engine, session_factory
from broker.db.models import (
    AuditLogRow,
    Base,
    ChatMessageRow,
    HelpRequestRow,
    SchoolRow,
    StudentRow,
    TutoringSessionRow,
    UserRow,
    metadata,
)
from broker.db.types import UTCDateTime


async def create_schema(engine: AsyncEngine) -> None:
    """Create every table straight from the models (no Alembic version row).

    For throw-away test databases only: it is several times faster than running the
    migrations. Production and anything that will later be migrated uses
    :func:`broker.migrate.migrate`.
    """
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


__all__ = [
    "AuditLogRow",
    "Base",
    "ChatMessageRow",
    "HelpRequestRow",
    "SchoolRow",
    "StudentRow",
    "TutoringSessionRow",
    "UTCDateTime",
    "UserRow",
    "create_engine",
    "create_schema",
    "metadata",
    "session_factory",
]
