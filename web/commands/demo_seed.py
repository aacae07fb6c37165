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
DEMO_PASSWORD = "demo-password-123"  # demo accounts only; printed by `make run`
DEMO_ACCOUNTS: tuple[dict[str, object], ...] = (
    {"username": "paper-tutor", "role": "tutor", "display_name": "Ms. Rivera (Paper)",
     "vendor": "paper", "languages": ("en", "es", "zh", "fr")},
    {"username": "paper-tutor-2", "role": "tutor", "display_name": "Mr. Chen (Paper)",
     "vendor": "paper", "languages": ("en", "zh")},
    {"username": "tutorcom-tutor", "role": "tutor", "display_name": "Mr. Okafor (Tutor.com)",
     "vendor": "tutorcom", "languages": ("en", "es")},
    {"username": "district-staff", "role": "staff", "display_name": "Tutoring Services",
     "scope": "district"},
    {"username": "paper-manager", "role": "staff", "display_name": "Paper.co manager",
     "scope": "vendor", "scope_id": "paper"},
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("demo-seed", help="migrate and load the demo district")
    p.add_argument("--force", action="store_true", help="replace a non-demo roster too")
    p.set_defaults(func=run)


async def seed(settings: Settings, *, force: bool = False) -> tuple[int, int]:
    """Migrate and import the demo bundle; return (schools, students). Idempotent."""
    from broker.db.engine import create_engine
    from broker.errors import Conflict
    from broker.migrate import migrate
    from broker.roster_import import count_students_outside, import_roster_into

    await migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        if not force:
            others = await count_students_outside(engine, DEMO_ID_PREFIX)
            if others:
                raise Conflict(
                    f"the database holds {others} non-demo students; "
                    "demo-seed would replace them (use --force)"
                )
        result = await import_roster_into(engine, DEMO_BUNDLE)
        await add_demo_accounts(engine, settings)
    finally:
        await engine.dispose()
    return result.schools, result.students


async def add_demo_accounts(engine: object, settings: Settings) -> None:
    """Create the demo tutor and staff accounts that do not exist yet (idempotent)."""
    from broker.accounts import Accounts, UsernameTaken
    from broker.catalog_source import load_catalog

    accounts = Accounts(engine, load_catalog(settings))  # type: ignore[arg-type]
    for spec in DEMO_ACCOUNTS:
        fields = dict(spec)
        username = str(fields.pop("username"))
        try:
            await accounts.add(username, DEMO_PASSWORD, **fields)  # type: ignore[arg-type]
        except UsernameTaken:
            continue


async def run(args: argparse.Namespace, settings: Settings) -> int:
    schools, students = await seed(settings, force=args.force)
    print(f"demo district loaded: {schools} schools, {students} students", file=sys.stdout)
    names = ", ".join(str(a["username"]) for a in DEMO_ACCOUNTS)
    print(f"demo accounts: {names} (password {DEMO_PASSWORD})", file=sys.stdout)
    return 0
