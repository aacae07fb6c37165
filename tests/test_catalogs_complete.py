"""Every shipped catalog is complete and correct (issue 13): each of messages.pot's messages
translated, none fuzzy, every placeholder kept (``{name}`` and ``%(name)s``: the same names,
any order), Babel's own checks passing (python-format), and every plural form the locale's
CLDR rules need filled (Arabic: six). The checks are also run against broken copies, so a
check that could never fail would be caught here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from i18n import LOCALES_DIR
from i18n.extract import POT

SHIPPED = sorted(p.name for p in LOCALES_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())
PLACEHOLDER = re.compile(r"\{\w+\}|%\(\w+\)[sdif]")
# A '%' that is no placeholder: Jinja's and Python's gettext apply `text % variables` to
# templates' messages, so a translation's bare "%" (e.g. "rate %)") fails the page.
PERCENT = re.compile(r"%\(\w+\)[sdif]|%%")
# The locales issue 13 names; a catalog missing from the shipped ones fails the suite.
REQUIRED = {"es", "zh_Hans", "zh_Hant", "fr", "ko", "hy", "vi", "tl", "ru", "ar", "fa"}


def _catalog(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def problems(catalog: Catalog, template: Catalog) -> list[str]:
    """What is wrong with ``catalog`` against ``template`` (empty when nothing is)."""
    found: list[str] = []
    wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    have = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        have[key] = message
    for key in sorted(wanted - have.keys()):
        found.append(f"missing: {key[:60]!r}")
    for key, message in have.items():
        if key not in wanted:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if message.fuzzy:
            found.append(f"fuzzy: {key[:60]!r}")
        if not all(strings):
            found.append(f"untranslated: {key[:60]!r}")
            continue
        if isinstance(message.id, tuple) and len(strings) != catalog.num_plurals:
            found.append(f"plural forms {len(strings)} of {catalog.num_plurals}: {key[:60]!r}")
        expected = {tuple(sorted(PLACEHOLDER.findall(i))) for i in ids}
        for text in strings:
            if tuple(sorted(set(PLACEHOLDER.findall(text)))) not in {
                tuple(sorted(set(e))) for e in expected
            }:
                found.append(f"placeholders differ: {key[:60]!r} -> {text[:60]!r}")
        if not any("%" in PERCENT.sub("", i) for i in ids):
            for text in strings:
                if "%" in PERCENT.sub("", text):
                    found.append(f"bare %: {key[:60]!r} -> {text[:60]!r}")
        for error in message.check(catalog):
            found.append(f"babel: {key[:60]!r}: {error}")
    return found


@pytest.fixture(scope="module")
def template() -> Catalog:
    return _catalog(POT)


def test_every_required_locale_is_shipped() -> None:
    assert REQUIRED <= set(SHIPPED), sorted(REQUIRED - set(SHIPPED))


@pytest.mark.parametrize("locale", [name for name in SHIPPED if name != "en"])
def test_the_catalog_is_complete_and_correct(locale: str, template: Catalog) -> None:
    catalog = _catalog(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po")
    found = problems(catalog, template)
    assert not found, f"{locale}: {len(found)} problems, first: " + "; ".join(found[:8])


def test_arabic_needs_six_plural_forms() -> None:
    catalog = _catalog(LOCALES_DIR / "ar" / "LC_MESSAGES" / "messages.po")
    assert catalog.num_plurals == 6


def test_the_checks_catch_what_they_are_for(template: Catalog) -> None:
    """Broken copies of a real catalog: each fault is reported."""
    catalog = _catalog(LOCALES_DIR / "es" / "LC_MESSAGES" / "messages.po")
    assert problems(catalog, template) == []
    singular = next(m for m in catalog if m.id and isinstance(m.id, str) and "{" in m.id)
    plural = next(m for m in catalog if m.id and isinstance(m.id, tuple))
    other = next(m for m in catalog if m.id and isinstance(m.id, str) and "{" not in m.id
                 and m is not singular)
    singular.string = PLACEHOLDER.sub("{oops}", singular.string)
    plural.string = (plural.string[0],)  # a form missing
    other.flags.add("fuzzy")
    percent = next(m for m in catalog if m.id and isinstance(m.id, str) and "%" not in m.id
                   and m not in (singular, other))
    percent.string += " (50 %)"
    found = problems(catalog, template)
    assert any(p.startswith("bare %") for p in found)
    assert any(p.startswith("placeholders differ") for p in found)
    assert any(p.startswith("plural forms 1 of 2") for p in found)
    assert any(p.startswith("fuzzy") for p in found)
    catalog.delete(other.id)
    assert any(p.startswith("missing") for p in problems(catalog, template))


# A t("...") call with a literal first argument in the pages' scripts (comments left out).
JS_CALL = re.compile(r'(?<![\w.])t\(\s*"((?:[^"\\\n]|\\.)*)"')
JS_COMMENT = re.compile(r"^\s*//.*$|/\*.*?\*/", re.S | re.M)


def scripts_missing_from(template: Catalog, scripts: list[Path]) -> list[str]:
    """Each ``t("...")`` literal of ``scripts`` that the template does not hold: Babel's
    extractor misses a t() inside a template literal's ``${...}`` or nested in another
    t()'s arguments, and such a text would stay English in every locale."""
    wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    missing = []
    for path in scripts:
        code = JS_COMMENT.sub("", path.read_text(encoding="utf-8"))
        for match in JS_CALL.finditer(code):
            text = match.group(1).encode().decode("unicode_escape")
            if text not in wanted:
                missing.append(f"{path.name}: {text}")
    return missing


def test_every_script_text_is_in_the_catalog() -> None:
    root = Path(__file__).resolve().parents[1] / "web" / "static" / "js"
    scripts = sorted(p for p in root.glob("*.js"))
    assert scripts
    assert scripts_missing_from(_catalog(POT), scripts) == []


def test_script_check_catches_a_hidden_call(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.js"
    hidden.write_text('const s = `${t("A text nobody extracted")}`;\n', encoding="utf-8")
    assert scripts_missing_from(_catalog(POT), [hidden]) == ["hidden.js: A text nobody extracted"]
