"""``homework-help import-roster DIR``: load a OneRoster v1.1 CSV bundle (all or nothing).

Parses every file first; a bad row is printed as ``file:line field: message`` and the
command exits 2 without touching the database. Then it brings the schema up to date
(idempotent) and writes the roster in one transaction.
Students are replaced by the bundle's, schools upserted (see :mod:`broker.roster_import`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "import-roster", help="load a OneRoster v1.1 CSV bundle (all or nothing)"
    )
    p.add_argument(
        "directory", type=Path, help="folder with orgs.csv, users.csv[, demographics.csv]"
    )
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from broker.db.engine import create_engine
    from broker.errors import ImportFailed
    from broker.migrate import migrate
    from broker.roster_import import read_roster, write_roster

    try:
        roster = await asyncio.to_thread(read_roster, args.directory)
    except ImportFailed as exc:
        print(exc.message, file=sys.stderr)
        return 2
    await migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        await write_roster(engine, roster)
    except ImportFailed as exc:
        print(exc.message, file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    for warning in roster.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"imported {len(roster.schools)} schools and {len(roster.students)} students")
    return 0
