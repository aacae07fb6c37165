"""Durable, batched writes of the broker's state changes (see :mod:`broker.commit.base`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.commit.base import Fusion, GroupCommitter, Outcome, Step, Unit
from broker.commit.engine import EngineCommitter
from broker.commit.postgres import AsyncpgCommitter, asyncpg_dsn
from broker.commit.sqlite import SqliteCommitter

__all__ = [
    "AsyncpgCommitter",
    "EngineCommitter",
    "Fusion",
    "GroupCommitter",
    "Outcome",
    "SqliteCommitter",
    "Step",
    "Unit",
    "committer_for",
]


def committer_for(engine: AsyncEngine) -> GroupCommitter:
    """The fastest backend that can share ``engine``'s database."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database not in ("", ":memory:") and "mode=memory" not in str(url):
            return SqliteCommitter(database, engine.dialect)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgCommitter(asyncpg_dsn(url), engine.dialect)
    return EngineCommitter(engine)
