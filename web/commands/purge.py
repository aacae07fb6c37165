"""``homework-help purge``: delete session metadata and chat messages past retention.

Idempotent; prints the counts. The scheduler calls :func:`broker.retention.purge` itself.
"""

from __future__ import annotations

import argparse

from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("purge", help="delete data past its retention period")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.retention import purge

    counts = await purge(settings)
    print(
        f"purged {counts['requests']} requests, {counts['sessions']} sessions, "
        f"{counts['messages']} messages "
        f"(metadata kept {settings.metadata_retention_days} days, "
        f"messages {settings.message_retention_days} days)"
    )
    return 0
