"""``homework-help student export|delete PSEUDONYM``: a district's data requests.

``export`` writes everything held about the pseudonym as JSON to standard output;
``delete`` removes the student's requests, sessions and messages in one transaction and
records the deletion in the audit log (actor ``cli:<login name>``). Both are audited.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import orjson

from broker.settings import Settings
from broker.tokens import Identity


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("student", help="export or delete one student's data")
    actions = p.add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("export", run_export, "print everything held about a pseudonym as JSON"),
        ("delete", run_delete, "delete a pseudonym's requests, sessions and messages"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("pseudonym")
        sub.set_defaults(func=func)


def _actor() -> Identity:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Identity("staff", f"cli:{who}"[:64], {"scope": "district"})


async def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from broker import audit
    from broker.db.engine import create_engine
    from broker.student_data import export_student

    engine = create_engine(settings.database_url)
    try:
        data = await export_student(engine, args.pseudonym)
        await audit.record(engine, _actor(), "student.export", args.pseudonym,
                           "cli:student export")
    finally:
        await engine.dispose()
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


async def run_delete(args: argparse.Namespace, settings: Settings) -> int:
    from broker.db.engine import create_engine
    from broker.student_data import delete_student

    engine = create_engine(settings.database_url)
    try:
        counts = await delete_student(engine, args.pseudonym, _actor(), "cli:student delete")
    finally:
        await engine.dispose()
    print(
        f"deleted {counts['requests']} requests, {counts['sessions']} sessions, "
        f"{counts['messages']} messages of {args.pseudonym}"
    )
    return 0
