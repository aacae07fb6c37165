"""The venv is exactly the lock, and the lock covers every dependency pyproject.toml names."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _lock(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        m = PIN.match(line)
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate()):
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_every_locked_package_is_installed_at_its_locked_version() -> None:
    wrong = {
        name: (version, _installed(name))
        for name, version in _lock("test.txt").items()
        if _installed(name) != version
    }
    assert not wrong, f"venv differs from requirements/test.txt (locked, installed): {wrong}"


def test_run_and_test_locks_agree() -> None:
    run, test = _lock("run.txt"), _lock("test.txt")
    assert {n: v for n, v in test.items() if n in run} == run


def test_every_declared_dependency_is_locked() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    locked = _lock("test.txt")
    missing = []
    for spec in declared:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            missing.append(spec)
    assert not missing, f"run `make lock`: not locked or out of range: {missing}"


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
