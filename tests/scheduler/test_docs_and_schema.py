"""Every scheduler error code is documented, and migration 0008 goes down and up again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db import scheduler_models
from broker.migrate import alembic_config, migrate_engine
from broker.scheduler.errors import RULE_ERRORS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_scheduler_code_is_documented() -> None:
    scheduler = (DOCS / "scheduler.md").read_text()
    protocol = (DOCS / "protocol.md").read_text()
    missing = [e.code for e in RULE_ERRORS
               if f"`{e.code}`" not in scheduler or f"`{e.code}`" not in protocol]
    assert not missing, f"undocumented scheduler codes: {missing}"


SCHEDULER_TABLES = {
    name for name, value in vars(scheduler_models).items()
    if not name.startswith("_") and getattr(value, "name", None) == name
}


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_0008_downgrades_and_upgrades(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert len(SCHEDULER_TABLES) == 17 and tables >= SCHEDULER_TABLES
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0007")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert not tables & SCHEDULER_TABLES
    await migrate_engine(engine)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables >= SCHEDULER_TABLES
