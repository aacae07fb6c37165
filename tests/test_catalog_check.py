"""The catalog check compares messages, never the header lines a tool or a day writes."""

from __future__ import annotations

from pathlib import Path

from i18n.extract import POT, messages


def _copy(tmp_path: Path, edit: tuple[str, str]) -> Path:
    text = POT.read_text(encoding="utf-8")
    old, new = edit
    assert old in text
    out = tmp_path / "messages.pot"
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


def test_header_lines_do_not_count(tmp_path: Path) -> None:
    text = POT.read_text(encoding="utf-8")
    generated = next(line for line in text.splitlines() if line.startswith('"Generated-By:'))
    created = next(line for line in text.splitlines() if line.startswith('"POT-Creation-Date:'))
    edited = text.replace(generated, '"Generated-By: Babel 99.0.0\\n"').replace(
        created, '"POT-Creation-Date: 2099-01-01 00:00+0000\\n"'
    )
    other = tmp_path / "messages.pot"
    other.write_text(edited, encoding="utf-8")
    assert messages(other) == messages(POT)


def test_a_changed_message_counts(tmp_path: Path) -> None:
    first_id = next(line for line in POT.read_text(encoding="utf-8").splitlines()
                    if line.startswith('msgid "') and line != 'msgid ""')
    changed = _copy(tmp_path, (first_id, first_id[:-1] + ' (changed)"'))
    assert messages(changed) != messages(POT)


def test_a_moved_message_counts(tmp_path: Path) -> None:
    location = next(line for line in POT.read_text(encoding="utf-8").splitlines()
                    if line.startswith("#: "))
    moved = _copy(tmp_path, (location, location + "0"))
    assert messages(moved) != messages(POT)
