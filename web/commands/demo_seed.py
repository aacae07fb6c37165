"""``homework-help demo-seed``: migrate, then load the shipped demo district (idempotent).

The demo bundle (``broker/data/demo/oneroster``, made by ``scripts/make_demo_district.py``)
*replaces* the students table, so the command refuses to run on a database holding
students that are not demo students, unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import broker
from broker.settings import Settings

DEMO_DIR = Path(broker.__file__).resolve().parent / "data" / "demo"
DEMO_BUNDLE = DEMO_DIR / "oneroster"
DEMO_ID_PREFIX = "demo-"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("demo-seed", help="migrate and load the demo district")
    p.add_argument("--force", action="store_true", help="replace a non-demo roster too")
    p.set_defaults(func=run)


async def seed(settings: Settings, *, force: bool = False) -> tuple[int, int]:
    """Migrate and import the demo bundle; return (schools, students). Idempotent."""
    from sqlalchemy import func, select

    from broker.db.engine import create_engine
    from broker.db.models import StudentRow
    from broker.errors import Conflict
    from broker.migrate import migrate
    from broker.roster_import import import_roster_into

    await migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        if not force:
            async with engine.connect() as conn:
                others = await conn.scalar(
                    select(func.count())
                    .select_from(StudentRow)
                    .where(StudentRow.sis_id.not_like(f"{DEMO_ID_PREFIX}%"))
                )
            if others:
                raise Conflict(
                    f"the database holds {others} non-demo students; "
                    "demo-seed would replace them (use --force)"
                )
        result = await import_roster_into(engine, DEMO_BUNDLE)
    finally:
        await engine.dispose()
    return result.schools, result.students


async def run(args: argparse.Namespace, settings: Settings) -> int:
    schools, students = await seed(settings, force=args.force)
    print(f"demo district loaded: {schools} schools, {students} students", file=sys.stdout)
    return 0
