"""The pseudo-locale ``en-XA``: every message accented and about 40% longer, in brackets.

Loaded on a page (``?lang=en-XA``, only when ``HH_PSEUDO_LOCALE=1``: never offered to
people), it shows at a glance, and to the browser tests, any visible text that does not
come from the catalogs (it stays plain English), and any layout that clips or overflows
when a translation is longer than the English. Placeholders (``{name}``, ``%(name)s``) and
markup are kept as they are, so every page still works. Built in memory from
``messages.pot``; nothing is written to ``i18n/locales``.
"""

from __future__ import annotations

import gettext
import os
import re
from functools import lru_cache
from io import BytesIO

PSEUDO_LOCALE = "en_XA"
ENV = "HH_PSEUDO_LOCALE"
OPEN, CLOSE = "⟦", "⟧"
_ACCENTS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "àƀçđéƒĝĥîĵķĺɱñöþǫŕšţûṽŵẋýžÀßÇĐÉƑĜĤÎĴĶĹṀÑÖÞǪŔŠŢÛṼŴẊÝŽ",
)
# Kept whole: placeholders, markup and entities.
_KEEP = re.compile(r"(\{\w+\}|%\(\w+\)[sdif]|%[sd]|<[^>]+>|&\w+;)")


def enabled() -> bool:
    return os.environ.get(ENV, "") in {"1", "true", "yes"}


def pseudo(text: str) -> str:
    """``text`` accented, padded to about 140% of its length, between ⟦ and ⟧."""
    if not text:
        return text
    parts = _KEEP.split(text)
    out = "".join(part if i % 2 else part.translate(_ACCENTS) for i, part in enumerate(parts))
    letters = sum(len(part) for i, part in enumerate(parts) if not i % 2)
    pad = "·" * max(1, round(letters * 0.4))
    return f"{OPEN}{out}{pad}{CLOSE}"


@lru_cache(maxsize=1)
def translations() -> gettext.NullTranslations:
    """gettext translations of every message of ``messages.pot`` into the pseudo-locale."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    from i18n import LOCALES_DIR

    with (LOCALES_DIR / "messages.pot").open("rb") as fh:
        template = read_po(fh)
    catalog = Catalog(locale="en")
    for message in template:
        if not message.id:
            continue
        if isinstance(message.id, str):
            catalog.add(message.id, pseudo(message.id), flags=message.flags)
        else:
            catalog.add(message.id, tuple(pseudo(i) for i in message.id), flags=message.flags)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def messages() -> dict[str, str]:
    """msgid -> pseudo text of every singular message (the scripts' catalog)."""
    from babel.messages.pofile import read_po

    from i18n import LOCALES_DIR

    with (LOCALES_DIR / "messages.pot").open("rb") as fh:
        template = read_po(fh)
    return {m.id: pseudo(m.id) for m in template if m.id and isinstance(m.id, str)}
