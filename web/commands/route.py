"""``homework-help route``: print the routing decision for one help request as one JSON object.

``{"vendor", "queue", "overflow"}`` when routed (plus ``first_choice`` and
``first_choice_unmet`` when overflowed), ``{"unmet", "detail"}`` otherwise; both exit 0.
Unusable input (an unreadable catalog or schools file, a malformed one, a bad ``--at``)
is reported on stderr with exit status 2.

Schools: ``--schools-csv FILE``, else the database's directory, else (no database, or no
schools in it) the demo district's ``broker/data/demo/schools.csv``. Catalog: ``--catalog``,
else ``HH_CATALOG``, else the shipped district catalog.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import broker
from broker.errors import ConfigError
from broker.settings import Settings
from routing.schools import SchoolDirectory

DEMO_SCHOOLS = Path(broker.__file__).parent / "data" / "demo" / "schools.csv"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "route", help="print which vendor queue a help request goes to (JSON)"
    )
    p.add_argument("--school", default=None, help="school id (omit when the school is unknown)")
    p.add_argument("--grade", default=None, help="grade code: PK, TK, K, 1-12 (or 01-12)")
    p.add_argument("--language", required=True, help="BCP 47 language tag, e.g. es-MX")
    p.add_argument("--subject", required=True, help="district subject id, e.g. math")
    p.add_argument("--at", default=None, help="request time, ISO 8601 (default: now)")
    p.add_argument("--schools-csv", type=Path, default=None, help="schools.csv to use")
    p.add_argument("--catalog", type=Path, default=None, help="vendor catalog TOML to use")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.catalog_source import load_catalog
    from routing.decision import HelpRequest, route

    when = _parse_at(args.at)
    catalog = load_catalog(settings, args.catalog)
    directory = await _directory(args.schools_csv, settings)
    request = HelpRequest(
        school_id=args.school,
        grade=args.grade,
        language=args.language,
        subject=args.subject,
        at=when,
    )
    print(json.dumps(route(request, catalog, directory).as_json(), ensure_ascii=False))
    return 0


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO 8601 time") from None


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from exc


async def _directory(csv_path: Path | None, settings: Settings) -> SchoolDirectory:
    from routing.school_csv import parse_schools_csv

    if csv_path is not None:
        return parse_schools_csv(_read(csv_path, "schools file"), filename=str(csv_path))
    try:
        from broker.directory import load_school_directory

        directory = await load_school_directory(settings)
    except Exception as exc:  # no database module, no database, no schema: use the demo
        print(f"homework-help route: no school directory in the database ({exc.__class__.__name__}"
              f"); using the demo schools", file=sys.stderr)
        directory = SchoolDirectory()
    if len(directory):
        return directory
    if not DEMO_SCHOOLS.exists():
        print("homework-help route: no schools known; the grade alone decides", file=sys.stderr)
        return SchoolDirectory()
    return parse_schools_csv(_read(DEMO_SCHOOLS, "demo schools file"), filename=str(DEMO_SCHOOLS))
