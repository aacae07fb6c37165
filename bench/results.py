"""bench/RESULTS.md: every benchmark rewrites only its own ``## ...`` section of it.

A section may end with notes written by hand (what earlier runs showed, read with the
tables): everything from a line that is exactly :data:`KEPT` to the end of the section is
carried over when the benchmark rewrites the section, so a new run never erases them.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results\n"
KEPT = "<!-- kept when the benchmark rewrites this section: notes by hand -->"


def kept_notes(section: str) -> str:
    """The hand-kept tail of a section (from the :data:`KEPT` line on), or ``""``."""
    at = re.search(rf"^{re.escape(KEPT)}$", section, re.M)
    return section[at.start() :].strip("\n") if at else ""


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the section under ``heading`` (up to the next ``## `` heading) replaced
    by ``body`` plus the old section's hand-kept notes (:func:`kept_notes`), one blank line
    before the next section; appended if absent."""
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    found = pattern.search(text)
    if found is None:
        return text.rstrip("\n") + "\n\n" + body
    notes = "" if KEPT in body else kept_notes(found.group(0))
    if notes:
        body = body.rstrip("\n") + "\n\n" + notes + "\n"
    return (text[: found.start()] + body + "\n" + text[found.end() :]).rstrip("\n") + "\n"


def publish(heading: str, body: str, *, write: bool, path: Path = RESULTS) -> int:
    """A benchmark's last step: print its section and, if ``write``, put it in the results
    file at ``path`` (:func:`write_section`); the exit status (0)."""
    print(body)
    if write:
        write_section(heading, body, path)
    return 0


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section under ``heading`` of the results file at ``path``,
    keeping its hand-kept notes."""
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    path.write_text(replace_section(text, heading, body), encoding="utf-8")
