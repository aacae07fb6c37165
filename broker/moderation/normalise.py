"""Text folding for moderation: a lower-case, accent-free copy of a message, same length.

Guarantee: ``fold(text)`` has exactly ``len(text)`` characters and character ``i`` of the
result stands for character ``i`` of ``text``, so a span found in the folded copy is the
same span of the original message. Characters whose lower case is longer than one
character (``"İ"``) and characters with no single-character fold are kept as they are.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

#: Leetspeak and look-alike characters read as letters inside a word (``sh!t``, ``f*ck``).
LEET = str.maketrans(
    {
        "4": "a",
        "@": "a",
        "3": "e",
        "1": "i",
        "!": "i",
        "|": "i",
        "0": "o",
        "5": "s",
        "$": "s",
        "7": "t",
    }
)

_QUOTES = {
    "\u2018": "'",
    "\u2019": "'",
    "\u02bc": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\uff0b": "+",
    "\u00a0": " ",
    "\u2007": " ",
    "\u202f": " ",
    "\u3000": " ",
    "\uff20": "@",
}


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One character's fold: lower case, without its accent, one character or itself."""
    if ch in _QUOTES:
        return _QUOTES[ch]
    low = ch.lower()
    if len(low) != 1:
        low = ch
    base = unicodedata.normalize("NFKD", low)
    stripped = "".join(c for c in base if not unicodedata.combining(c))
    if len(stripped) == 1:
        return stripped.lower() if len(stripped.lower()) == 1 else stripped
    return low


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table filled on first sight of each code point."""

    def __missing__(self, key: int) -> str:
        folded = _fold_char(chr(key))
        self[key] = folded
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Lower-case ``text`` and drop accents (``"Mándame"`` -> ``"mandame"``), same length.

    ASCII text takes the fast path (``str.lower``); other text goes through a per-code-point
    table that is filled once per character seen.
    """
    if text.isascii():
        return text.lower()
    return text.translate(_TABLE)


def collapse(word: str) -> str:
    """``word`` with each run of one repeated letter kept once (``"fuuuck"`` -> ``"fuck"``)."""
    out: list[str] = []
    for ch in word:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


def word_key(token: str) -> str:
    """The key a word list is looked up by: folded, leetspeak read as letters, repeats
    collapsed (``"Sh!iiT"`` -> ``"shit"``)."""
    return collapse(fold(token).translate(LEET))
