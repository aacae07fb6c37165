"""Fewer round trips on PostgreSQL (broker/commit/base.py, broker/lifecycle_store.py): a
batch's closes of queued requests, and its requests, each run as one statement, and a chat
message is counted and buffered by one; each caller still gets exactly the outcome it would
have got with the units run one after another, on SQLite (never fused) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

import broker.lifecycle_store
from broker.commit import (
    Fusion,
    GroupCommitter,
    Outcome,
    Step,
    Unit,
)
from broker.commit.base import steps
from broker.errors import NotFound
from broker.lifecycle_store import Resent, at
from tests.broker.committing import one_lane, units_sent
from tests.broker.conftest import prepare_database
from tests.broker.unit import Rig, as_identity, broker_rig, student, tutor


@pytest.fixture
async def rig(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setattr(broker.lifecycle_store, "committer_for", one_lane)
    await prepare_database(database_url)
    async with broker_rig(database_url) as made:
        yield made


async def test_a_batch_of_closes_answers_each_as_one_by_one(rig: Rig) -> None:
    store = rig.broker.store
    ids = [await rig.ask(student(f"s-{n}")) for n in range(5)]
    rows = [await rig.request_row(i) for i in ids]
    owner = [str(row["student"]) for row in rows]
    queue = str(rows[0]["queue"])
    units = units_sent(store.writer)
    when = rig.clock() + 5
    answers = await asyncio.gather(
        store.close_queued(ids[0], "cancelled", when, "student", student=owner[0]),
        store.close_queued(ids[1], "cancelled", when, "student", student=owner[2]),  # not theirs
        store.close_queued(ids[2], "abandoned", when, "disconnected"),
        store.close_queued(ids[0], "cancelled", when, "student", student=owner[0]),  # again
        store.close_queued("no-such-request", "cancelled", when, "student", student=owner[3]),
        store.close_queued(ids[3], "cancelled", when, "student", student=owner[3]),
        store.close_queued(ids[4], "expired", when, "max_wait"),
    )
    assert answers == [
        (owner[0], queue), None, (owner[2], queue), None, None, (owner[3], queue),
        (owner[4], queue),
    ]
    after = [await rig.request_row(i) for i in ids]
    assert [(r["status"], r["close_reason"]) for r in after] == [
        ("cancelled", "student"), ("queued", None), ("abandoned", "disconnected"),
        ("cancelled", "student"), ("expired", "max_wait"),
    ]
    assert {r["closed_at"] for r in after if r["status"] != "queued"} == {at(when)}
    assert all(r["topic"] is None and r["first_name"] is None for r in after if r["closed_at"])
    if store.writer.fuses:
        # the five cancels' first of each key fused into one statement (four of them: the
        # repeat of ids[0] runs after, on its own); the two sweeps' closes into another
        assert units == [3]
    else:
        assert sum(units) == 7


async def test_a_failing_fused_statement_is_retried_unit_by_unit(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A value the database refuses fails the fused statement; each close is then tried
    alone, so only the bad one fails."""
    store = rig.broker.store
    ids = [await rig.ask(student(f"s-{n}")) for n in range(3)]
    when = rig.clock() + 5
    answers = await asyncio.gather(
        store.close_queued(ids[0], "abandoned", when, "disconnected"),
        store.close_queued(ids[1], "abandoned", when, "nul\x00"),  # PostgreSQL refuses a NUL
        store.close_queued(ids[2], "abandoned", when, "disconnected"),
        return_exceptions=True,
    )
    assert answers[0] is not None and answers[2] is not None
    if store.engine.dialect.name == "postgresql":  # SQLite stores it
        assert isinstance(answers[1], sa.exc.DBAPIError)
        assert (await rig.request_row(ids[1]))["status"] == "queued"
        assert "a batch of 3 writes failed" in caplog.text  # the fused one, then one by one


