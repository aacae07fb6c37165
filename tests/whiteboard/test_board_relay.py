"""The shared whiteboard over real socket.io clients, on both stacks: strokes reach the
other side of their session and nobody else, are kept for the session (board:sync), undone,
cleared, dropped at the end; bad strokes are refused with a typed error and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from broker import whiteboard
from tests.broker.conftest import fetch_all
from tests.broker.harness import Client, Server, student, tutor

PEN = {"tool": "pen", "colour": "#1f2937", "width": 3}


async def open_session(
    server: Server, clients: list[Client], pseudonym: str, tutor_id: str
) -> tuple[Client, Client, str]:
    """A student and a tutor in one open session: (student, tutor, session id)."""
    kid = await server.connect("/student", student(pseudonym, "elem", 3))
    ms = await server.connect("/tutor", tutor(tutor_id, "paper", ["en", "es"]))
    clients += [kid, ms]
    assert (await ms.call("tutor:status", {"status": "available"}))["ok"]
    ack = await kid.call("help:request", {"subject": "math", "language": "es"})
    assert ack["ok"], ack
    accepted = await ms.call("help:accept", {"request_id": ack["request"]["id"]})
    assert accepted["ok"], accepted
    await kid.next("session:started")
    return kid, ms, accepted["session"]["session_id"]


def stroke(session_id: str, sid: str, points: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, "id": sid, "points": points, **PEN, **extra}


async def test_strokes_reach_the_other_side_only_and_are_kept_for_the_session(
    server: Server, clients: list[Client]
) -> None:
    kid, ms, session = await open_session(server, clients, "s-ana", "t-1")
    other_kid, other_ms, other = await open_session(server, clients, "s-ben", "t-2")

    # a pen stroke in two batches from the student, a rectangle and a text from the tutor
    first = await kid.call("board:stroke", stroke(session, "k1", [[0.1, 0.1], [0.2, 0.25]]))
    assert first["ok"], first
    assert first["stroke"]["by"] == "student"
    more = await kid.call(
        "board:stroke", stroke(session, "k1", [[0.3, 0.123456789]], part=1)
    )
    assert more["ok"], more
    got = await ms.next("board:stroke")
    assert got == {"session_id": session, "id": "k1", "part": 0, "tool": "pen",
                   "colour": "#1f2937", "width": 3, "points": [[0.1, 0.1], [0.2, 0.25]],
                   "by": "student"}
    assert (await ms.next("board:stroke"))["points"] == [[0.3, 0.1235]]  # rounded
    rect = {"session_id": session, "id": "t1", "tool": "rect", "colour": "#DC2626",
            "width": 2, "points": [[0.5, 0.5], [0.9, 0.8]]}
    assert (await ms.call("board:stroke", rect))["ok"]
    label = {"session_id": session, "id": "t2", "tool": "text", "colour": "#000000",
             "width": 4, "points": [[0.1, 0.9]], "text": "x = 3"}
    assert (await ms.call("board:stroke", label))["ok"]
    assert (await kid.next("board:stroke"))["id"] == "t1"
    assert (await kid.next("board:stroke"))["text"] == "x = 3"

    # kept: a reload's board:sync has every stroke, batches joined, on both sides
    synced = await kid.call("board:sync", {"session_id": session})
    assert synced["ok"], synced
    strokes = synced["strokes"]
    assert [(s["by"], s["id"]) for s in strokes] == [
        ("student", "k1"), ("tutor", "t1"), ("tutor", "t2")]
    assert strokes[0]["points"] == [[0.1, 0.1], [0.2, 0.25], [0.3, 0.1235]]
    assert strokes[1]["colour"] == "#dc2626"
    assert (await ms.call("board:sync", {"session_id": session}))["strokes"] == strokes

    # undo takes back only the undoer's own stroke; both sides are told
    assert (await ms.call("board:undo", {"session_id": session, "id": "k1"}))["ok"]
    assert (await kid.next("board:undo")) == {"session_id": session, "id": "k1", "by": "tutor"}
    assert (await kid.call("board:undo", {"session_id": session, "id": "k1"}))["ok"]
    assert (await ms.next("board:undo"))["by"] == "student"
    left = (await kid.call("board:sync", {"session_id": session}))["strokes"]
    assert [s["id"] for s in left] == ["t1", "t2"]

    # nobody else: the other session's people got nothing and cannot read or draw on it
    marker = await other_kid.call("board:stroke", stroke(other, "m", [[0.5, 0.5]]))
    assert marker["ok"], marker
    assert [s["id"] for s in await other_ms.upto("board:stroke", lambda s: s["id"] == "m")] \
        == ["m"]
    assert other_kid.drain("board:stroke") == [] and other_kid.drain("board:undo") == []
    assert kid.drain("board:stroke") == [] and ms.drain("board:stroke") == []
    for intruder in (other_kid, other_ms):
        for event, payload in (
            ("board:sync", {"session_id": session}),
            ("board:stroke", stroke(session, "x", [[0.5, 0.5]])),
            ("board:undo", {"session_id": session, "id": "t1"}),
            ("board:clear", {"session_id": session}),
        ):
            refused = await intruder.call(event, payload)
            assert refused["error"]["code"] == "not_found", (event, refused)
    assert len((await kid.call("board:sync", {"session_id": session}))["strokes"]) == 2

    # clear empties it for both sides
    assert (await kid.call("board:clear", {"session_id": session}))["ok"]
    assert (await ms.next("board:clear")) == {"session_id": session, "by": "student"}
    assert (await ms.call("board:sync", {"session_id": session}))["strokes"] == []
    assert (await kid.call("board:stroke", stroke(session, "k2", [[0.2, 0.2]])))["ok"]

    # the session ends: its board is dropped, and nobody can draw on it any more
    assert (await ms.call("session:end", {"session_id": session}))["ok"]
    await kid.next("session:ended")
    assert await server.broker.board.store.entries(session) == []
    late = await kid.call("board:stroke", stroke(session, "k3", [[0.2, 0.2]]))
    assert late["error"]["code"] == "not_found"
    assert (await kid.call("board:sync", {"session_id": session}))["error"]["code"] == "not_found"
    # the other session's board is untouched
    assert len((await other_ms.call("board:sync", {"session_id": other}))["strokes"]) == 1


BAD = [
    ({"points": [[0.1, 1.5]]}, "points"),
    ({"points": [[-0.1, 0.5]]}, "points"),
    ({"points": [[0.1]]}, "points"),
    ({"points": [["0.1", 0.2]]}, "points"),
    ({"points": [[True, 0.2]]}, "points"),
    ({"points": []}, "points"),
    ({"points": [[0.5, 0.5]] * (whiteboard.MAX_POINTS + 1)}, "points"),
    ({"points": "0.1,0.2"}, "points"),
    ({"tool": "laser"}, "tool"),
    ({"colour": "red"}, "colour"),
    ({"colour": "#12345"}, "colour"),
    ({"width": 0}, "width"),
    ({"width": 41}, "width"),
    ({"width": 2.5}, "width"),
    ({"id": "has space"}, "id"),
    ({"id": "x" * 41}, "id"),
    ({"id": None}, "id"),
    ({"part": -1}, "part"),
    ({"text": "hi"}, "text"),  # only the text tool has text
    ({"tool": "line", "points": [[0.1, 0.1]]}, "points"),  # a line is two points
    ({"tool": "text", "points": [[0.1, 0.1]], "text": ""}, "text"),
    ({"tool": "text", "points": [[0.1, 0.1]], "text": "a\nb"}, "text"),
    ({"tool": "text", "points": [[0.1, 0.1]], "text": "x" * 201}, "text"),
    ({"tool": "text", "points": [[0.1, 0.1], [0.2, 0.2]], "text": "x"}, "points"),
]


async def test_bad_strokes_are_refused_with_a_typed_error_and_change_nothing(
    server: Server, clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    kid, ms, session = await open_session(server, clients, "s-ana", "t-1")
    for change, field in BAD:
        payload = {**stroke(session, "k1", [[0.5, 0.5]]), **change}
        refused = await kid.call("board:stroke", payload)
        assert refused["ok"] is False, change
        assert refused["error"]["code"] == "invalid_payload", (change, refused)
        assert refused["error"]["detail"]["field"] == field, (change, refused)
    for payload in (None, [], "x", {"session_id": session}):
        refused = await kid.call("board:stroke", payload)
        assert refused["error"]["code"] == "invalid_payload", (payload, refused)
    assert (await kid.call("board:undo", {"session_id": session}))["error"]["code"] \
        == "invalid_payload"
    assert (await kid.call("board:sync", {"session_id": session}))["strokes"] == []

    # text goes through the chat's rules: masked parts masked, what would be held refused
    def text(sid: str, words: str) -> dict[str, Any]:
        return {"session_id": session, "id": sid, "tool": "text", "points": [[0.1, 0.1]],
                "text": words}

    held = await ms.call("board:stroke", text("t1", "let's meet after school"))
    assert held["error"]["code"] == "not_allowed", held
    assert (await kid.call("board:sync", {"session_id": session}))["strokes"] == []
    # kept for staff, as a held chat message is
    flags = await fetch_all(server.settings.database_url,
                            "SELECT kind, session_id, text FROM safety_flags")
    assert flags == [{"kind": "held", "session_id": session,
                      "text": "let's meet after school"}], flags
    masked = await ms.call("board:stroke", text("t2", "call 555-123-4567"))
    assert masked["ok"] and "555" not in masked["stroke"]["text"], masked
    assert "555" not in (await kid.next("board:stroke"))["text"]
    assert (await kid.call("board:clear", {"session_id": session}))["ok"]

    # a full board refuses more with conflict (board_full) until it is cleared
    monkeypatch.setattr(whiteboard, "MAX_ENTRIES", 2)
    for n in range(2):
        assert (await kid.call("board:stroke", stroke(session, f"f{n}", [[0.5, 0.5]])))["ok"]
    full = await kid.call("board:stroke", stroke(session, "f2", [[0.5, 0.5]]))
    assert full["error"]["code"] == "conflict", full
    assert full["error"]["detail"]["reason"] == "board_full"
    assert len((await kid.call("board:sync", {"session_id": session}))["strokes"]) == 2
    assert (await kid.call("board:clear", {"session_id": session}))["ok"]
    assert (await kid.call("board:stroke", stroke(session, "f3", [[0.5, 0.5]])))["ok"]
    monkeypatch.undo()

    # past the rate limit: rate_limited, nothing added (counted across processes on the
    # scaled stack, where this sender's earlier strokes are still in the window)
    server.broker.board.store.limit_rate(3, 60)
    codes = [
        (await kid.call("board:stroke", stroke(session, f"r{n}", [[0.5, 0.5]])))
        .get("error", {}).get("code", "ok")
        for n in range(4)
    ]
    oks = codes.count("ok")
    assert codes == ["ok"] * oks + ["rate_limited"] * (4 - oks) and oks < 4, codes
    if server.settings.redis_url is None:
        assert oks == 3  # a fresh window in memory
    assert len((await kid.call("board:sync", {"session_id": session}))["strokes"]) == 1 + oks


async def test_strokes_cross_processes_on_the_scaled_stack(
    stack_settings: Any, start_server: Any, clients: list[Client]
) -> None:
    """The student on one process, the tutor on another: strokes, undo and clear reach the
    other side through the fan-out, and either process reads the board from Redis."""
    if stack_settings.redis_url is None:
        pytest.skip("one process serves the embedded stack")
    one, two = await start_server(), await start_server()
    kid = await one.connect("/student", student("s-ana", "elem", 3))
    ms = await two.connect("/tutor", tutor("t-1", "paper", ["en", "es"]))
    clients += [kid, ms]
    assert (await ms.call("tutor:status", {"status": "available"}))["ok"]
    ack = await kid.call("help:request", {"subject": "math", "language": "es"})
    session = (await ms.call("help:accept", {"request_id": ack["request"]["id"]}))["session"][
        "session_id"]
    assert (await kid.call("board:stroke", stroke(session, "k1", [[0.1, 0.2]])))["ok"]
    assert (await ms.next("board:stroke"))["id"] == "k1"
    assert (await ms.call("board:stroke", stroke(session, "t1", [[0.3, 0.4]])))["ok"]
    assert (await kid.next("board:stroke"))["id"] == "t1"
    assert (await ms.call("board:undo", {"session_id": session, "id": "t1"}))["ok"]
    assert (await kid.next("board:undo"))["id"] == "t1"
    assert [s["id"] for s in (await kid.call("board:sync", {"session_id": session}))["strokes"]] \
        == ["k1"]
    assert (await kid.call("board:clear", {"session_id": session}))["ok"]
    await ms.next("board:clear")
    assert (await ms.call("board:sync", {"session_id": session}))["strokes"] == []
