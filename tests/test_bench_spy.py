"""bench.broker's py-spy summary: the project's own functions get inclusive time."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.broker import ROOT, _ours, print_spy

RAW = (
    "Runner.run (asyncio/runners.py:118);SocketGateway.chat_send (web/sio.py:477);"
    "Broker.send (broker/service.py:920);Connection.fetch (asyncpg/connection.py:717) 3\n"
    "Runner.run (asyncio/runners.py:118);"
    "WebSocketWriter.send (aiohttp/_websocket/writer.py:177) 1\n"
)


def test_inclusive_time_counts_frames_py_spy_prints_relative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "x.spy.txt"
    raw.write_text(RAW)
    print_spy("x", raw)
    out = capsys.readouterr().out
    inclusive = out.split("inclusive time of the project's functions:")[1]
    assert "75.0%  SocketGateway.chat_send (web/sio.py)" in inclusive
    assert "75.0%  Broker.send (broker/service.py)" in inclusive
    assert "aiohttp" not in inclusive and "asyncio" not in inclusive


def test_ours_tells_the_project_from_libraries() -> None:
    assert _ours("Broker.send (broker/service.py:920)")
    assert _ours(f"Broker.send ({ROOT}/broker/service.py:920)")
    assert not _ours(f"f ({ROOT}/.venv/lib/python3.11/site-packages/web/x.py:1)")
    assert not _ours("WebSocketWriter.send (aiohttp/web_ws.py:1)")
    assert not _ours("main (web.py:3)")  # a module named web, not the package