async def test_a_batch_of_requests_gets_the_places_one_by_one_inserts_would(rig: Rig) -> None:
    """Concurrent requests (one batch): each counted the requests queued before the batch
    and those of the batch before it that are ahead of it; a student with an open request
    (asked before, or twice in this batch) gets a conflict and holds no place."""
    store = rig.broker.store
    early = [await rig.ask(student(f"s-early-{n}")) for n in range(2)]
    rig.clock.advance(1)
    who = [student(f"s-{n}") for n in range(5)]
    for person in who:
        await rig.connect(person)
    units = units_sent(store.writer)
    asks = [*who, student("s-early-0"), who[1]]  # one already waiting; one asking twice
    acks = await asyncio.gather(
        *(rig.broker.request_help(p, "math", "en") for p in asks), return_exceptions=True
    )
    assert [type(a).__name__ for a in acks[5:]] == ["Conflict", "Conflict"]
    made = [dict(a) for a in acks[:5] if isinstance(a, dict)]
    assert len(made) == 5
    rows = [await rig.request_row(i) for i in early + [str(a["id"]) for a in made]]
    keys = [(float(r["rank"]), str(r["id"])) for r in rows]
    # the five were inserted in the order they asked, all at one instant (one rank)
    assert [a["position"] for a in made] == [
        1 + sum(k < key for k in keys[: 2 + n]) for n, key in enumerate(keys[2:])
    ]
    _, total = await store.queue(str(rows[0]["queue"]))
    assert total == 7
    # fused: the five and s-early-0's second ask as one statement; the repeat on its own
    assert sum(units) == (2 if store.writer.fuses else len(asks))


async def test_a_message_is_counted_and_buffered_whole_or_not_at_all(rig: Rig) -> None:
    """``add_message`` (on PostgreSQL one statement, the count a CTE): numbered in order,
    the counters and the buffered row written together; a resent ``client_id`` and a
    message to an ended session write nothing."""
    store, ana, x = rig.broker.store, student("s-ana"), tutor("t-x")
    request = await rig.ask(ana)
    await rig.connect(x)
    session = str((await rig.broker.accept(x, request))["session_id"])
    opened = rig.clock()
    seqs = [await store.add_message(session, "student", f"m{n}", opened + n, opened,
                                    client_id=f"c{n}") for n in range(3)]
    assert seqs == [1, 2, 3]
    assert await store.add_message(session, "tutor", "hi", opened + 5, opened) == 4
    again = await store.add_message(session, "student", "m1", opened + 6, opened,
                                    client_id="c1")
    assert isinstance(again, Resent) and again.seq == 2
    row = await rig.session_row(session)
    assert (row["seq"], row["messages_student"], row["messages_tutor"]) == (4, 3, 1)
    assert (row["chars_student"], row["first_response_s"]) == (6, 5.0)
    buffered = await store.messages_after(session, 0)
    assert [(b["seq"], b["text"]) for b in buffered] == [(1, "m0"), (2, "m1"), (3, "m2"), (4, "hi")]
    await rig.broker.end(as_identity(x), session)
    assert await store.add_message(session, "student", "late", opened + 9, opened) is None
    assert len(await store.messages_after(session, 0)) == 4


def lose_next_answer(writer: GroupCommitter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The writer's next batch commits and its answer is lost (the connection broke during
    ``COMMIT``): the writer runs its units again (``_retry_in_doubt``). Returns a list that
    holds the lost batch's size once that has happened."""
    commit = writer._commit
    lost: list[int] = []

    async def answer_lost(units: list[Unit], lane: int = 0, answer: object = None) -> list[Outcome]:
        outcomes = await commit(units, lane)  # committed, and nobody is answered yet
        if not lost:
            lost.append(len(units))
            raise sa.exc.DBAPIError("COMMIT", {}, ConnectionResetError("connection lost"))
        return outcomes

    monkeypatch.setattr(writer, "_commit", answer_lost)
    monkeypatch.setattr(writer, "_in_doubt", lambda error: True)
    return lost


