"""``homework-help user add|list|disable|enable|reset``: tutor and staff accounts.

Passwords are read from standard input with ``--password-stdin`` (first line, newline
stripped); otherwise a random one is generated and printed once, never stored in clear.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broker.accounts import Account, Accounts
from broker.passwords import check_policy, generate_password
from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("user", help="manage tutor and staff accounts")
    actions = p.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="create a tutor or staff account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["tutor", "staff"])
    add.add_argument("--name", help="display name (tutors: shown to students)")
    add.add_argument("--vendor", help="tutor: the catalog vendor id (e.g. paper, tutorcom)")
    add.add_argument("--languages", default="", help="tutor: comma-separated, e.g. en,es")
    add.add_argument(
        "--tutor-profile", help="tutor: the scheduler profile id whose booked sessions they run"
    )
    add.add_argument("--scope", choices=["district", "school", "vendor"], help="staff scope")
    add.add_argument("--scope-id", help="staff: the school id or the vendor id")
    add.add_argument("--password-stdin", action="store_true", help="read the password")
    add.set_defaults(func=run_add)

    lst = actions.add_parser("list", help="list accounts")
    lst.add_argument("--role", choices=["tutor", "staff"])
    lst.set_defaults(func=run_list)

    for name, func, text in (
        ("disable", run_disable, "refuse sign-in and end HTTP access at once"),
        ("enable", run_enable, "allow sign-in again"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("username")
        sub.set_defaults(func=func)

    reset = actions.add_parser("reset", help="set a new password")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true", help="read the password")
    reset.set_defaults(func=run_reset)


@asynccontextmanager
async def _accounts(settings: Settings) -> AsyncIterator[Accounts]:
    from broker.catalog_source import load_catalog
    from broker.db.engine import create_engine

    engine = create_engine(settings.database_url)
    try:
        yield Accounts(engine, load_catalog(settings))
    finally:
        await engine.dispose()


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        check_policy(password)
        return password, False
    return generate_password(), True


def _line(a: Account) -> str:
    where = f"{a.vendor_id} [{','.join(a.languages)}]" if a.role == "tutor" else (
        f"{a.scope}" + (f":{a.scope_id}" if a.scope_id else "")
    )
    state = "disabled" if a.disabled else "active"
    last = a.last_login_at.isoformat(timespec="seconds") if a.last_login_at else "never"
    return f"{a.username}\t{a.role}\t{where}\t{state}\tlast sign-in {last}\t{a.display_name}"


async def run_add(args: argparse.Namespace, settings: Settings) -> int:
    password, generated = _password(args)
    languages = [x for x in args.languages.split(",") if x.strip()]
    async with _accounts(settings) as accounts:
        account = await accounts.add(
            args.username, password, role=args.role, display_name=args.name,
            vendor=args.vendor, languages=languages, scope=args.scope, scope_id=args.scope_id,
            tutor_profile=args.tutor_profile,
        )
    print(f"created {_line(account)}")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _accounts(settings) as accounts:
        for account in await accounts.list_accounts(args.role):
            print(_line(account))
    return 0


async def run_disable(args: argparse.Namespace, settings: Settings) -> int:
    async with _accounts(settings) as accounts:
        print(f"disabled {_line(await accounts.disable(args.username))}")
    return 0


async def run_enable(args: argparse.Namespace, settings: Settings) -> int:
    async with _accounts(settings) as accounts:
        print(f"enabled {_line(await accounts.enable(args.username))}")
    return 0


async def run_reset(args: argparse.Namespace, settings: Settings) -> int:
    password, generated = _password(args)
    async with _accounts(settings) as accounts:
        account = await accounts.reset_password(args.username, password)
    print(f"password reset for {account.username}")
    if generated:
        print(f"password (shown once): {password}")
    return 0
