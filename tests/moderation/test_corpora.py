"""The corpora: every homework message delivered untouched, at least 98% of the contact
attempts and harmful messages caught. The rates are printed (``pytest -s``)."""

from __future__ import annotations

import re

import pytest

from broker.moderation import Moderator, load_rules
from tests.moderation.corpus import Case, caught, homework, rate

#: Words that mark a line as Spanish, to check the corpora's language mix.
_SPANISH = re.compile(
    r"[ñáéíóú¿¡]|\b(que|es|el|la|los|las|de|mi|tu|por|con|una|para|cuanto|como|vivo|"
    r"quiero|dame|pasame|mandame|nos|esta|soy|eres|no le)\b",
    re.I,
)


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator(load_rules())


def _spanish_share(cases: list[Case]) -> float:
    return sum(bool(_SPANISH.search(c.text)) for c in cases) / len(cases)


def test_the_corpora_are_large_and_mixed() -> None:
    hw, bad = homework(), caught()
    assert len(hw) >= 400 and len(bad) >= 400
    assert {c.sender for c in hw} == {"student", "tutor"}
    assert _spanish_share(hw) >= 1 / 3 and _spanish_share(bad) >= 1 / 3
    expected = {c.expected for c in bad}
    assert expected == {
        "phone", "email", "address", "social", "link", "meet", "photo", "personal",
        "profanity", "sexual", "grooming", "distress",
    }  # fmt: skip


def test_rates(moderator: Moderator) -> None:
    hw_rate, hw_failures = rate(moderator, homework())
    caught_rate, caught_failures = rate(moderator, caught())
    print(f"\nhomework delivered untouched: {hw_rate:.2%} of {len(homework())}")
    print(f"contact attempts and harm caught: {caught_rate:.2%} of {len(caught())}")
    for case, decision in hw_failures + caught_failures:
        print(f"  {case.sender} {case.expected} {case.text!r} -> {decision}")
    assert hw_rate == 1.0, [c.text for c, _ in hw_failures]
    assert caught_rate >= 0.98, [c.text for c, _ in caught_failures]
