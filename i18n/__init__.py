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


# Catalog names for tags CLDR spells differently: Filipino is shipped as Tagalog (``tl``).
ALIASES = {"fil": "tl"}
# A bare language whose catalogs are split by script: its usual script.
DEFAULT_SCRIPT = {"zh": "Hans"}


def match(locale: str | None) -> str | None:
    """The shipped locale for a BCP 47 or POSIX tag, or ``None`` if none fits.

    Regional tags fall back sensibly: ``es-MX`` -> ``es``; Chinese by script, which CLDR
    infers from the region (``zh-TW``, ``zh-HK`` -> ``zh_Hant``; ``zh-CN``, ``zh`` ->
    ``zh_Hans``); ``fil`` and ``tl-PH`` -> ``tl``."""
    if not locale:
        return None
    if locale.strip().replace("-", "_").lower() == "en_xa":
        from i18n import pseudo

        return pseudo.PSEUDO_LOCALE if pseudo.enabled() else None
    return _match(locale, available_locales())


@lru_cache(maxsize=1024)
def _match(locale: str, available: frozenset[str]) -> str | None:
    """:func:`match` for a real tag against ``available`` (cached: CLDR parsing is not free,
    and every page and catalog request asks)."""
    try:
        parsed = Locale.parse(locale.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError, TypeError):
        return None
    language = ALIASES.get(parsed.language, parsed.language)
    script = parsed.script or DEFAULT_SCRIPT.get(parsed.language)
    candidates = [str(parsed)]
    if script:
        candidates.append(f"{language}_{script}")
    candidates.append(language)
    for candidate in candidates:
        if candidate in available:
            return candidate
    return None


def negotiate(locale: str | None) -> str:
    """Best supported locale for a tag such as ``es-MX`` or ``es_MX``; ``en`` by default."""
    return match(locale) or DEFAULT_LOCALE


def babel_locale(name: str) -> Locale:
    """The CLDR locale for formatting in a shipped locale (``tl`` is CLDR's ``fil``; the
    pseudo-locale ``en_XA`` formats as English)."""
    if name == "en_XA":
        return Locale.parse("en")
    return Locale.parse(ALIASES_BACK.get(name, name))


ALIASES_BACK = {v: k for k, v in ALIASES.items()}


def html_lang(name: str) -> str:
    """A shipped locale as an HTML ``lang`` value (BCP 47: ``zh-Hant``)."""
    return name.replace("_", "-")


def direction(name: str) -> str:
    """``rtl`` or ``ltr`` for a shipped locale (Arabic and Persian are right-to-left)."""
    try:
        return str(babel_locale(name).text_direction)
    except (ValueError, UnknownLocaleError):
        return "ltr"


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
    if name == "en_XA":
        from i18n import pseudo

        return pseudo.translations()
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
