"""``homework-help migrate``: bring the database schema up to date (the Procfile release step).

Idempotent: running it on an up-to-date database changes nothing.
"""

from __future__ import annotations

import argparse

from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("migrate", help="apply database migrations (idempotent)")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.migrate import head_revision, migrate

    await migrate(settings, args.revision)
    target = head_revision() if args.revision == "head" else args.revision
    print(f"database at revision {target}")
    return 0