async def test_a_message_without_client_id_is_stored_once_when_its_write_was_in_doubt(
    rig: Rig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message sent without a ``client_id`` is given one by the store, so the second run
    of a write in doubt finds the first's row: the message is stored and counted once, and
    its sender gets its number as for a new one."""
    store, ana, x = rig.broker.store, student("s-doubt"), tutor("t-doubt")
    request = await rig.ask(ana)
    await rig.connect(x)
    session = str((await rig.broker.accept(x, request))["session_id"])
    opened = rig.clock()
    lost = lose_next_answer(store.writer, monkeypatch)
    assert await store.add_message(session, "student", "2x = 8", opened + 1, opened) == 1
    assert lost == [1]
    buffered = await store.messages_after(session, 0)
    assert [(b["seq"], b["text"]) for b in buffered] == [(1, "2x = 8")]
    row = await rig.session_row(session)
    assert (row["seq"], row["messages_student"]) == (1, 1)
    assert await store.add_message(session, "student", "x = 4", opened + 2, opened) == 2


async def test_an_accept_and_an_end_whose_writes_were_in_doubt_are_answered_as_done(
    rig: Rig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An accept whose first run committed is refused by its second run's claim (the
    request is no longer queued), and an end by its guard (the session is no longer open).
    Each is recognised as its own (the session it made; the end's own time and reason)
    and answered as done, with its pushes: the student is told the session started, and
    then ended; the tutor's slot is taken once and given back once."""
    broker, ana, x = rig.broker, student("s-doubt2"), tutor("t-doubt2")
    request = await rig.ask(ana)
    await rig.connect(x)
    lost = lose_next_answer(broker.store.writer, monkeypatch)
    view = await broker.accept(x, request)
    assert lost == [1]
    session = str(view["session_id"])
    assert [s["session_id"] for s in rig.notifier.of(event="session:started")] == [session]
    assert (await rig.session_row(session))["ended_at"] is None
    slots = "select open_sessions from tutor_states where tutor_id = :t"
    async with rig.engine.connect() as conn:
        assert await conn.scalar(sa.text(slots), {"t": x.id}) == 1

    lost = lose_next_answer(broker.store.writer, monkeypatch)
    await broker.end(as_identity(x), session)
    assert lost == [1]
    assert (await rig.session_row(session))["ended_at"] is not None
    ended = [(s.to, s.data["session_id"]) for s in rig.notifier.sent if s.event == "session:ended"]
    assert sorted(ended) == [("student:s-doubt2", session), ("tutor:t-doubt2", session)]
    async with rig.engine.connect() as conn:
        assert await conn.scalar(sa.text(slots), {"t": x.id}) == 0
    with pytest.raises(NotFound):  # a second end is still refused: it is not this one
        await broker.end(as_identity(x), session)


async def test_a_request_and_a_cancel_whose_writes_were_in_doubt_are_answered_as_done(
    rig: Rig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request whose first run committed is refused by its second run (the student's
    open request, its own), and a cancel by its guard (the request is no longer queued).
    Each is recognised as its own (the request's new id; the close's own status, reason
    and time) and answered as done: a place in the queue, then a cancel that happened."""
    broker, ana, bo = rig.broker, student("s-doubt3"), student("s-doubt4")
    ahead = await rig.ask(bo)
    await rig.connect(ana)
    lost = lose_next_answer(broker.store.writer, monkeypatch)
    made = await broker.request_help(ana, "math", "en")
    assert lost == [1]
    assert made["position"] == 2  # behind bo's
    row = await rig.request_row(str(made["id"]))
    assert row["status"] == "queued"

    lost = lose_next_answer(broker.store.writer, monkeypatch)
    await broker.cancel(ana, str(made["id"]))
    assert lost == [1]
    row = await rig.request_row(str(made["id"]))
    assert (row["status"], row["close_reason"]) == ("cancelled", "student")
    with pytest.raises(NotFound):  # a second cancel is still refused: it is not this one
        await broker.cancel(ana, str(made["id"]))
    assert (await rig.request_row(ahead))["status"] == "queued"


async def test_a_batch_of_messages_to_many_sessions_numbers_each_as_one_by_one(
    rig: Rig,
) -> None:
    store = rig.broker.store
    sessions = []
    for n in range(4):
        kid, x = student(f"s-{n}"), tutor(f"t-{n}")
        request = await rig.ask(kid)
        await rig.connect(x)
        sessions.append(str((await rig.broker.accept(x, request))["session_id"]))
    opened = rig.clock()
    assert await store.add_message(sessions[1], "student", "first", opened, opened,
                                   client_id="c-1") == 1
    await rig.broker.end(as_identity(tutor("t-3")), sessions[3])
    units = units_sent(store.writer)
    when = opened + 2
    answers = await asyncio.gather(
        store.add_message(sessions[0], "student", "a", when, opened, client_id="a"),
        store.add_message(sessions[1], "student", "first", when, opened, client_id="c-1"),
        store.add_message(sessions[2], "student", "c", when, opened),
        store.add_message(sessions[3], "student", "ended", when, opened),
        store.add_message(sessions[0], "student", "a2", when, opened, client_id="a2"),
        store.add_message(sessions[0], "tutor", "t0", when, opened),
        store.add_message(sessions[2], "tutor", "t2", when, opened),
    )
    assert answers[0] == 1 and answers[2] == 1 and answers[3] is None
    assert isinstance(answers[1], Resent) and answers[1].seq == 1  # the resend
    assert answers[4:] == [2, 3, 2]  # after the session's first, in the order sent
    texts = {sid: [(b["seq"], b["text"]) for b in await store.messages_after(sid, 0)]
             for sid in sessions}
    assert texts == {
        sessions[0]: [(1, "a"), (2, "a2"), (3, "t0")],
        sessions[1]: [(1, "first")],
        sessions[2]: [(1, "c"), (2, "t2")],
        sessions[3]: [],
    }
    rows = [await rig.session_row(sid) for sid in sessions[:3]]
    assert [(r["messages_student"], r["messages_tutor"]) for r in rows] == [(2, 1), (1, 0), (1, 1)]
    assert [r["first_response_s"] for r in rows] == [2.0, None, 2.0]
    # fused: the first message to each session as one statement; session 0's second and
    # session 2's tutor's as a second round; session 0's third as a third, alone
    assert sum(units) == (3 if store.writer.fuses else len(answers))


class Recording(GroupCommitter):
    """A backend that fuses and runs nothing: it records the units of each transaction and
    answers a fused unit with a row for each place whose ``ok`` is true."""

    fuses = True

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[list[Unit]] = []

    async def _commit(
        self, units: list[Unit], lane: int = 0, answer: object = None
    ) -> list[Outcome]:
        self.runs.append(units)
        answers = []
        for unit in units:
            [step] = steps(unit)
            if "each_ok" in step.params:
                oks = step.params["each_ok"]
                answers.append(Outcome([[(n, f"row{n}") for n, ok in enumerate(oks, 1) if ok]]))
            else:
                answers.append(Outcome([[("alone",)]]))
        return answers


async def test_a_keys_units_join_rounds_after_its_earlier_units() -> None:
    """Units with exactly the collected parameters join; a key's second unit joins a later
    round than its first; a key's unit never runs before that key's earlier units, fused
    or not."""
    single, fused = sa.select(sa.literal(1)), sa.select(sa.literal(2))
    writer = Recording()
    writer.fuse(single, Fusion(fused, {"each_ok": "ok"}, unused=frozenset({"note"})))

    def unit(ok: bool, **more: object) -> Unit:
        return [Step(single, {"ok": ok, **more}, expect=1, returning=True)]

    a, b, again, extra, c, e, b2 = await asyncio.gather(
        writer.write(unit(True, note="unused"), key="a"),
        writer.write(unit(False), key="b"),
        writer.write(unit(True), key="a"),  # a's second: a second round, at its place
        writer.write(unit(True, other=1), key="c"),  # a parameter the fused one drops: alone
        writer.write(unit(True), key="c"),  # after c's first: a round of its own, alone
        writer.write(unit(True), key="e"),  # the first round
        writer.write(unit(False), key="b"),  # b's second: a's second's round
    )
    [run] = writer.runs
    assert len(run) == 4  # a, b and e; a's and b's seconds; c's first; c's second
    assert steps(run[0])[0].params == {"each_ok": [True, False, True]}
    assert steps(run[1])[0].params == {"each_ok": [True, False]}
    assert steps(run[2])[0].params == {"ok": True, "other": 1}
    assert steps(run[3])[0].params == {"ok": True}
    assert (a.rows(0), a.ok) == ([("row1",)], True)
    assert (b.rows(0), b.failed) == ([], 0)  # its own guard, on its own rows
    assert (e.rows(0), e.ok) == ([("row3",)], True)
    assert (again.rows(0), again.ok) == ([("row1",)], True)
    assert (b2.rows(0), b2.failed) == ([], 0)
    assert extra.rows(0) == c.rows(0) == [("alone",)]
    await writer.close()
