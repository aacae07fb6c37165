"""The moderation decision: what happens to one chat message before it is relayed.

Guarantees:

* :meth:`Moderator.check` is pure (no I/O, no clock) and never raises for any ``str``.
* ``hold`` when any finding's category holds; else ``mask`` when any masks, with exactly the
  found spans replaced by ``[removed: <category>]`` and every other character kept; else
  ``deliver`` with the original text. ``categories`` lists what was found (sorted, unique)
  and ``distress`` is true when an alert category was found, whatever the action.
* Spans are offsets in the original text (the folded copy has the same length).

How each built-in category is decided (phone numbers by score, famous addresses...) is
described in ``docs/moderation.md``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

from broker.errors import ConfigError
from broker.moderation.normalise import LEET, fold
from broker.moderation.prescreen import (
    EDGE_MARKS,
    WordScreen,
    ascii_view,
    letter_runs,
    words_and_digits,
)
from broker.moderation.rules import SHIPPED_RULES, Action, Phrase, Rules, load_rules

__all__ = ["Action", "Decision", "Finding", "Moderator", "ReloadingModerator", "load_rules"]

log = logging.getLogger(__name__)

#: A phone-like run scores this much or more to be a phone number.
PHONE_THRESHOLD = 2
_NANP = re.compile(r"(?:\+?1[\s.\-]*)?\(?\d{3}\)?[\s.\-]*\d{3}[\s.\-]\d{4}\Z")
_MX = re.compile(r"\(?\d{2}\)?[\s.\-]\d{4}[\s.\-]\d{4}\Z")
_SEVEN = re.compile(r"\d{3}[\s.\-]\d{4}\Z")
_DECIMAL = re.compile(r"\d+[.,]\d{4,}\Z")
_DECIMAL_INSIDE = re.compile(r"(?<!\d)0\.\d|\d\.\d{5,}")
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3}){2,}\Z")
_YEARS = re.compile(r"(?:1\d|20)\d\d\s?-\s?(?:1\d|20)\d\d\Z")
#: How far before and after a number the words that make it a phone number are looked for.
_CONTEXT_BEFORE, _CONTEXT_AFTER = 40, 30
_SPACED = re.compile(r"(?<![\w@$!*])(?:[a-z0-9@$!*][ .\-_]){2,}[a-z0-9@$!*](?![\w@$!*])")
_GROUPS = re.compile(r"\d+")
_OPERATOR_NEAR = re.compile(r"[=+*/^×÷<>%≈]|(?<![a-z])x(?![a-z])")
_HANDLE = re.compile(r"(?<![\w@.])@(?P<name>[a-z_][a-z0-9_.]{2,29})(?![\w@(])")
_TOKEN = re.compile(r"[\w@$!*|]+")
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
#: The last four characters of any ``_SPACED`` match (a message without it has none).
_SPACED_TAIL = re.compile(r"[ .\-_][a-z0-9@$!*][ .\-_][a-z0-9@$!*](?![\w@$!*])")
_LETTER_WORD = re.compile(r"[a-z]+")
_REPEATS = re.compile(r"(.)\1+")
_MIN_PHONE_DIGITS, _MAX_PHONE_DIGITS = 7, 15
# Seven digits with at most three phone separators between each: any phone run with no
# spoken digits has this in it (so without it, and without spoken digits, none can match).
_SEVEN_DIGITS = re.compile(r"\d(?:[\s,\-().]{0,3}\d){6}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: its category and its span ``[start, end)`` in the original text."""

    category: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What to relay. ``text`` is the original (deliver), the masked text (mask) or ""."""

    action: Action
    text: str
    categories: tuple[str, ...]
    distress: bool


class Moderator:
    """Decides per message with one set of compiled :class:`Rules`."""

    __slots__ = ("_anchor_words", "_digit_runs", "_quick", "_rules", "_word_screen")

    def __init__(self, rules: Rules, *, quick_checks: bool = True) -> None:
        self._rules = rules
        self._quick = quick_checks
        self._anchor_words = frozenset(rules.phrase_index)
        self._word_screen = WordScreen(rules.words, [p for p, _ in rules.word_prefixes])
        # Spoken digits all in [a-z]: one is found (``digit_word``) exactly when it is a
        # maximal run of letters of an ASCII message (``Scan.letter_runs``).
        self._digit_runs = (
            frozenset(w.encode("ascii") for w in rules.digit_words)
            if all(_LETTER_WORD.fullmatch(w) for w in rules.digit_words)
            else None
        )

    @property
    def rules(self) -> Rules:
        return self._rules

    def check(self, text: str, sender: Literal["student", "tutor"]) -> Decision:
        """The decision for ``text`` sent by ``sender`` (see the module's guarantees)."""
        findings = self.findings(text, sender)
        if not findings:
            return Decision("deliver", text, (), False)
        rules = self._rules
        categories = tuple(sorted({f.category for f in findings}))
        distress = any(c in rules.alert for c in categories)
        actions = {rules.actions[c] for c in categories}
        if "hold" in actions:
            return Decision("hold", "", categories, distress)
        if "mask" in actions:
            masked = mask(text, [f for f in findings if rules.actions[f.category] == "mask"])
            return Decision("mask", masked, categories, distress)
        return Decision("deliver", text, categories, distress)

    def findings(self, text: str, sender: Literal["student", "tutor"]) -> list[Finding]:
        """Every finding in ``text`` for ``sender``, in order of start.

        Quick checks skip a detector that cannot match (a phrase category none of whose
        anchor words is in the message, links without a dot, handles without an "@"...);
        with ``quick_checks=False`` every detector runs, with the same findings.
        """
        rules = self._rules
        low = fold(text)
        quick = self._quick
        plain = ascii_view(low) if quick else None
        tokens: frozenset[str] | None
        if plain is not None:
            tokens, digits = words_and_digits(plain)
        elif quick:
            tokens, digits = frozenset(_WORD.findall(low)), len(_DIGIT.findall(low))
        else:
            tokens, digits = None, _MIN_PHONE_DIGITS
        found: list[Finding] = []
        for category, pattern, _anchors in self._candidates(tokens):
            allowed = rules.senders.get(category)
            if allowed is not None and sender not in allowed:
                continue
            for m in pattern.finditer(low):
                if category not in _QUOTED_OK or not _quoted(low, m.start(), m.end()):
                    found.append(Finding(category, m.start(), m.end()))
        emails: list[Finding] = []
        if tokens is None or "@" in low or not rules.at_words.isdisjoint(tokens):
            emails = [Finding("email", m.start(), m.end()) for m in rules.email.finditer(low)]
            found.extend(emails)
        if not quick or "." in low:
            found.extend(self._links(low, emails))
        if (
            (digits >= _MIN_PHONE_DIGITS and (not quick or _SEVEN_DIGITS.search(low)))
            or tokens is None
            or not rules.digit_words.isdisjoint(tokens)
            or (digits and self._spoken_digit(low, plain))
        ):
            found.extend(self._phones(low, tokens))
        if not quick or "@" in low:
            found.extend(self._handles(low))
        found.extend(self._words(low, plain))
        if not quick or _SPACED_TAIL.search(low):
            found.extend(self._spaced_words(low))
        if rules.street is not None and (
            tokens is None or (digits and not rules.street_words.isdisjoint(tokens))
        ):
            found.extend(Finding("address", m.start(), m.end()) for m in rules.street.finditer(low))
        found = self._famous_addresses(low, tokens, found)
        if len(found) > 1:
            found.sort(key=_by_start)
        return found

    # -- detectors -----------------------------------------------------------------------

    def _links(self, low: str, emails: list[Finding]) -> list[Finding]:
        allow = self._rules.allow_hosts
        out: list[Finding] = []
        for m in self._rules.link.finditer(low):
            if any(e.start <= m.start() < e.end for e in emails):
                continue
            host = (m.group("host") or m.group("bare") or m.group("pathed") or "").rstrip(".")
            host = host.removeprefix("www.")
            if m.group("host") is None and not any(c.isalpha() for c in host.rpartition(".")[0]):
                continue  # "3.14/2" or "1.5.co": numbers, not a host
            if any(host == h or host.endswith("." + h) for h in allow):
                continue
            out.append(Finding("link", m.start(), m.end()))
        return out

    def _candidates(self, tokens: frozenset[str] | None) -> list[Phrase]:
        """The phrases that can match a message with these words (None: all of them)."""
        phrases = self._rules.phrases
        if tokens is None:
            return list(phrases)
        index = self._rules.phrase_index
        hits = tokens & self._anchor_words
        if not hits and not self._rules.phrase_always:
            return []
        picked = set(self._rules.phrase_always)
        for token in hits:
            picked.update(index[token])
        return [phrases[i] for i in sorted(picked)]

    def _spoken_digit(self, low: str, plain: str | None) -> bool:
        """Whether a spoken digit ("five", "uno") stands anywhere in ``low`` (``plain``: its
        :func:`ascii_view`, when it has one)."""
        if plain is not None and self._digit_runs is not None:
            return not self._digit_runs.isdisjoint(letter_runs(plain))
        return self._rules.digit_word.search(low) is not None

    def _phones(self, low: str, tokens: frozenset[str] | None) -> list[Finding]:
        rules = self._rules
        out: list[Finding] = []
        for m in rules.phone_run.finditer(low):
            run = m.group()
            if len(run) < _MIN_PHONE_DIGITS:
                continue  # each digit or spoken digit takes a character at least: too short
            spoken = rules.digit_word.findall(run)
            n = sum(c.isdigit() for c in run) + len(spoken)
            if not _MIN_PHONE_DIGITS <= n <= _MAX_PHONE_DIGITS or _not_a_phone(run, spoken):
                continue
            start, end = m.start(), m.end()
            score = _phone_shape(run, spoken, low, start, end)
            context = rules.phone_context
            if context is not None and context.search(
                low, tokens, max(0, start - _CONTEXT_BEFORE), end + _CONTEXT_AFTER
            ):
                score += 2
            score -= 3 if self._homework_number(low, tokens, start, end) else 0
            if score >= PHONE_THRESHOLD:
                out.append(Finding("phone", m.start(), m.end()))
        return out

    def _homework_number(
        self, low: str, tokens: frozenset[str] | None, start: int, end: int
    ) -> bool:
        """An arithmetic operator next to the run, or a homework word just before or after
        it ("page", "ISBN", "equals", "times"...)."""
        before = low[max(0, start - 3) : start]
        after = low[end : end + 3]
        if _OPERATOR_NEAR.search(before) or _OPERATOR_NEAR.search(after):
            return True
        if low.startswith("+", start) and low[:start].rstrip()[-1:].isalnum():
            return True  # "555 + 123 ...": an addition, not a country code
        near = self._rules.number_context
        return near is not None and near.search(low, tokens, max(0, start - 30), end + 20)

    def _handles(self, low: str) -> list[Finding]:
        ignore = self._rules.handle_ignore
        return [
            Finding("social", m.start(), m.end())
            for m in _HANDLE.finditer(low)
            if m.group("name") not in ignore and any(c.isalpha() for c in m.group("name"))
        ]

    def listed_word_possible(self, low: str, plain: str | None = None) -> bool:
        """The quick pass of :meth:`_words` over the whole folded text, read as its tokens
        are read (edge marks dropped, leetspeak, repeats collapsed): ``False`` proves no
        word is listed. With ``plain`` (``low``'s :func:`ascii_view`) it answers the same
        with :class:`WordScreen`."""
        if plain is not None:
            return self._word_screen.may_match(plain)
        rules = self._rules
        marked = EDGE_MARKS.sub(" ", low) if "!" in low or "|" in low else low
        quick = _REPEATS.sub(r"\1", marked.translate(LEET))
        return not rules.words.keys().isdisjoint(_WORD.findall(quick)) or (
            rules.word_prefix is not None and rules.word_prefix.search(quick) is not None
        )

    def _words(self, low: str, plain: str | None = None) -> list[Finding]:
        rules = self._rules
        words, prefixes = rules.words, rules.word_prefixes
        if self._quick and "*" not in low and not self.listed_word_possible(low, plain):
            return []  # most messages stop here
        out: list[Finding] = []
        for m in _TOKEN.finditer(low):
            token = m.group()
            start, end = m.start(), m.end()
            stripped = token.strip("!|*")
            if not stripped or stripped.isdigit():
                continue
            start += len(token) - len(token.lstrip("!|*"))
            end -= len(token) - len(token.rstrip("!|*"))
            key = _REPEATS.sub(r"\1", stripped.translate(LEET))
            category = words.get(key)
            if category is None:
                category = _prefixed(key, prefixes)
            if category is None and "*" in key:
                category = _starred(key, words, prefixes)
            if category is not None:
                out.append(Finding(category, start, end))
        return out

    def _spaced_words(self, low: str) -> list[Finding]:
        """Listed words spelled out letter by letter ("f u c k", "s.h.i.t")."""
        out: list[Finding] = []
        for m in _SPACED.finditer(low):
            key = _REPEATS.sub(r"\1", "".join(m.group()[::2]).translate(LEET))
            category = self._rules.words.get(key) or _prefixed(key, self._rules.word_prefixes)
            if category is not None:
                out.append(Finding(category, m.start(), m.end()))
        return out

    def _famous_addresses(
        self, low: str, tokens: frozenset[str] | None, found: list[Finding]
    ) -> list[Finding]:
        """Drop address findings that name a famous address, unless the words just before
        it say the address is the sender's own ("I live at ...")."""
        famous = self._rules.famous_addresses
        if not famous or not any(f.category == "address" for f in found):
            return found
        own = self._rules.own_address
        kept: list[Finding] = []
        for f in found:
            if f.category == "address" and (
                own is None or not own.search(low, tokens, max(0, f.start - _CONTEXT_BEFORE), f.end)
            ):
                span = " ".join(low[f.start : f.end].split())
                if any(span.startswith(a) or a in span for a in famous):
                    continue
            kept.append(f)
        return kept


def _by_start(f: Finding) -> tuple[int, int]:
    """Findings in order of start, the longest first among those starting together."""
    return (f.start, -f.end)


def _not_a_phone(run: str, spoken: list[str]) -> bool:
    """Runs that are numbers of another kind: a decimal ("3.14159265", "0.00450 10110"), a
    list written with commas ("1, 2, 3, 4, 5, 6, 7"), thousands with dots ("126.014.024"),
    years from and to ("1861-1865"),
    one or two digits repeated ("1111111111"), spoken digits counting up ("uno dos tres")."""
    if _DECIMAL_INSIDE.search(run):
        return True
    if spoken:
        return _counting(spoken) and (len(spoken) >= 5 or not any(c.isdigit() for c in run))
    digits = run.strip("()+ ")
    if "," in run or _DECIMAL.match(digits):
        return True
    if _THOUSANDS.match(digits) or _YEARS.match(digits):
        return True
    return len({c for c in run if c.isdigit()}) <= 2


#: Categories not reported inside double quotes ("how do you say "how old are you"?").
_QUOTED_OK = frozenset({"personal"})


def _quoted(low: str, start: int, end: int) -> bool:
    """Whether ``[start, end)`` sits between a pair of double quotes."""
    return low.count('"', 0, start) % 2 == 1 and '"' in low[end:]


def _phone_shape(run: str, spoken: list[str], low: str, start: int, end: int) -> int:
    """How much a run's own form says "phone number" (0-3)."""
    if spoken:
        return 2  # digits spoken, or mixed ("5five5"): never arithmetic
    digits_only = run.strip("()+ ")
    score = 0
    if run.startswith("+") or _NANP.match(digits_only) or _MX.match(digits_only):
        score = 2
    else:
        groups = _GROUPS.findall(run)
        if len(groups) == 1 and len(groups[0]) in (10, 11):
            score = 1
        elif _SEVEN.match(digits_only) or (
            len(groups) >= 3 and all(2 <= len(g) <= 4 for g in groups)
        ):
            score = 1
    if score and not low[:start].strip() and not low[end:].strip(" .!?"):
        score += 1  # the whole message is the number
    return score


_COUNT_ORDER = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())
} | {w: i for i, w in enumerate("cero uno dos tres cuatro cinco seis siete ocho nueve".split())}


