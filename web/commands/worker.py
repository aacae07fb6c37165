"""``homework-help worker``: the background scheduler process of the Procfile.

Runs the retention purge once at start and then every ``--interval`` seconds (default an
hour). Several workers are harmless (a purge is idempotent) but one is enough.
``--once`` runs one round and exits (for cron-style platforms and tests).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from broker.settings import Settings

log = logging.getLogger("web.worker")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("worker", help="run background jobs (retention purge)")
    p.add_argument("--interval", type=float, default=3600.0, help="seconds between rounds")
    p.add_argument("--once", action="store_true", help="run one round and exit")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.retention import purge

    while True:
        try:
            counts = await purge(settings)
            log.info("retention purge: %s", counts)
        except Exception:
            log.exception("retention purge failed; will retry next round")
            if args.once:
                return 1
        if args.once:
            return 0
        await asyncio.sleep(max(1.0, args.interval))
