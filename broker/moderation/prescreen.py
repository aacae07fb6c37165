"""Cheap facts about an ASCII message that let the engine skip detectors that cannot match.

The engine's quick checks ask the same questions of every message ("which words are in
it?", "how many digits?", "could a word be a listed one?"). For a message whose folded text
is ASCII (English, and Spanish once its accents are folded), this module answers them with
``bytes.translate`` and ``bytes.split`` (one C pass each) instead of regular-expression
scans that cost a Python-level step per character.

Guarantees (for ``low`` the folded text, ``low.isascii()``, or what :func:`ascii_view` made
of it, the answers being those for the folded text):

* :func:`words_and_digits` is exactly ``frozenset(re.findall(r"\\w+", low))`` and the
  number of decimal digits in ``low``.
* :func:`letter_runs` is exactly the maximal runs of ``[a-z]`` in ``low``.
* :meth:`WordScreen.may_match` is ``False`` only when no word of ``low``, read as the
  engine reads words (edge marks dropped, leetspeak as letters, repeats collapsed), is a
  listed word or starts with a listed prefix: the same answer as the engine's quick pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from broker.moderation.normalise import LEET

__all__ = ["EDGE_MARKS", "WordScreen", "ascii_view", "letter_runs", "words_and_digits"]

_WORD_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_LETTERS = b"abcdefghijklmnopqrstuvwxyz"


def _keep(kept: bytes, mapping: dict[int, int] | None = None) -> bytes:
    """A ``bytes.translate`` table: ``mapping`` applied first, then every byte not in
    ``kept`` becomes a space."""
    out = bytearray()
    for byte in range(256):
        byte = (mapping or {}).get(byte, byte)
        out.append(byte if byte in kept else 0x20)
    return bytes(out)


#: \w characters (ASCII) kept, every other byte a space: ``split()`` gives the \w+ runs.
_TO_WORDS = _keep(_WORD_BYTES)
#: [a-z] kept, every other byte a space.
_TO_LETTERS = _keep(_LETTERS)
#: The engine's leetspeak table on bytes, then non-word bytes to spaces.
_TO_LEET_WORDS = _keep(
    _WORD_BYTES,
    {k: ord(v) for k, v in LEET.items() if k < 128 and isinstance(v, str) and v.isascii()},
)
_DIGITS = b"0123456789"
_NOT_DIGITS = bytes(b for b in range(256) if b not in _DIGITS)
#: Runs of "!" or "|" at the edge of a word: marks, not letters ("wow!!", "|hi|").
EDGE_MARKS = re.compile(r"(?<![\w@$!*|])[!|]+|[!|]+(?![\w@$!*|])")


def ascii_view(low: str) -> str | None:
    """``low`` itself when ASCII; with Spanish's opening marks (``¿``, ``¡``: neither word
    characters nor a listed word's look-alikes, like a space to every fact here) as spaces
    when that makes it ASCII; else None (the engine then asks its regular expressions)."""
    if low.isascii():
        return low
    marked = low.replace("¿", " ").replace("¡", " ")
    return marked if marked.isascii() else None


def words_and_digits(low: str) -> tuple[frozenset[str], int]:
    """The \\w+ words of ASCII ``low`` and how many decimal digits it has."""
    raw = low.encode("ascii")
    return (
        frozenset(raw.translate(_TO_WORDS).decode("ascii").split()),
        len(raw.translate(None, _NOT_DIGITS)),
    )


def letter_runs(low: str) -> list[bytes]:
    """The maximal runs of ``[a-z]`` in ASCII ``low``, in order."""
    return low.encode("ascii").translate(_TO_LETTERS).split()


def _runs(word: str) -> str:
    """A pattern matching any ASCII text that collapses to ``word``: each character once
    or more, written ``cc*`` so that every branch starts with a literal
    (``"fuck"`` -> ``ff*uu*cc*kk*``)."""
    return "".join(re.escape(c) * 2 + "*" for c in word)


def _grouped(patterns: dict[str, list[str]]) -> str:
    """An alternation grouped by first character, each once or more (``re`` rejects a
    branch on its first literal without entering it, so it tries one group per position)."""
    return "|".join(
        re.escape(first) * 2 + "*(?:" + "|".join(sorted(rest, key=lambda p: (-len(p), p))) + ")"
        for first, rest in sorted(patterns.items())
    )


class WordScreen:
    """Whether an ASCII message can hold a listed word or a word with a listed prefix."""

    __slots__ = ("_pattern",)

    def __init__(self, words: Iterable[str], prefixes: Iterable[str]) -> None:
        # After a space (the message's words are separated by spaces below): a listed word
        # with each letter once or more, then the end of the word; or a listed prefix.
        groups: dict[str, list[str]] = {}
        for word, whole in [*((w, True) for w in words), *((p, False) for p in prefixes)]:
            if not word.isascii() or not word:
                continue  # never the whole of an ASCII word
            rest = _runs(word[1:]) + ("(?![^ ])" if whole else "")
            groups.setdefault(word[0], []).append(rest)
        self._pattern = (
            re.compile(b" (?:" + _grouped(groups).encode("ascii") + b")") if groups else None
        )

    def may_match(self, low: str) -> bool:
        """``False`` proves no word of ``low`` is listed (see the module's guarantees);
        ``low`` is ASCII and has no ``*`` (a starred word takes the engine's full pass)."""
        if self._pattern is None:
            return False
        marked = EDGE_MARKS.sub(" ", low) if "!" in low or "|" in low else low
        spaced = b" " + marked.encode("ascii").translate(_TO_LEET_WORDS)
        return self._pattern.search(spaced) is not None
