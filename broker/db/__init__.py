"""Persistence: async engines, the models, and their column types.

``create_engine(url)`` / ``session_factory(engine)`` make connections; the schema is
applied with :func:`broker.migrate.migrate` (Alembic, from settings) or, in tests,
:func:`create_schema` (the same migrations on an engine you already have).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import (
    capacity_models,  # vendors' shift plans join ``metadata``
    duty_models,  # tutors' time on duty joins ``metadata``
    media_models,  # chat images' table joins ``metadata``
    presence_blind_models,  # processes cut off from presence join ``metadata``
    safety_models,  # chat safety's tables join ``metadata``
    scheduler_models,  # the scheduler's tables join ``metadata``
)
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
    """Run the Alembic migrations to head on ``engine`` (see
    :func:`broker.migrate.create_schema`); a later ``migrate`` is a no-op."""
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
    "capacity_models",
    "create_engine",
    "create_schema",
    "duty_models",
    "media_models",
    "metadata",
    "presence_blind_models",
    "safety_models",
    "scheduler_models",
    "session_factory",
]
