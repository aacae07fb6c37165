"""``homework-help worker``: the background jobs process of the Procfile.

Runs every job of :func:`broker.worker_jobs.registered_jobs` (today the retention purge,
every ``--interval`` seconds, default an hour, and the outbox sender) on its own cadence
until SIGTERM/SIGINT. Several workers are fine: with ``REDIS_URL`` set a lease makes each
job run once between them; without Redis leases are per process, so run one worker.
``--once`` runs one round (every job that is due, by the state in the database) and exits,
1 if a job failed (for cron-style platforms and tests). See ``docs/jobs.md``.
"""

from __future__ import annotations

import argparse

from broker import constants as C
from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("worker", help="run background jobs (retention purge, outbox)")
    p.add_argument(
        "--interval", type=float, default=C.RETENTION_EVERY_S,
        help="seconds between retention purges",
    )
    p.add_argument("--once", action="store_true", help="run the due jobs once and exit")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.worker_jobs import run_worker

    return await run_worker(
        settings, once=args.once, retention_every_s=max(1.0, args.interval)
    )
