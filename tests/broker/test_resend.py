"""``chat:send`` at most once per ``client_id``: a client that lost an acknowledgement sends
the message again with the same id and gets the message it already made.

Over both stacks, with real socket.io clients; the racing cases send the same id at once on
one process (one writer lane: the second sees the first's row) and on two (two writers:
on PostgreSQL the unique index refuses the second, which then answers with the first).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.broker.conftest import fetch_all
from tests.broker.harness import student, tutor


async def _open(server, clients: list, name: str) -> tuple[object, object, str]:
    kid = await server.connect("/student", student(name, "elem", 3))
    t = await server.connect("/tutor", tutor(f"t-{name}", "paper", ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    return kid, t, sid


async def _buffered(server, sid: str) -> list[tuple[int, str]]:
    rows = await fetch_all(
        server.settings.database_url,
        "select seq, text from chat_messages where session_id = :sid order by seq", sid=sid,
    )
    return [(int(r["seq"]), str(r["text"])) for r in rows]


async def test_a_resend_gets_the_same_message_and_relays_nothing(
    start_server, clients: list
) -> None:
    server = await start_server()
    kid, t, sid = await _open(server, clients, "s-resend")
    first = await kid.call("chat:send", {"session_id": sid, "text": "2x = 8", "client_id": "c-1"})
    again = await kid.call("chat:send", {"session_id": sid, "text": "2x = 8", "client_id": "c-1"})
    assert first["ok"] and again["ok"]
    assert again["message"] == first["message"]
    nxt = await kid.call("chat:send", {"session_id": sid, "text": "x = 4", "client_id": "c-2"})
    assert nxt["message"]["seq"] == first["message"]["seq"] + 1
    await t.until("chat:message", lambda m: m["text"] == "x = 4")
    got = [m["id"] for m in t.drain("chat:message")]
    assert got.count(first["message"]["id"]) <= 1  # the relay: once (``until`` took one)
    assert await _buffered(server, sid) == [(1, "2x = 8"), (2, "x = 4")]
    synced = await t.call("session:sync", {"session_id": sid, "after_seq": 0})
    assert [m["id"] for m in synced["messages"]] == [f"{sid}.1", f"{sid}.2"]
    # Without a client_id every send is a new message, as before.
    for _ in range(2):
        assert (await t.call("chat:send", {"session_id": sid, "text": "ok"}))["ok"]
    assert [s for s, _ in await _buffered(server, sid)] == [1, 2, 3, 4]


async def test_another_participants_client_id_is_refused(start_server, clients: list) -> None:
    server = await start_server()
    kid, t, sid = await _open(server, clients, "s-theft")
    assert (await kid.call("chat:send", {"session_id": sid, "text": "mine",
                                         "client_id": "same"}))["ok"]
    ack = await t.call("chat:send", {"session_id": sid, "text": "tutor's", "client_id": "same"})
    assert ack == {"ok": False, "error": {"code": "conflict", "message": ack["error"]["message"]}}
    assert "mine" not in ack["error"]["message"]
    bad = await kid.call("chat:send", {"session_id": sid, "text": "x", "client_id": "a b"})
    assert bad["error"]["code"] == "invalid_payload" and "client_id" in bad["error"]["message"]
    long = await kid.call("chat:send", {"session_id": sid, "text": "x", "client_id": "c" * 41})
    assert long["error"]["code"] == "invalid_payload"
    assert await _buffered(server, sid) == [(1, "mine")]


async def test_racing_resends_make_one_message(start_server, clients: list) -> None:
    first = await start_server()
    second = await start_server()
    kid, _tutor, sid = await _open(first, clients, "s-race")
    # The same student connected to both processes (a tab reconnecting elsewhere) resends
    # while the first send is in flight.
    kid2 = await second.connect("/student", student("s-race", "elem", 3))
    clients.append(kid2)
    for round_ in range(3):  # 9 sends: under the 10-per-10-s chat limit
        cid = f"race-{round_}"
        acks = await asyncio.gather(
            kid.call("chat:send", {"session_id": sid, "text": cid, "client_id": cid}),
            kid.call("chat:send", {"session_id": sid, "text": cid, "client_id": cid}),
            kid2.call("chat:send", {"session_id": sid, "text": cid, "client_id": cid}),
        )
        assert all(a["ok"] for a in acks), acks
        assert len({a["message"]["id"] for a in acks}) == 1
    assert [text for _, text in await _buffered(first, sid)] == [f"race-{i}" for i in range(3)]


async def test_a_resend_racing_an_uncommitted_first_send_answers_with_it(
    stack_settings, start_server, clients: list
) -> None:
    """The cross-process race, made deterministic: the first send's transaction holds the
    session row, uncommitted, while the resend starts; once the first commits, the resend
    must answer with its message, not write a second (on PostgreSQL its statement waited
    on the row lock, so only the unique index or the unit's retry can catch it)."""
    import sqlalchemy as sa

    from broker.db.engine import create_engine
    from broker.lifecycle_store import Resent

    server = await start_server()
    _, _, sid = await _open(server, clients, "s-held")
    store = server.broker.store
    engine = create_engine(stack_settings.database_url)
    try:
        first = await engine.connect()
        tx = await first.begin()
        await first.execute(
            sa.text("update tutoring_sessions set seq = seq + 1 where id = :sid"), {"sid": sid}
        )
        await first.execute(
            sa.text(
                "insert into chat_messages (id, session_id, seq, sender, text, at, client_id) "
                "select id || '.' || seq, id, seq, 'student', 'held', :at, 'h-1' "
                "from tutoring_sessions where id = :sid"
            ),
            {"sid": sid, "at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)},
        )
        resend = asyncio.ensure_future(store.add_message(
            sid, "student", "held", server.broker.clock(), 0.0, client_id="h-1"
        ))
        await asyncio.sleep(0.3)  # the resend is now waiting on the first's row lock
        await tx.commit()
        await first.close()
        got = await asyncio.wait_for(resend, 20)
    finally:
        await engine.dispose()
    assert isinstance(got, Resent) and (got.seq, got.text) == (1, "held")
    assert await _buffered(server, sid) == [(1, "held")]
