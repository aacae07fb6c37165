"""The ``homework-help`` command. Each subcommand lives in ``web/commands/<name>.py`` and
exposes ``register(subparsers)``; this module only assembles them and runs the chosen one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import pkgutil
import sys
from collections.abc import Sequence

import web.commands
from broker.errors import BrokerError
from broker.settings import Settings
from routing.errors import RoutingError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homework-help", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(web.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"web.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()  # a bad setting is a ConfigError: one line, below
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        result = args.func(args, settings)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except (BrokerError, RoutingError) as exc:
        print(f"homework-help {args.command}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
