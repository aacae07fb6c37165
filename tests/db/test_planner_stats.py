"""The worker's ``planner_statistics`` job: with autovacuum off it analyzes, on a real
PostgreSQL, exactly the tables autovacuum would have; with it on, and on SQLite, nothing."""

from __future__ import annotations

import sqlalchemy as sa

from broker.db import create_engine
from broker.db.planner_stats import analyze_stale, stale


def test_stale_is_autovacuums_rule() -> None:
    tables = [("big", 150, 1000.0), ("bigger", 151, 1000.0), ("new", 51, 0.0), ("few", 50, 0.0)]
    assert stale(tables, threshold=50.0, scale_factor=0.1) == ["bigger", "new"]


async def _reltuples(engine: sa.ext.asyncio.AsyncEngine) -> dict[str, float]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('changed', 'quiet')"
        ))
        return {str(name): float(n) for name, n in rows}


async def test_it_analyzes_the_changed_tables_when_autovacuum_is_off(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE changed (id int PRIMARY KEY)"))
            await conn.execute(sa.text("CREATE TABLE quiet (id int PRIMARY KEY)"))
            await conn.execute(sa.text("INSERT INTO changed SELECT generate_series(1, 300)"))
            await conn.execute(sa.text("INSERT INTO quiet SELECT generate_series(1, 20)"))
            # The counts reach the shared statistics when this transaction ends.
            await conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        assert await _reltuples(engine) == {"changed": -1.0, "quiet": -1.0}  # never analyzed

        assert await analyze_stale(engine, autovacuum=True) == {"analyzed": 0, "autovacuum": 1}
        assert await _reltuples(engine) == {"changed": -1.0, "quiet": -1.0}

        assert await analyze_stale(engine, autovacuum=False) == {"analyzed": 1}
        assert await _reltuples(engine) == {"changed": 300.0, "quiet": -1.0}
        # Analyzed: its changes count from zero again, so the next round leaves it.
        assert await analyze_stale(engine, autovacuum=False) == {"analyzed": 0}
    finally:
        await engine.dispose()


async def test_sqlite_has_nothing_to_analyze(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert await analyze_stale(engine) == {"analyzed": 0}
    finally:
        await engine.dispose()
