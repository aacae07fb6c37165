"""``homework-help route`` prints one JSON decision; exit 2 only for unusable input."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from routing.schools import SchoolDirectory
from tests.routing.conftest import schools_csv, shipped_text
from web.cli import main


@pytest.fixture
def schools(tmp_path: Path) -> Path:
    path = tmp_path / "schools.csv"
    path.write_text(schools_csv(), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["route", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_routed(capsys: pytest.CaptureFixture[str], schools: Path) -> None:
    code, out, _ = run(capsys, "--school", "s-k8", "--grade", "7", "--language", "es-MX",
                       "--subject", "algebra", "--schools-csv", str(schools))
    assert code == 0 and out.count("\n") == 1
    assert json.loads(out) == {"vendor": "paper", "queue": "paper:es", "overflow": False}


def test_unmet_also_exits_zero(capsys: pytest.CaptureFixture[str], schools: Path) -> None:
    code, out, _ = run(capsys, "--school", "h-912", "--grade", "10", "--language", "zh",
                       "--subject", "math", "--schools-csv", str(schools),
                       "--at", "2024-03-05T10:00:00-08:00")
    body = json.loads(out)
    assert code == 0 and body["unmet"] == "language_unsupported" and body["detail"]


def test_catalog_option_and_overflow(
    capsys: pytest.CaptureFixture[str], schools: Path, tmp_path: Path
) -> None:
    cat = tmp_path / "catalog.toml"
    cat.write_text(shipped_text().replace("enabled = false", "enabled = true"), encoding="utf-8")
    code, out, _ = run(capsys, "--school", "s-k12", "--grade", "3", "--language", "zh",
                       "--subject", "math", "--schools-csv", str(schools), "--catalog", str(cat))
    assert code == 0
    assert json.loads(out) == {"vendor": "paper", "queue": "paper:zh", "overflow": True,
                               "first_choice": "tutorcom",
                               "first_choice_unmet": "language_unsupported"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--catalog", "/no/such/catalog.toml"], "catalog"),
        (["--schools-csv", "/no/such/schools.csv"], "schools.csv"),
        (["--at", "yesterday"], "--at"),
    ],
)
def test_unusable_input_exits_2(
    capsys: pytest.CaptureFixture[str], schools: Path, args: list[str], words: str
) -> None:
    base = ["--grade", "3", "--language", "en", "--subject", "math"]
    if "--schools-csv" not in args:
        base += ["--schools-csv", str(schools)]
    code, out, err = run(capsys, *base, *args)
    assert code == 2 and out == "" and words in err


def test_malformed_catalog_and_schools_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "schools.csv"
    bad.write_text("id,name,region,low_grade,high_grade\na,A,East,K,99\n", encoding="utf-8")
    code, _, err = run(capsys, "--grade", "3", "--language", "en", "--subject", "math",
                       "--schools-csv", str(bad))
    assert code == 2 and "schools.csv:2" in err and "high_grade" in err
    cat = tmp_path / "catalog.toml"
    cat.write_text(shipped_text().replace('capacity = 2', 'capacity = -1', 1), encoding="utf-8")
    code, _, err = run(capsys, "--grade", "3", "--language", "en", "--subject", "math",
                       "--catalog", str(cat), "--schools-csv", str(bad))
    assert code == 2 and "paper" in err and "capacity" in err


def test_without_a_csv_the_database_directory_is_used(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from routing.schools import School, SchoolKind

    async def load_school_directory(settings: object) -> SchoolDirectory:
        return SchoolDirectory({"db-k8": School("db-k8", "DB", "East", 0, 8, SchoolKind.SPAN)})

    fake = types.ModuleType("broker.directory")
    fake.load_school_directory = load_school_directory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "broker.directory", fake)
    code, out, _ = run(capsys, "--school", "db-k8", "--grade", "7", "--language", "fr",
                       "--subject", "math")
    assert code == 0 and json.loads(out)["vendor"] == "paper"


def test_empty_database_falls_back_to_the_demo_schools(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.commands.route as command

    async def load_school_directory(settings: object) -> SchoolDirectory:
        return SchoolDirectory()

    fake = types.ModuleType("broker.directory")
    fake.load_school_directory = load_school_directory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "broker.directory", fake)
    if not command.DEMO_SCHOOLS.exists():
        pytest.skip("the demo district's schools.csv is not generated yet")
    first = command.DEMO_SCHOOLS.read_text(encoding="utf-8").splitlines()[1].split(",")
    code, out, _ = run(capsys, "--school", first[0], "--grade", first[4], "--language", "en",
                       "--subject", "math")
    body = json.loads(out)
    assert code == 0 and "vendor" in body, body
