"""The ASCII fast path (broker/moderation/prescreen.py) answers exactly what the regular
expressions it replaces answer, on text built to sit at the edges of those answers: listed
words in leetspeak, with repeated letters, edge marks and capitals, spelled out letter by
letter, spoken digits glued to digits."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.moderation import Moderator, load_rules
from broker.moderation.engine import _SPACED, _SPACED_TAIL
from broker.moderation.normalise import LEET, fold
from broker.moderation.prescreen import ascii_view, letter_runs, words_and_digits
from tests.moderation.corpus import caught, homework

MODERATOR = Moderator(load_rules())
FULL = Moderator(MODERATOR.rules, quick_checks=False)
RULES = MODERATOR.rules
LISTED = sorted({*RULES.words, *(p for p, _ in RULES.word_prefixes), *RULES.digit_words})
#: letter -> the characters the engine reads as that letter
DISGUISES: dict[str, list[str]] = {}
for source, letter in LEET.items():
    DISGUISES.setdefault(str(letter), []).append(chr(source))
SEPARATORS = [" ", ".", "-", "_", "  ", ""]
ASCII_PIECES = sorted(
    {w for case in homework() + caught() for w in case.text.split() if w.isascii()}
    | {"@", ".", ",", "-", "!", "|", "!!", "*", "555", "1234", "#", "5", "x", "_", "¿", "¡"}
)


#: ASCII and the two marks ``ascii_view`` reads as spaces.
ASCII_CHARS = st.sampled_from([chr(c) for c in range(128)] + ["¿", "¡"])


@st.composite
def disguised(draw: st.DrawFn) -> str:
    """A listed word (or prefix, or spoken digit) as a person might hide it."""
    word = draw(st.sampled_from(LISTED))
    letters = []
    for c in word:
        if c in DISGUISES and draw(st.booleans()):
            c = draw(st.sampled_from(DISGUISES[c]))
        if draw(st.integers(0, 4)) == 0:
            c = c.upper()
        letters.append(c * draw(st.sampled_from([1, 1, 1, 2, 3])))
    glue = draw(st.sampled_from(["", "", "", " ", ".", "-", "_"]))
    text = glue.join(letters)
    mark = draw(st.sampled_from(["", "", "!", "|", "!!", "*", "5", "x", "ly", "ing"]))
    return draw(st.sampled_from([text, mark + text, text + mark, mark + text + mark]))


ASCII_TEXT = st.lists(st.one_of(disguised(), st.sampled_from(ASCII_PIECES)), max_size=10).flatmap(
    lambda parts: st.sampled_from(SEPARATORS).map(lambda sep: sep.join(parts))
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(ASCII_TEXT, st.text(ASCII_CHARS, max_size=80)))
def test_the_ascii_facts_are_those_of_the_regular_expressions(text: str) -> None:
    low = fold(text)
    plain = ascii_view(low)
    assert plain is not None and len(plain) == len(low)
    assert words_and_digits(plain) == (
        frozenset(re.findall(r"\w+", low)),
        len(re.findall(r"\d", low)),
    )
    spoken = RULES.digit_word.search(low) is not None
    assert MODERATOR._spoken_digit(low, plain) == spoken
    assert letter_runs(plain) == [w.encode() for w in re.findall(r"[a-z]+", low)]
    if "*" not in low:
        assert MODERATOR.listed_word_possible(low, plain) == MODERATOR.listed_word_possible(low), (
            low
        )
    if _SPACED.search(low):
        assert _SPACED_TAIL.search(low)


@settings(max_examples=200, deadline=None)
@given(ASCII_TEXT, st.sampled_from(["student", "tutor"]))
def test_the_ascii_fast_path_never_changes_the_findings(text: str, sender: str) -> None:
    assert MODERATOR.findings(text, sender) == FULL.findings(text, sender)  # type: ignore[arg-type]


def test_a_disguised_listed_word_is_still_seen_by_the_screen() -> None:
    for text in ["FUUUCK", "sh!!!t", "!!mierda!!", "m13rd4", "$hit", "ch1ngad0"]:
        assert MODERATOR.listed_word_possible(fold(text), fold(text)), text
        assert MODERATOR.check(text, "student").action != "deliver", text
    assert MODERATOR.check("f.u.c.k", "student").action != "deliver"  # spelled out
    plain = "i got 3x + 5 = 20, page 112"
    assert not MODERATOR.listed_word_possible(plain, plain)
    assert ascii_view(fold("¿Cuánto es 3x + 5?")) == " cuanto es 3x + 5?"
    assert ascii_view("naïve ß") is None
