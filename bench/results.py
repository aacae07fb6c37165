"""bench/RESULTS.md: every benchmark rewrites only its own ``## ...`` section of it."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results\n"


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the section under ``heading`` (up to the next ``## `` heading) replaced
    by ``body``, one blank line before the next section; appended if absent."""
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: body + "\n", text, count=1).rstrip("\n") + "\n"
    return text.rstrip("\n") + "\n\n" + body


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section under ``heading`` of the results file at ``path``."""
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    path.write_text(replace_section(text, heading, body), encoding="utf-8")
