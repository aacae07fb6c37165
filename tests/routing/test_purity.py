"""routing/ stays pure: importing all of it loads no broker, web, asyncio or database code."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import routing

FORBIDDEN = {"broker", "web", "asyncio", "aiohttp", "sqlalchemy", "redis", "socketio",
             "asyncpg", "aiosqlite", "alembic"}
ROOT = Path(routing.__file__).parent


def test_importing_every_routing_module_loads_nothing_forbidden() -> None:
    names = [f"routing.{m.name}" for m in pkgutil.iter_modules([str(ROOT)])]
    assert "routing.decision" in names and "routing.school_csv" in names
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT.parent)
    loaded = set(json.loads(out.stdout))
    assert "routing" in loaded
    assert not loaded & FORBIDDEN, loaded & FORBIDDEN


def test_no_routing_source_imports_forbidden_packages_or_opens_files() -> None:
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & FORBIDDEN, f"{path.name}:{node.lineno} imports {roots}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name}:{node.lineno} opens a file"
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"read_text", "read_bytes", "write_text"}, (
                    f"{path.name}:{node.lineno} does file I/O"
                )