def _counting(words: list[str]) -> bool:
    """Spoken digits that count up by one ("uno dos tres cuatro...")."""
    values = [_COUNT_ORDER.get(w, -9) for w in words]
    return all(b == a + 1 for a, b in pairwise(values))


def _prefixed(key: str, prefixes: tuple[tuple[str, str], ...]) -> str | None:
    for prefix, category in prefixes:
        if key.startswith(prefix):
            return category
    return None


def _starred(
    key: str, words: Mapping[str, str], prefixes: tuple[tuple[str, str], ...]
) -> str | None:
    """A word with ``*`` for hidden letters ("f*ck", "sh*t"): each ``*`` is one or two
    letters; a prefix entry matches when the word could start with it."""
    pattern = re.compile(re.escape(key).replace(r"\*", "[a-z]{1,2}"))
    for word, category in words.items():
        if pattern.fullmatch(word):
            return category
    for prefix, category in prefixes:
        if pattern.match(prefix) or pattern.fullmatch(prefix[: len(key) + 2]):
            return category
    return None


def mask(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding's span replaced by ``[removed: <category>]``; overlapping
    spans are merged and take the category of the first."""
    if not findings:
        return text
    spans = sorted(findings, key=_by_start)
    out: list[str] = []
    pos = 0
    current: Finding | None = None
    cur_end = 0
    for f in spans:
        if current is not None and f.start < cur_end:
            cur_end = max(cur_end, f.end)
            continue
        if current is not None:
            out.append(f"[removed: {current.category}]")
            pos = cur_end
        out.append(text[pos : f.start])
        current, cur_end = f, f.end
    assert current is not None
    out.append(f"[removed: {current.category}]")
    out.append(text[cur_end:])
    return "".join(out)


class ReloadingModerator:
    """A :class:`Moderator` over a rules file that is re-read when it changes.

    :meth:`maybe_reload` compares the file's modification time and size with those of the
    rules in force; when they differ it reads the file again. A file that does not load is
    logged once (per modification time and size) and the rules in force stay.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path or SHIPPED_RULES
        self._stamp = _stamp(self._path)
        self._moderator = Moderator(load_rules(self._path))
        self._refused: tuple[int, int] | None = None

    @property
    def rules(self) -> Rules:
        return self._moderator.rules

    def check(self, text: str, sender: Literal["student", "tutor"]) -> Decision:
        return self._moderator.check(text, sender)

    def maybe_reload(self) -> bool:
        """Re-read the file if its mtime or size changed; ``True`` when new rules took over."""
        stamp = _stamp(self._path)
        if stamp == self._stamp or stamp == self._refused:
            return False
        try:
            rules = load_rules(self._path)
        except ConfigError as exc:
            self._refused = stamp
            log.error("moderation rules not reloaded, the previous rules stay: %s", exc.message)
            return False
        self._moderator = Moderator(rules)
        self._stamp = stamp
        self._refused = None
        log.info("moderation rules reloaded from %s", self._path)
        return True


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)
