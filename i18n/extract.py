"""Extract, update and compile the gettext catalogs (templates, Python and JavaScript).

Usage (from the repository root)::

    python -m i18n.extract extract            # sources -> i18n/locales/messages.pot
    python -m i18n.extract update             # messages.pot -> every locale's messages.po
    python -m i18n.extract compile            # messages.po -> messages.mo (gitignored)
    python -m i18n.extract init fr            # start a new locale from messages.pot
    python -m i18n.extract check              # exit 1 if messages.pot is out of date
    python -m i18n.extract all                # extract, update, compile

A thin wrapper over Babel's ``pybabel`` so nobody needs to remember its flags: the
keywords are gettext's plus ``t`` (the scripts' ``t("...")``) and ``N_`` (Python markers).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
I18N = ROOT / "i18n"
LOCALES = I18N / "locales"
POT = LOCALES / "messages.pot"
CFG = I18N / "babel.cfg"
KEYWORDS = ["-k", "t", "-k", "N_"]
HEADER = [
    "--project",
    "homework-help",
    "--copyright-holder",
    "homework-help contributors",
    "--msgid-bugs-address",
    "tutoring-services@district.invalid",
]


def pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])  # type: ignore[no-untyped-call]


def extract(out: Path = POT) -> None:
    # Run from the repository root on ".", so locations are relative paths *before* Babel
    # wraps its location comments: the .pot must not depend on where the checkout lives.
    with contextlib.chdir(ROOT):
        pybabel(
            "extract", "-F", str(CFG), *KEYWORDS, *HEADER, "--sort-by-file",
            "-o", str(out.resolve()), ".",
        )


def locales() -> list[str]:
    return sorted(p.name for p in LOCALES.iterdir() if (p / "LC_MESSAGES").is_dir())


def update() -> None:
    if locales():
        pybabel(
            "update", "-i", str(POT), "-d", str(LOCALES), "--no-fuzzy-matching", "--ignore-obsolete"
        )


def compile_() -> None:
    if locales():
        pybabel("compile", "-d", str(LOCALES), "--statistics")


def init(locale: str) -> None:
    pybabel("init", "-i", str(POT), "-d", str(LOCALES), "-l", locale)


Location = tuple[str, int | None]
Message = tuple[object, str | None, tuple[Location, ...], tuple[str, ...], tuple[str, ...]]


def messages(pot: Path) -> list[Message]:
    """The catalog's messages as (id, context, locations, flags, extracted comments).

    Header lines (creation date, ``Generated-By`` with Babel's version) are left out on
    purpose: they change with the day and the tool, never with the sources.
    """
    with pot.open("rb") as f:
        catalog = read_po(f)
    return [
        (
            m.id,
            m.context,
            tuple(m.locations),
            tuple(sorted(m.flags)),
            tuple(m.auto_comments),
        )
        for m in catalog
        if m.id
    ]


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "messages.pot"
        extract(fresh)
        if not POT.is_file() or messages(fresh) != messages(POT):
            print("i18n/locales/messages.pot is out of date: run python -m i18n.extract extract")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "all"
    if command == "extract":
        extract()
    elif command == "update":
        update()
    elif command == "compile":
        compile_()
    elif command == "init" and len(args) == 2:
        init(args[1])
    elif command == "check":
        return check()
    elif command == "all":
        extract()
        update()
        compile_()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
