"""A migrated database on the parametrised ``database_url``, seeded with the known history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db.engine import create_engine
from tests.broker.conftest import prepare_database
from tests.stats.seed import seed


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url)
    eng = create_engine(database_url)
    await seed(eng)
    yield eng
    await eng.dispose()
