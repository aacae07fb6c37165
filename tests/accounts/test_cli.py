"""``homework-help user|purge|student`` through web.cli.main, against a migrated database."""

from __future__ import annotations

import io
import json

import pytest

from tests.accounts.conftest import PASSWORD, seed_history
from web.cli import main


@pytest.fixture
def cli_db(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_db)
    return sqlite_db


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_user_lifecycle(cli_db: str, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(capsys, "user", "add", "ms.x", "--role", "tutor", "--vendor", "paper",
                       "--languages", "en,es", "--name", "Ms. X", "--password-stdin",
                       stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0 and "ms.x" in out and "paper [en,es]" in out and "password" not in out
    code, out, _ = run(capsys, "user", "add", "boss", "--role", "staff", "--scope", "district")
    assert code == 0
    generated = out.split("password (shown once): ")[1].strip()
    assert len(generated) >= 12

    code, _, err = run(capsys, "user", "add", "ms.x", "--role", "staff", "--scope", "district")
    assert code == 2 and "taken" in err
    code, _, err = run(capsys, "user", "add", "bad", "--role", "tutor", "--vendor", "tutorcom",
                       "--languages", "zh")
    assert code == 2 and "does not serve zh" in err
    code, _, err = run(capsys, "user", "add", "weak", "--role", "staff", "--scope", "district",
                       "--password-stdin", stdin="short\n", monkeypatch=monkeypatch)
    assert code == 2 and "12" in err

    assert run(capsys, "user", "disable", "ms.x")[0] == 0
    code, out, _ = run(capsys, "user", "list")
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["boss", "ms.x"]
    assert "disabled" in lines[1] and "active" in lines[0]
    assert run(capsys, "user", "enable", "ms.x")[0] == 0
    code, out, _ = run(capsys, "user", "list", "--role", "tutor")
    assert out.count("\n") == 1 and "active" in out
    code, out, _ = run(capsys, "user", "reset", "ms.x")
    assert code == 0 and "password (shown once)" in out
    assert run(capsys, "user", "disable", "nobody")[0] == 2


def test_purge_prints_counts(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    asyncio.run(seed_history(cli_db, "s-old", "elem", days_ago=4000, messages=1))
    code, out, _ = run(capsys, "purge")
    assert code == 0 and "purged 1 requests, 1 sessions, 1 messages" in out
    assert "purged 0 requests, 0 sessions, 0 messages" in run(capsys, "purge")[1]


def test_student_export_and_delete(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    rid, sid = asyncio.run(seed_history(cli_db, "s-ana", "elem", days_ago=2))
    code, out, _ = run(capsys, "student", "export", "s-ana")
    data = json.loads(out)
    assert code == 0 and [r["id"] for r in data["help_requests"]] == [rid]
    assert [s["id"] for s in data["tutoring_sessions"]] == [sid]
    code, out, _ = run(capsys, "student", "delete", "s-ana")
    assert code == 0 and "deleted 1 requests, 1 sessions, 0 messages" in out
    data = json.loads(run(capsys, "student", "export", "s-ana")[1])
    assert data["help_requests"] == [] and data["tutoring_sessions"] == []
    actions = [e["action"] for e in data["audit_entries"]]
    assert actions == ["student.export", "student.delete"]
    assert all(e["actor"].startswith("cli:") for e in data["audit_entries"])
