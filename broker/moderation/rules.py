"""The moderation rules file: read, validate and compile it into :class:`Rules`.

Guarantees: :func:`load_rules` returns fully compiled rules (every regular expression built
once, here) or raises :class:`broker.errors.ConfigError` whose message names the file and
the key at fault; a :class:`Rules` never changes after it is built, so a moderator can
share it between tasks. The file's shape is described in ``broker/data/moderation.toml``
and ``docs/moderation.md``.
"""

from __future__ import annotations

import functools
import re
import re._constants as _C
import re._parser as _sre_parser
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, cast, get_args

from broker.errors import ConfigError
from broker.moderation.normalise import fold, word_key

Action = Literal["deliver", "mask", "hold"]
Sender = Literal["student", "tutor"]

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "data" / "moderation.toml"

#: Categories found by the engine's own detectors (their words come from the locales).
BUILT_IN = ("phone", "email", "address", "social", "link")
_ACTIONS: tuple[str, ...] = get_args(Action)
_SENDERS: tuple[str, ...] = get_args(Sender)
_LOCALE_LISTS = (
    "digits",
    "at",
    "dot",
    "street_types",
    "street_stop",
    "phone_context",
    "number_context",
)
_CATEGORY = re.compile(r"[a-z][a-z_]*\Z")
_WORD_TAIL = re.compile(r"\w*")  # the rest of a word, from a position inside it


class Phrase(NamedTuple):
    """One pattern of the rules file, compiled, with its anchors (see ``_anchors``)."""

    category: str
    pattern: re.Pattern[str]
    anchors: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Anchored:
    """An alternation of patterns and its anchors (see ``_anchors``)."""

    pattern: re.Pattern[str]
    anchors: frozenset[str] | None

    def search(self, text: str, tokens: frozenset[str] | None, start: int, end: int) -> bool:
        """Whether the pattern matches in ``text[start:end]``, the window widened to the
        end of the word it ends in: a word is read whole ("llamas" cut at the window's end
        would read as the listed "llama"), and the search still stops near the window.
        ``tokens`` (the words of ``text``, or None) let it answer no at once when no anchor
        is among them, with the same answer."""
        if tokens is not None and self.anchors is not None and self.anchors.isdisjoint(tokens):
            return False
        tail = _WORD_TAIL.match(text, end)  # always matches (perhaps nothing)
        stop = tail.end() if tail is not None else end
        return self.pattern.search(text, start, stop) is not None


@dataclass(frozen=True, slots=True)
class Rules:
    """Compiled moderation rules; read-only once built."""

    source: Path
    actions: Mapping[str, Action]
    alert: frozenset[str]
    senders: Mapping[str, frozenset[str]]
    #: every phrase pattern of every locale, matched on the folded text
    phrases: tuple[Phrase, ...]
    #: anchor word -> the phrases (indices) that can only match with it in the message
    phrase_index: Mapping[str, tuple[int, ...]]
    #: phrases without anchors: always tried
    phrase_always: tuple[int, ...]
    #: word key (see :func:`normalise.word_key`) -> category, and prefixes for ``word*``
    words: Mapping[str, str]
    word_prefixes: tuple[tuple[str, str], ...]
    #: any word starting with one of the prefixes, for the engine's quick pass
    word_prefix: re.Pattern[str] | None
    allow_hosts: tuple[str, ...]
    famous_addresses: tuple[str, ...]
    own_address: Anchored | None
    handle_ignore: frozenset[str]
    phone_run: re.Pattern[str]
    digit_word: re.Pattern[str]
    phone_context: Anchored | None
    number_context: Anchored | None
    email: re.Pattern[str]
    link: re.Pattern[str]
    street: re.Pattern[str] | None
    #: words whose absence rules a detector out (the engine's quick checks)
    digit_words: frozenset[str]
    at_words: frozenset[str]
    street_words: frozenset[str]

    @property
    def categories(self) -> frozenset[str]:
        """Every category these rules can report."""
        return frozenset(self.actions)


def load_rules(path: Path | None = None) -> Rules:
    """Read and compile the rules at ``path`` (``None``: the shipped default file).

    Raises :class:`ConfigError` naming the file and the culprit when the file cannot be
    read, is not TOML, or breaks a rule of its shape (unknown action, a category without an
    action, a pattern that does not compile, a word with a space...).

    The file is read on every call; what it compiles to is kept per process by its path and
    text (:class:`Rules` is immutable), so an unchanged file is not compiled again: the
    shipped file's thousands of patterns took ~0.4 s, paid by every broker started in one
    process (the test suite starts hundreds). A changed file is compiled afresh.
    """
    chosen = path or SHIPPED_RULES
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the moderation rules {chosen}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"moderation rules {chosen}: not UTF-8 text ({exc.reason})") from exc
    return _compiled(text, chosen)


