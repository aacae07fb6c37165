"""The small test district every broker suite runs against, and how a database gets it.

No web/ import here, so suites that drive the broker directly (tests/broker/unit.py) need
nothing of the edge.
"""

from __future__ import annotations

from broker.db.engine import create_engine
from broker.db.models import Base
from broker.migrate import migrate
from broker.settings import Settings

SCHOOLS = [
    # id, name, region, low, high, kind
    ("elem", "Test Elementary", "East", 0, 5, "elementary"),
    ("k8", "Test K-8 Span", "North", 0, 8, "span"),
    ("ms", "Test Middle", "South", 6, 8, "middle"),
    ("hs", "Test High", "West", 9, 12, "high"),
    ("k12", "Test K-12 Span", "West", 0, 12, "span"),
]


async def prepare_database(url: str) -> None:
    """Migrate a fresh database and give it the small test district (SCHOOLS)."""
    await migrate(Settings(database_url=url))
    await insert_schools(url)


async def insert_schools(url: str) -> None:
    """Insert SCHOOLS into a migrated database (also used by bench.broker)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                Base.metadata.tables["schools"].insert(),
                [
                    {"id": i, "name": n, "region": r, "low_grade": lo, "high_grade": hi, "kind": k}
                    for i, n, r, lo, hi, k in SCHOOLS
                ],
            )
    finally:
        await engine.dispose()
