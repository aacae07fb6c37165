"""A tutor's private notes are stored with the outcome (issue 14), over both stacks with real
socket.io clients: with ``session:end`` or, after the student ended it, ``session:outcome``;
a student cannot send any; bad notes are refused with nothing changed; the student is never
sent them.
"""

from __future__ import annotations

from typing import Any

from tests.broker.conftest import clients, fetch_all, stack, stack_settings, start_server
from tests.broker.harness import Client, student, tutor

__all__ = ["clients", "stack", "stack_settings", "start_server"]  # the fixtures used here


async def _session(server: Any, clients: list[Client], name: str) -> tuple[Client, Client, str]:
    kid = await server.connect("/student", student(f"s-{name}", "elem", 2))
    tut = await server.connect("/tutor", tutor(f"t-{name}", "paper", ["en"]))
    clients += [kid, tut]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    return kid, tut, (await tut.call("help:accept", {"request_id": rid}))["session"]["session_id"]


async def _row(server: Any, sid: str) -> dict[str, Any]:
    [row] = await fetch_all(
        server.settings.database_url,
        "select ended_at, outcome, resolved, tutor_notes from tutoring_sessions where id = :id",
        id=sid,
    )
    return row


async def test_notes_go_with_the_outcome(start_server: Any, clients: list[Client]) -> None:
    server = await start_server()
    kid, tut, sid = await _session(server, clients, "notes")
    refused = await kid.call("session:end", {"session_id": sid, "notes": "mine"})
    assert refused["ok"] is False and refused["error"]["code"] == "invalid_payload"
    too_long = await tut.call("session:end", {"session_id": sid, "notes": "x" * 2001})
    assert too_long["error"]["code"] == "invalid_payload"
    assert (await _row(server, sid))["ended_at"] is None  # an error changed nothing
    ended = await tut.call("session:end", {
        "session_id": sid, "outcome": "concept_explained", "resolved": False,
        "notes": "  fractions: needs common denominators  ",
    })
    assert ended == {"ok": True}
    row = await _row(server, sid)
    assert (row["outcome"], bool(row["resolved"]), row["tutor_notes"]) == (
        "concept_explained", False, "fractions: needs common denominators",
    )
    told = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert "notes" not in str(told) and "fractions" not in str(told)

    # the student ended the next one first: the notes come with session:outcome
    kid2, tut2, sid2 = await _session(server, clients, "after")
    assert (await kid2.call("session:end", {"session_id": sid2}))["ok"]
    saved = await tut2.call("session:outcome", {
        "session_id": sid2, "outcome": "homework_help", "resolved": True, "notes": "came back",
    })
    assert saved == {"ok": True}
    assert (await _row(server, sid2))["tutor_notes"] == "came back"
    synced = await kid2.call("session:sync", {"session_id": sid2, "after_seq": 0})
    assert "came back" not in str(synced)
