"""The translation layer: every visible string goes through gettext catalogs compiled by Babel.

``translator(locale)`` returns a :class:`gettext.NullTranslations` (falling back to the
source English) for a BCP 47 or POSIX locale; pages and scripts take strings only from it.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"


class I18nError(Exception):
    """The one exception base of the i18n package."""


def negotiate(locale: str | None) -> str:
    """Best supported locale for a tag such as ``es-MX`` or ``es_MX``; ``en`` by default."""
    if not locale:
        return DEFAULT_LOCALE
    try:
        parsed = Locale.parse(locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError, TypeError):
        return DEFAULT_LOCALE
    available = available_locales()
    for candidate in (str(parsed), parsed.language):
        if candidate in available:
            return candidate
    return DEFAULT_LOCALE


@lru_cache(maxsize=1)
def available_locales() -> frozenset[str]:
    found = {DEFAULT_LOCALE}
    if LOCALES_DIR.is_dir():
        found.update(p.name for p in LOCALES_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())
    return frozenset(found)


@lru_cache(maxsize=64)
def translator(locale: str | None) -> gettext.NullTranslations:
    """Translations for ``locale`` (compiled ``.mo`` if present, else compiled on the fly)."""
    name = negotiate(locale)
    mo = LOCALES_DIR / name / "LC_MESSAGES" / f"{DOMAIN}.mo"
    po = mo.with_suffix(".po")
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return gettext.GNUTranslations(fh)
    if po.is_file():
        return _compile(po)
    return gettext.NullTranslations()


def _compile(po: Path) -> gettext.NullTranslations:
    from io import BytesIO

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)
