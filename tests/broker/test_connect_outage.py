"""A connect whose state cannot be read (the database is down) is refused, answered, and
forgotten; the next connect works.

The connect handler used to let the database's error out into engine.io: a traceback per
connect, no answer to the CONNECT (socket.io-client waits for one for ever), and the
connection left counted on the process. Now: ``connect_error`` with the documented
``{code: "internal", message}``, one paced log line for the outage, nothing counted.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import socketio

from broker import tokens
from broker.outages import OutageLog
from tests.broker.harness import SECRET, Server, staff, student, tutor
from tests.services import database_refused
from web import sio as sio_module
from web.keys import GATEWAY

# namespace -> the broker's read that fills a connecting page, and who connects
READS = {
    "/student": ("student_state", lambda: student("s-out", "elem", 3)),
    "/tutor": ("tutor_state", lambda: tutor("t-out", "paper", ["en"])),
    "/staff": ("live_figures", lambda: staff()),
}



async def _refused(server: Server, namespace: str, token: str) -> list[Any]:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    @client.on("connect_error", namespace=namespace)  # type: ignore[untyped-decorator]
    async def on_error(data: Any) -> None:
        errors.append(data)

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                server.url, namespaces=[namespace], transports=["websocket"],
                auth={"token": token}, wait_timeout=5,
            )
    finally:
        await client.disconnect()
    return errors


@pytest.mark.parametrize("namespace", sorted(READS))
async def test_connect_during_a_database_outage_is_refused_then_works(
    server: Server, namespace: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    read, who = READS[namespace]
    broker = server.broker
    gateway = server.test_server.app[GATEWAY]  # type: ignore[union-attr]
    real = getattr(broker, read)
    down = True

    async def maybe_down(*args: Any, **kwargs: Any) -> Any:
        if down:
            raise database_refused()
        return await real(*args, **kwargs)

    monkeypatch.setattr(broker, read, maybe_down)
    # a fresh pace: another test's outage within the last 10 s would have used up its line
    monkeypatch.setattr(sio_module, "outages", OutageLog(sio_module.log))
    identity = who()
    token = tokens.issue(SECRET, identity)
    caplog.set_level(logging.INFO)
    for _ in range(3):  # three pages arrive during the outage
        errors = await _refused(server, namespace, token)
        assert len(errors) == 1 and isinstance(errors[0], dict), errors
        assert errors[0]["data"]["code"] == "internal" and errors[0]["data"]["message"]
    assert not gateway.connections, "a refused connection stayed counted"
    assert gateway.local_subjects() == []
    outage_lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_lines) == 1 and outage_lines[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]

    down = False  # the database is back: the page's next connect works
    client = await server.connect(namespace, identity)
    try:
        assert len(gateway.connections) == 1
    finally:
        await client.sio.disconnect()


async def test_an_unexpected_failure_at_connect_is_refused_and_logged_in_full(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage: a bug. Still answered (``internal``), logged with its traceback."""
    broker = server.broker

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(broker, "student_state", broken)
    errors = await _refused(server, "/student", tokens.issue(SECRET, student("s-bug", "elem", 3)))
    assert errors and errors[0]["data"]["code"] == "internal"
    failed = [r for r in caplog.records if "connect failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None
