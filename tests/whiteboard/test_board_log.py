"""The board's log without a server: folding batches, undos and clears into strokes, and
the memory store's bounds (TTL, number of boards, entries per board, each sender's rate)."""

from __future__ import annotations

import json

from broker.whiteboard import BOARD_TTL_S, MemoryBoards, fold


def entry(**fields: object) -> str:
    return json.dumps(fields)


def test_fold_joins_batches_drops_undone_and_keeps_sides_apart() -> None:
    log = [
        entry(k="s", by="student", id="a", part=0, tool="pen", points=[[0, 0]]),
        entry(k="s", by="tutor", id="a", part=0, tool="rect", points=[[0, 0], [1, 1]]),
        entry(k="s", by="student", id="a", part=1, tool="pen", points=[[0.5, 0.5]]),
        entry(k="s", by="tutor", id="a", part=1, tool="rect", points=[[0.2, 0.2]]),  # ignored
        entry(k="s", by="student", id="b", part=0, tool="line", points=[[0, 0], [1, 0]]),
        entry(k="u", by="tutor", id="b"),  # another side's stroke: nothing
        entry(k="u", by="student", id="b"),
        entry(k="s", by="student", id="b", part=1, tool="pen", points=[[1, 1]]),  # late
        "not json",
    ]
    strokes = fold(log)
    assert [(s["by"], s["id"]) for s in strokes] == [("student", "a"), ("tutor", "a")]
    assert strokes[0]["points"] == [[0, 0], [0.5, 0.5]]
    assert strokes[1]["points"] == [[0, 0], [1, 1]]
    assert "k" not in strokes[0] and "part" not in strokes[0]
    assert fold([*log, entry(k="c")]) == []


async def test_memory_boards_are_bounded() -> None:
    now = [0.0]
    boards = MemoryBoards(clock=lambda: now[0], max_boards=2)
    assert await boards.append("s1", "x", cap=2) == "ok"
    assert await boards.append("s1", "y", cap=2) == "ok"
    assert await boards.append("s1", "z", cap=2) == "full"
    assert await boards.entries("s1") == ["x", "y"]
    await boards.append("s2", "x", cap=2)
    await boards.append("s3", "x", cap=2)  # the least recently drawn-on (s1) goes
    assert await boards.entries("s1") == []
    assert await boards.entries("s2") == ["x"]
    now[0] = BOARD_TTL_S + 1  # untouched past the TTL: gone
    assert await boards.entries("s3") == []
    await boards.drop("s2")
    assert await boards.entries("s2") == []


async def test_memory_boards_limit_each_senders_rate() -> None:
    boards = MemoryBoards(throttle_clock=lambda: 100.0)
    boards.limit_rate(2, 10)
    assert [await boards.append("s", "x", 50, "student:a") for _ in range(3)][:2] == ["ok", "ok"]
    assert await boards.append("s", "x", 50, "student:a") == 10.0  # seconds to wait
    assert await boards.append("s", "x", 50, "tutor:b") == "ok"  # another sender
    assert len(await boards.entries("s")) == 3  # the refused ones added nothing