@functools.lru_cache(maxsize=8)
def _compiled(text: str, chosen: Path) -> Rules:
    """:func:`load_rules` after the read (only a result is kept, never an error)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"moderation rules {chosen}: not valid TOML: {exc}") from exc
    try:
        return compile_rules(data, chosen)
    except _Bad as exc:
        raise ConfigError(f"moderation rules {chosen}: {exc}") from None


class _Bad(Exception):
    """A validation failure; :func:`load_rules` adds the file name."""


def compile_rules(data: Mapping[str, Any], source: Path) -> Rules:
    """Validate parsed TOML ``data`` and compile it (raises ``_Bad`` with the key at fault)."""
    known = {"version", "actions", "alert", "senders", "links", "email", "addresses", "locales"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _Bad(f"unknown top-level key {unknown[0]!r}")
    if data.get("version") != 1:
        raise _Bad(f"key 'version' must be 1, got {data.get('version')!r}")
    actions: dict[str, Action] = {}
    for category, action in _table(data, "actions").items():
        if not _CATEGORY.match(category):
            raise _Bad(f"actions: {category!r} is not a category name (lower-case letters)")
        if action not in _ACTIONS:
            raise _Bad(f"actions.{category}: {action!r} is not one of {', '.join(_ACTIONS)}")
        actions[category] = cast(Action, action)
    for category in BUILT_IN:
        if category not in actions:
            raise _Bad(f"actions: the built-in category {category!r} needs an action")
    alert = frozenset(_strings(data, "alert", "alert"))
    senders: dict[str, frozenset[str]] = {}
    for category, who in _table(data, "senders").items():
        listed = _strings({category: who}, category, f"senders.{category}")
        bad = [s for s in listed if s not in _SENDERS]
        if bad:
            raise _Bad(f"senders.{category}: {bad[0]!r} is not student or tutor")
        senders[category] = frozenset(listed)
    for category in (*alert, *senders):
        _known_category(category, actions, "alert/senders")

    links = _table(data, "links")
    allow = tuple(h.lower().removeprefix("www.") for h in _strings(links, "allow", "links.allow"))
    tlds = _strings(links, "tlds", "links.tlds")
    handle_ignore = frozenset(_strings(links, "handle_ignore", "links.handle_ignore"))
    providers = _strings(_table(data, "email"), "providers", "email.providers")
    addresses = _table(data, "addresses")
    famous = tuple(
        " ".join(fold(a).split()) for a in _strings(addresses, "famous", "addresses.famous")
    )
    own = _strings(addresses, "own", "addresses.own")

    vocab: dict[str, list[str]] = {name: [] for name in _LOCALE_LISTS}
    phrase_parts: dict[str, list[tuple[str, str]]] = {}
    words: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    locales = _table(data, "locales")
    if not locales:
        raise _Bad("locales: at least one locale is needed")
    for locale, body in locales.items():
        where = f"locales.{locale}"
        if not isinstance(body, dict):
            raise _Bad(f"{where} must be a table")
        extra = sorted(set(body) - {*_LOCALE_LISTS, "phrases", "words"})
        if extra:
            raise _Bad(f"{where}: unknown key {extra[0]!r}")
        for name in _LOCALE_LISTS:
            vocab[name].extend(fold(w) for w in _strings(body, name, f"{where}.{name}"))
        for category, patterns in _table(body, "phrases", where).items():
            _known_category(category, actions, f"{where}.phrases")
            for i, pattern in enumerate(_strings({category: patterns}, category, where)):
                label = f"{where}.phrases.{category}[{i}]"
                phrase_parts.setdefault(category, []).append((_phrase(pattern, label), label))
        for category, listed in _table(body, "words", where).items():
            _known_category(category, actions, f"{where}.words")
            for word in _strings({category: listed}, category, f"{where}.words"):
                key = word_key(word.removesuffix("*"))
                if not key or not re.fullmatch(r"\w+", key):
                    raise _Bad(f"{where}.words.{category}: {word!r} must be one word")
                if word.endswith("*"):
                    prefixes.append((key, category))
                else:
                    words[key] = category

    phrases = tuple(
        Phrase(category, _compile(r"(?<!\w)(?:" + part + r")(?!\w)", label), _anchors([part]))
        for category, parts in phrase_parts.items()
        for part, label in parts
    )
    index: dict[str, list[int]] = {}
    for i, phrase in enumerate(phrases):
        for word in phrase.anchors or ():
            index.setdefault(word, []).append(i)
    return Rules(
        source=source,
        actions=MappingProxyType(actions),
        alert=alert,
        senders=MappingProxyType(senders),
        phrases=phrases,
        phrase_index=MappingProxyType({w: tuple(ids) for w, ids in index.items()}),
        phrase_always=tuple(i for i, p in enumerate(phrases) if p.anchors is None),
        words=MappingProxyType(words),
        word_prefixes=tuple(prefixes),
        word_prefix=re.compile(r"(?<!\w)(?:" + _words([p for p, _ in prefixes]) + ")")
        if prefixes
        else None,
        allow_hosts=allow,
        famous_addresses=famous,
        own_address=_alternation([_phrase(p, "addresses.own") for p in own], "addresses.own"),
        handle_ignore=handle_ignore,
        phone_run=_phone_run(vocab["digits"]),
        digit_word=_compile(_digit_word(vocab["digits"]), "digits"),
        phone_context=_alternation(
            [_phrase(p, "phone_context") for p in vocab["phone_context"]], "phone_context"
        ),
        number_context=_alternation(
            [_phrase(p, "number_context") for p in vocab["number_context"]], "number_context"
        ),
        email=_email(vocab["at"], vocab["dot"], providers, tlds),
        link=_link(tlds),
        street=_street(vocab["street_types"], vocab["street_stop"]),
        digit_words=frozenset(vocab["digits"]),
        at_words=frozenset(w for w in vocab["at"] if w.isalpha()),
        street_words=frozenset(vocab["street_types"]),
    )


# -- pattern builders --------------------------------------------------------------------


def _phrase(pattern: str, label: str) -> str:
    """A rules-file pattern made ready to join: non-ASCII folded, each space outside a
    character class and a look-behind read as whitespace (``" ?"``/``" *"``: optional)."""
    if re.search(r"(?<!\\)[A-Z]", re.sub(r"\\.", "", pattern)):
        raise _Bad(f"{label}: write patterns in lower case: {pattern!r}")
    folded = "".join(fold(c) if not c.isascii() else c for c in pattern)
    out: list[str] = []
    in_class = False
    behind = 0  # depth of open look-behind groups
    depth: list[bool] = []  # for each open group: is it a look-behind?
    i = 0
    while i < len(folded):
        c = folded[i]
        if c == "\\":
            out.append(folded[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            lookbehind = folded.startswith(("(?<=", "(?<!"), i)
            depth.append(lookbehind)
            behind += lookbehind
        elif c == ")" and depth:
            behind -= depth.pop()
        elif c == " " and not behind:
            nxt = folded[i + 1] if i + 1 < len(folded) else ""
            out.append(r"\s*" if nxt in "?*" else r"\s+")
            i += 2 if nxt in "?*" else 1
            continue
        out.append(c)
        i += 1
    compiled = "".join(out)
    _compile(compiled, label)
    return compiled


def _compile(pattern: str, label: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _Bad(f"{label}: the pattern does not compile ({exc}): {pattern!r}") from None


def _alternation(parts: list[str], label: str) -> Anchored | None:
    if not parts:
        return None
    pattern = _compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", label)
    return Anchored(pattern, _anchors(parts))


def _words(words: list[str]) -> str:
    """An alternation of literal words, longest first (so ``"st"`` never shadows
    ``"street"``)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _digit_word(digits: list[str]) -> str:
    return r"(?<![a-z])(?:" + _words(digits) + r")(?![a-z])" if digits else r"(?!)"


