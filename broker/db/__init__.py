"""Persistence: async engines, the models, and their column types.

``create_engine(url)`` / ``session_factory(engine)`` make connections; the schema is
applied with :func:`broker.migrate.migrate` (Alembic) or, in tests that want speed,
:func:`create_schema` (``metadata.create_all`` plus stamping the Alembic head, so a later
``migrate`` is a no-op; for fresh throw-away databases only).
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
    """Create every table from the models and stamp the Alembic head (fresh test databases).

    Faster than :func:`broker.migrate.migrate` (no migration scripts run); see
    :func:`broker.migrate.create_schema`.
    """
    from broker.migrate import create_schema as _create_schema

    await _create_schema(engine)


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
