"""Fixtures of the persistence suite: an engine on the parametrised ``database_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import create_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, empty database (SQLite file or throw-away PostgreSQL)."""
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()