def _phone_run(digits: list[str]) -> re.Pattern[str]:
    """A run of digits and spoken digits with the separators phone numbers are written
    with (spaces, dots, commas, dashes, parentheses), an optional leading ``+``; not
    starting inside a word ("H2SO4 uno dos..."), not across the end of a sentence (". ")."""
    token = r"(?:\d|" + _digit_word(digits) + ")"
    return re.compile(
        r"(?<![a-z])(?:\+\s?)?\(?" + token + r"(?:(?:[\s,\-()]|\.(?!\s)){0,3}" + token + r")*"
    )


def _email(at: list[str], dot: list[str], providers: list[str], tlds: list[str]) -> re.Pattern[str]:
    """Plain addresses, and addresses written out: ``ana at gmail dot com``,
    ``ana (at) gmail``, ``ana arroba hotmail punto com``."""
    name = r"[a-z0-9][a-z0-9._%+\-]*"
    plain = name + r"@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}"
    at_words = _words(at) or "(?!)"
    dot_words = _words(dot) or "(?!)"
    boxed_at = r"(?:\s*@\s*|\s*[(\[{<]\s*(?:" + at_words + r"|@)\s*[)\]}>]\s*)"
    word_at = r"\s+(?:" + at_words + r")\s+"
    word_dot = r"(?:\s*[(\[{<]\s*(?:" + dot_words + r")\s*[)\]}>]\s*|\s+(?:" + dot_words + r")\s+)"
    any_dot = r"(?:\s*\.\s*|" + word_dot + ")"
    ending = r"(?:" + _words([*tlds, "com", "net", "org", "edu", "es"]) + r")(?![a-z])"
    provider = r"(?:" + (_words(providers) or "(?!)") + r")(?![a-z])"

    def domain(dot: str) -> str:
        return r"[a-z0-9\-]+(?:" + dot + r"[a-z0-9\-]+)*?" + dot + ending

    # "ana (at) gmail.com", "ana@gmail dot com": any dot after a boxed or spaced "@";
    # "ana at gmail dot com": after the bare word, a written-out dot or a known provider
    # ("meet me at coolsite.com" is a link, not an address).
    by_provider = provider + r"(?:" + any_dot + ending + ")?"
    boxed = boxed_at + r"(?:" + domain(any_dot) + "|" + by_provider + ")"
    worded = word_at + r"(?:" + domain(word_dot) + "|" + by_provider + ")"
    return re.compile(r"(?<![\w.])(?:" + plain + "|" + name + r"(?:" + boxed + "|" + worded + "))")


