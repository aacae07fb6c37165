"""The moderation corpora (tests/data/moderation/) and their rates; shared by the tests and
``bench.moderation``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from broker.moderation import Decision, Moderator

DATA = Path(__file__).resolve().parents[1] / "data" / "moderation"
Sender = Literal["student", "tutor"]


@dataclass(frozen=True)
class Case:
    sender: Sender
    text: str
    expected: str | None = None  # None: homework (must be delivered untouched)


def _rows(name: str) -> list[list[str]]:
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def homework() -> list[Case]:
    return [Case(cast(Sender, s), t) for s, t in _rows("homework.txt")]


def caught() -> list[Case]:
    return [Case(cast(Sender, s), t, c) for s, c, t in _rows("caught.tsv")]


def passes(case: Case, decision: Decision) -> bool:
    """Homework: delivered with nothing found. Caught: not a plain deliver (or, for
    distress, distress raised) with the expected category among those found."""
    if case.expected is None:
        return decision.action == "deliver" and not decision.categories and not decision.distress
    if case.expected not in decision.categories:
        return False
    if case.expected == "distress":
        return decision.distress
    return decision.action != "deliver"


def rate(moderator: Moderator, cases: list[Case]) -> tuple[float, list[tuple[Case, Decision]]]:
    """The share of ``cases`` that pass, and the failures."""
    failures = []
    for case in cases:
        decision = moderator.check(case.text, case.sender)
        if not passes(case, decision):
            failures.append((case, decision))
    return 1 - len(failures) / len(cases), failures
