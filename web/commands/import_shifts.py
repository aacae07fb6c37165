"""``homework-help import-shifts FILE [--format csv|json]``: publish vendors' shift plans.

Each queue named in the file (vendor + language, an on-demand queue of the catalog) gets
its whole plan replaced: its weekly headcount pattern and its dated exceptions, entered in
the district's time zone (the catalog's). CSV columns: ``vendor, language, day, date,
start, end, headcount, note`` (a row with ``day`` is a weekly range, one with ``date`` an
exception); JSON: ``{"plans": [{"vendor", "language", "weekly": [...], "exceptions":
[...]}]}`` (docs/capacity.md, "Shift plans"). All or nothing: a bad entry is printed with
its queue (and CSV line) and the command exits 2 having written nothing. The import is one
transaction with one audit entry per queue (actor ``cli:<login name>``). Queues the file
does not name keep their plans.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("import-shifts", help="publish vendors' shift plans (CSV or JSON)")
    p.add_argument("file", type=Path, help="the plans: .csv or .json")
    p.add_argument("--format", choices=("csv", "json"), default=None,
                   help="the file's format (default: from its extension)")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.capacity import shifts
    from broker.catalog_source import load_catalog
    from broker.db.engine import create_engine
    from broker.errors import InvalidPayload
    from broker.migrate import migrate
    from web.commands.student import _actor

    fmt = args.format or ("json" if args.file.suffix.lower() == ".json" else "csv")
    catalog = load_catalog(settings)
    try:
        text = args.file.read_text(encoding="utf-8-sig")
        plans = shifts.parse_import(text, fmt, catalog.timezone, catalog)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except InvalidPayload as exc:
        line = exc.detail.get("line")
        print(f"{args.file}{f':{line}' if line else ''}: {exc.message}", file=sys.stderr)
        return 2
    await migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        await shifts.replace_plans(engine, _actor(), catalog, plans, "cli:import-shifts")
    finally:
        await engine.dispose()
    print(f"published the shift plans of {len(plans)} queues ({catalog.timezone_name})")
    return 0