def _link(tlds: list[str]) -> re.Pattern[str]:
    """``http(s)://...``, ``www....``, a bare ``host.tld`` with a listed ending, and any
    ``host.xx/path``. Group ``host`` is the host name."""
    host = r"(?P<host>(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+"
    scheme = r"(?:https?://|www\.)" + host + r"[a-z0-9\-]+)(?::\d+)?(?:[/?#][^\s<>\"']*)?"
    ending = r"(?:" + (_words(tlds) or "(?!)") + r")"
    bare = r"(?P<bare>(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+" + ending + r")(?![\w\-(])"
    pathed = r"(?P<pathed>(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,6})/[^\s<>\"']*"
    tail = r"(?:/[^\s<>\"']*)?"
    return re.compile(
        r"(?<![\w@.\-])(?:" + scheme + "|" + bare + tail + "|" + pathed + r")(?<![.,;:!?)])"
    )


def _street(types: list[str], stop: list[str]) -> re.Pattern[str] | None:
    """``<number> <one to three name words> <street type>[, apt N]`` ("123 Main St",
    "1234 W Olive Ave apt 5"); name words never one of ``stop`` ("4 blocks down Main St")."""
    if not types:
        return None
    stop_words = r"(?!(?:" + (_words(stop) or "(?!)") + r")(?![a-z]))"
    name = r"\s+" + stop_words + r"[a-z0-9][a-z'\-]*\.?"
    unit = r"(?:,?\s+(?:apt|apartment|unit|suite|ste|#)\.?\s*#?\s*[a-z0-9\-]+)?"
    return re.compile(
        r"(?<![\w.,])\d{1,6}[a-z]?(?:"
        + name
        + r"){1,3}\s+(?:"
        + _words(types)
        + r")(?!\w)\.?"
        + unit
    )


# -- anchors -----------------------------------------------------------------------------
#
# A match of a phrase always contains, as a whole word, one word of its pattern's most
# selective "slot" (a part between two runs of required whitespace): "(add|follow|dm) me
# on ..." -> {"add", "follow", "dm"}. When none of a category's anchors is among a message's
# words, the category's pattern cannot match there and is not run. A pattern whose slots
# are all open-ended ("[a-z]+") leaves its category without anchors (always run).

_Items = list[tuple[Any, Any]]
_SPACE = "\0"  # stands for required whitespace while expanding a slot
_OPEN = "\1"  # stands for "anything may follow" (an open-ended part such as [a-z]+)
_MAX_STRINGS = 256
#: Words too frequent to be a useful anchor (chosen only when a pattern has nothing else).
_COMMON = frozenset(
    "a i u me my mi tu te yo your you the to is es de la el en que no y and of in on it this "
    "that do can what how se lo por con un una los las le we are im at be for or o".split()
)


def _anchors(parts: list[str]) -> frozenset[str] | None:
    """The anchors of an alternation of ``parts``: a match contains one of them."""
    anchors: set[str] = set()
    for part in parts:
        found = _pattern_anchors(part)
        if found is None:
            return None
        anchors |= found
    return frozenset(anchors)


def _pattern_anchors(pattern: str) -> frozenset[str] | None:
    """The anchor words of one pattern, or None when it has no closed slot."""
    items: _Items = list(_sre_parser.parse(pattern))
    best: frozenset[str] | None = None
    slot: _Items = []
    for item in [*items, None]:
        if item is not None and not _required_space(item):
            slot.append(item)
            continue
        words = _slot_anchors(slot)
        if words is not None and (best is None or _score(words) > _score(best)):
            best = words
        slot = []
    return best


def _score(words: frozenset[str]) -> tuple[int, int]:
    return (min(0 if w in _COMMON else len(w) for w in words), -len(words))


def _required_space(item: tuple[Any, Any]) -> bool:
    """``\\s+`` (at least one whitespace character)."""
    op, av = item
    if op is not _C.MAX_REPEAT or av[0] < 1:
        return False
    return _is_space(list(av[2]))


def _is_space(items: _Items) -> bool:
    return items == [(_C.IN, [(_C.CATEGORY, _C.CATEGORY_SPACE)])]


def _slot_anchors(slot: _Items) -> frozenset[str] | None:
    """The leading whole word of every string a slot can start with, if they are few."""
    strings = _expand(slot)
    words: set[str] = set()
    for s in strings:
        head = re.match(r"\w+", s)
        if head is None or s[head.end() : head.end() + 1] == _OPEN:
            return None  # no word, or a word that may go on ("[a-z]+" after it)
        words.add(head.group())
    return frozenset(words) or None


def _expand(items: _Items) -> set[str]:
    """The strings ``items`` can start with, each cut at the first required whitespace
    (ending in _SPACE) or open-ended part (ending in _OPEN)."""
    out = {""}
    for op, av in items:
        part = _expand_one(op, av)
        if part is None or len(out) * len(part) > _MAX_STRINGS:
            part = {_OPEN}
        out = {a if _ended(a) else _cut(a + b) for a in out for b in part}
        if all(_ended(a) for a in out):
            break
    return out


def _ended(s: str) -> bool:
    return _SPACE in s or _OPEN in s


def _cut(s: str) -> str:
    """``s`` up to and including its first _SPACE or _OPEN."""
    ends = [i for i in (s.find(_SPACE), s.find(_OPEN)) if i >= 0]
    return s[: min(ends) + 1] if ends else s


def _expand_one(op: Any, av: Any) -> set[str] | None:
    if op is _C.LITERAL:
        return {chr(av)}
    if op is _C.IN:
        if _is_space([(op, av)]):
            return {_SPACE}
        if all(o is _C.LITERAL for o, _ in av):
            return {chr(a) for _, a in av}
        return None
    if op is _C.SUBPATTERN:
        return _expand(list(av[3]))
    if op is _C.BRANCH:
        union: set[str] = set()
        for choice in av[1]:
            union |= _expand(list(choice))
        return union
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        low, high, inner = av[0], av[1], list(av[2])
        if _is_space(inner):
            return {_SPACE} if low >= 1 else {"", _SPACE}
        found = _expand(inner)
        if high > 1:
            # The first repetition decides how a match starts; one that ends before a
            # space or an open part may be followed by another: anything may follow.
            found = {s if _ended(s) else s + _OPEN for s in found}
        return found | {""} if low == 0 else found
    if op in (_C.ASSERT, _C.ASSERT_NOT, _C.AT):
        return {""}
    return None


# -- shape checks ------------------------------------------------------------------------


def _table(data: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise _Bad(f"{where + '.' if where else ''}{key} must be a table")
    return value


def _strings(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Bad(f"{where} must be a list of non-empty strings")
    return cast(list[str], value)


def _known_category(category: str, actions: Mapping[str, Action], where: str) -> None:
    if category not in actions:
        raise _Bad(f"{where}: category {category!r} has no entry in [actions]")
