"""Chat safety through the real broker (issue 12), over both stacks with real socket.io
clients: masked and held messages, distress alerts with crisis resources, reports and the
staff review queue with its scoped, audited actions, silent sessions, and the nobody-on-
shift alert. The moderation rules themselves are tested in tests/moderation/.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import sqlalchemy as sa

from broker import tokens
from broker.constants import BUFFER_AFTER_END_S
from broker.db.engine import create_engine
from tests.broker.conftest import fetch_all
from tests.broker.harness import SECRET, student, tutor
from tests.broker.unit import FakeClock

PHONE = "you can call me at 555-867-5309 tonight"
PERSONAL = "how old are you and where do you live?"
DISTRESS = "i want to kill myself"


async def _open(server: Any, clients: list, name: str, **claims: Any) -> tuple[Any, Any, str]:
    kid = await server.connect("/student", student(name, "elem", 3, **claims))
    t = await server.connect("/tutor", tutor(f"t-{name}", "paper", ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    return kid, t, sid


async def _execute(url: str, sql: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(sql), params)
    finally:
        await engine.dispose()


def _staff(scope: str = "district", scope_id: str | None = None, who: str = "staff-1") -> dict:
    identity = tokens.Identity("staff", who, {"scope": scope, "scope_id": scope_id})
    return {"Authorization": f"Bearer {tokens.issue(SECRET, identity)}"}


async def _api(server: Any, method: str, path: str, headers: dict, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(
        method, server.url + path, headers=headers, **kw
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_phone_number_reaches_both_sides_masked(start_server, clients: list) -> None:
    server = await start_server()
    kid, t, sid = await _open(server, clients, "s-mask")
    ack = await kid.call("chat:send", {"session_id": sid, "text": PHONE, "client_id": "m-1"})
    message = ack["message"]
    assert message["moderation"]["action"] == "mask"
    assert "phone" in message["moderation"]["categories"]
    assert "867" not in message["text"] and "tonight" in message["text"]
    got = await t.until("chat:message", lambda m: m["id"] == message["id"])
    assert got["text"] == message["text"] and got["moderation"] == message["moderation"]
    buffered = await fetch_all(server.settings.database_url,
                               "select text from chat_messages where session_id = :s", s=sid)
    assert [r["text"] for r in buffered] == [message["text"]]  # the original is not relayed
    flags = await fetch_all(server.settings.database_url,
                            "select kind, text, by from safety_flags where session_id = :s", s=sid)
    assert flags == [{"kind": "masked", "text": PHONE, "by": "student"}]


async def test_a_held_message_is_not_relayed_and_flagged_once(
    start_server, clients: list
) -> None:
    server = await start_server()
    kid, t, sid = await _open(server, clients, "s-hold")
    for _ in range(2):  # a resend of the same client_id makes no second flag
        ack = await t.call("chat:send", {"session_id": sid, "text": PERSONAL, "client_id": "h-1"})
        assert ack["ok"] and ack["held"] and "personal" in ack["categories"]
        assert "message" not in ack
    ok = await t.call("chat:send", {"session_id": sid, "text": "Let's look at problem 3."})
    first = await kid.next("chat:message")
    assert first["id"] == ok["message"]["id"] and first["seq"] == 1  # nothing before it
    flags = await fetch_all(server.settings.database_url,
                            "select kind, by, text from safety_flags where session_id = :s", s=sid)
    assert flags == [{"kind": "held", "by": "tutor", "text": PERSONAL}]
    # The same words from the student are not a tutor's personal question.
    assert "message" in await kid.call("chat:send", {"session_id": sid, "text": PERSONAL})


async def test_distress_is_heard_answered_and_alerted_once(start_server, clients: list) -> None:
    server = await start_server(safety_alert_email="safety@district.example")
    kid, t, sid = await _open(server, clients, "s-sad", locale="es-MX")
    ack = await kid.call("chat:send", {"session_id": sid, "text": DISTRESS})
    assert ack["ok"] and "988" in " ".join(ack["crisis"]["lines"])
    assert ack["crisis"]["title"].startswith("No estás solo")  # the student's language
    pushed = await kid.until("safety:crisis", lambda c: True)
    assert pushed == ack["crisis"]
    relayed = await t.until("chat:message", lambda m: m["id"] == ack["message"]["id"])
    assert relayed["text"] == DISTRESS  # the student is still heard
    assert (await kid.call("chat:send", {"session_id": sid, "text": DISTRESS}))["crisis"]
    url = server.settings.database_url
    alerts = await fetch_all(url, "select kind, session_id from staff_alerts")
    assert alerts == [{"kind": "distress", "session_id": sid}]  # once per session
    mail = await fetch_all(url, "select kind, address from outbox")
    assert mail == [{"kind": "alert_distress", "address": "safety@district.example"}]
    status, body = await _api(server, "GET", "/api/safety/alerts", _staff())
    assert status == 200 and [a["kind"] for a in body["alerts"]] == ["distress"]
    alert_id = body["alerts"][0]["id"]
    status, _ = await _api(server, "POST", f"/api/safety/alerts/{alert_id}/acknowledge",
                           _staff("school", "hs", "designee-hs"))
    assert status == 404  # another school's designee cannot see or clear it
    status, _ = await _api(server, "POST", f"/api/safety/alerts/{alert_id}/acknowledge", _staff())
    assert status == 200
    assert (await _api(server, "GET", "/api/safety/alerts", _staff()))[1]["alerts"] == []
    actions = await fetch_all(url, "select action from audit_log")
    assert [a["action"] for a in actions] == ["safety.acknowledge_alert"]


async def test_reports_reach_the_scoped_review_queue_and_reads_are_audited(
    start_server, clients: list
) -> None:
    server = await start_server()
    kid, t, sid = await _open(server, clients, "s-report")
    await t.call("chat:send", {"session_id": sid, "text": "hello, what's the question?"})
    ack = await kid.call("chat:report", {"session_id": sid, "note": "he made me uneasy"})
    assert ack["ok"] and ack["report_id"]
    # Nobody else's session can be reported.
    other = await server.connect("/student", student("s-other", "elem", 3))
    clients.append(other)
    refused = await other.call("chat:report", {"session_id": sid})
    assert refused["error"]["code"] == "not_found"
    assert (await kid.call("chat:report", {"session_id": sid, "seq": 0}))["error"]["code"] == (
        "invalid_payload"
    )
    status, body = await _api(server, "GET", "/api/safety/flags", _staff())
    assert status == 200 and [f["kind"] for f in body["flags"]] == ["report"]
    flag = body["flags"][0]
    assert flag["note"] == "he made me uneasy" and "text" not in flag
    assert (await _api(server, "GET", "/api/safety/flags", _staff("school", "hs")))[1] == {
        "flags": []
    }
    assert (await _api(server, "GET", "/api/safety/flags", _staff("school", "elem")))[1][
        "flags"
    ][0]["id"] == flag["id"]
    assert (await _api(server, "GET", "/api/safety/flags", _staff("vendor", "paper")))[0] == 403
    status, _ = await _api(server, "GET", f"/api/safety/flags/{flag['id']}", _staff("school", "hs"))
    assert status == 404
    status, detail = await _api(server, "GET", f"/api/safety/flags/{flag['id']}", _staff())
    assert status == 200
    assert [m["text"] for m in detail["messages"]] == ["hello, what's the question?"]
    url = server.settings.database_url
    assert [a["action"] for a in await fetch_all(url, "select action from audit_log")] == [
        "safety.read_messages"
    ]
    path = f"/api/safety/flags/{flag['id']}/action"
    assert (await _api(server, "POST", path, _staff(), json={"action": "shrug"}))[0] == 403
    status, done = await _api(server, "POST", path, _staff(), json={"action": "dismiss"})
    assert status == 200 and done["status"] == "dismissed"
    assert (await _api(server, "POST", path, _staff(), json={"action": "dismiss"}))[0] == 409


async def test_a_suspended_tutor_loses_sessions_and_cannot_accept(
    start_server, clients: list
) -> None:
    server = await start_server(vendor_safety_contacts="paper=safety@paper.example")
    kid, t, sid = await _open(server, clients, "s-susp")
    url = server.settings.database_url
    await _execute(
        url,
        "insert into users (id, username, display_name, role, vendor_id, languages, "
        "password_hash, disabled, created_at) values ('t-s-susp', 't-s-susp', 'T', 'tutor', "
        "'paper', 'en', 'x', false, :now)",
        now=dt.datetime.now(dt.UTC),
    )
    await t.call("chat:send", {"session_id": sid, "text": PERSONAL})  # held: a flag
    flag = (await _api(server, "GET", "/api/safety/flags", _staff()))[1]["flags"][0]
    status, done = await _api(server, "POST", f"/api/safety/flags/{flag['id']}/action",
                              _staff(), json={"action": "suspend_tutor"})
    assert status == 200 and done == {
        "flag_id": flag["id"], "status": "tutor_suspended", "sessions_ended": 1
    }
    ended = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended["reason"] == "tutor_suspended" and ended["requeued"]
    await t.until("account:suspended", lambda e: True)
    rows = await fetch_all(url, "select disabled from users where id = 't-s-susp'")
    assert rows[0]["disabled"] in (True, 1)
    rows = await fetch_all(url, "select status from tutor_states where tutor_id = 't-s-susp'")
    assert rows == [{"status": "away"}]  # not counted as on shift any more
    state = await kid.call("session:state")
    rid = state["request"]["id"]
    refused = await t.call("help:accept", {"request_id": rid})
    assert refused["error"]["code"] == "not_allowed"
    mail = await fetch_all(url, "select kind, address from outbox")
    assert mail == [{"kind": "tutor_suspended", "address": "safety@paper.example"}]


async def test_a_silent_tutor_loses_the_student_to_the_head_of_the_queue(
    start_server, clients: list
) -> None:
    clock = FakeClock()
    server = await start_server(clock, tutor_silent_s=60.0, session_idle_s=0)
    kids = []
    for name in ("s-a", "s-b", "s-c"):
        kid = await server.connect("/student", student(name, "elem", 3))
        clients.append(kid)
        kids.append((kid, (await kid.call("help:request", {"subject": "math",
                                                             "language": "en"}))["request"]["id"]))
    t = await server.connect("/tutor", tutor("t-quiet", "paper", ["en"]))
    clients.append(t)
    kid_c, rid_c = kids[2]
    sid = (await t.call("help:accept", {"request_id": rid_c}))["session"]["session_id"]
    clock.advance(59)
    await server.sweep()
    assert await server.position(rid_c) is None  # still in the session
    clock.advance(2)
    await server.sweep()
    ended = await kid_c.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended == {"session_id": sid, "reason": "tutor_silent", "requeued": True}
    assert await server.position(rid_c) == 1  # before s-a and s-b, who asked first
    rows = await fetch_all(server.settings.database_url,
                           "select end_reason from tutoring_sessions where id = :s", s=sid)
    assert rows == [{"end_reason": "tutor_silent"}]
    # A tutor who answered in time keeps the student.
    _, rid_a = kids[0]
    sid2 = (await t.call("help:accept", {"request_id": rid_a}))["session"]["session_id"]
    await t.call("chat:send", {"session_id": sid2, "text": "Hi! What are you working on?"})
    clock.advance(120)
    await server.sweep()
    assert (await server.broker.store.open_sessions(session_id=sid2))


async def test_a_tutor_may_end_a_silent_students_session_only_after_the_wait(
    start_server, clients: list
) -> None:
    clock = FakeClock()
    server = await start_server(clock, student_silent_s=180.0, tutor_silent_s=0)
    kid, t, sid = await _open(server, clients, "s-mute")
    early = await t.call("session:end", {"session_id": sid, "reason": "student_silent"})
    assert early["error"]["code"] == "conflict"  # not greeted yet
    await t.call("chat:send", {"session_id": sid, "text": "Hi! How can I help?"})
    clock.advance(100)
    early = await t.call("session:end", {"session_id": sid, "reason": "student_silent"})
    assert early["error"]["code"] == "conflict" and "80 s" in early["error"]["message"]
    assert (await kid.call("session:end", {"session_id": sid, "reason": "student_silent"}))[
        "error"]["code"] == "not_found"  # the tutor's to choose
    bad = await t.call("session:end", {"session_id": sid, "reason": "bored"})
    assert bad["error"]["code"] == "invalid_payload"
    clock.advance(81)
    assert (await t.call("session:end", {"session_id": sid, "reason": "student_silent"}))["ok"]
    ended = await kid.until("session:ended", lambda e: e["session_id"] == sid)
    assert ended["reason"] == "student_silent"


async def test_nobody_on_shift_raises_one_alert_and_tells_the_student(
    start_server, clients: list
) -> None:
    clock = FakeClock()
    server = await start_server(clock, no_tutor_alert_s=120.0)
    kid = await server.connect("/student", student("s-night", "elem", 3))
    clients.append(kid)
    ack = await kid.call("help:request", {"subject": "math", "language": "en"})
    assert ack["request"]["nobody_on_shift"] is True
    await server.sweep()
    clock.advance(119)
    await server.sweep()
    url = server.settings.database_url
    assert await fetch_all(url, "select kind from staff_alerts") == []
    clock.advance(2)
    await server.sweep()
    second = await start_server(clock, no_tutor_alert_s=120.0)  # another process agrees
    await second.sweep()
    clock.advance(121)
    await second.sweep()
    alerts = await fetch_all(url, "select kind, queue, cleared_at from staff_alerts")
    assert alerts == [{"kind": "no_tutor", "queue": "paper:en", "cleared_at": None}]
    t = await server.connect("/tutor", tutor("t-back", "paper", ["en"]))
    clients.append(t)
    await t.call("tutor:status", {"status": "available"})
    await server.sweep()
    alerts = await fetch_all(url, "select cleared_at from staff_alerts")
    assert alerts[0]["cleared_at"] is not None


async def test_a_flagged_sessions_messages_outlive_the_buffer(
    start_server, clients: list
) -> None:
    clock = FakeClock()
    server = await start_server(clock, tutor_silent_s=0)
    url = server.settings.database_url
    kid, _, flagged = await _open(server, clients, "s-kept")
    await kid.call("chat:send", {"session_id": flagged, "text": "page 12, question 4"})
    await kid.call("chat:report", {"session_id": flagged})
    kid2, _, plain = await _open(server, clients, "s-plain")
    await kid2.call("chat:send", {"session_id": plain, "text": "page 13, question 1"})
    for who, sid in ((kid, flagged), (kid2, plain)):
        assert (await who.call("session:end", {"session_id": sid}))["ok"]
    clock.advance(BUFFER_AFTER_END_S + 1)
    await server.broker.store.drop_ended_buffers(clock() - BUFFER_AFTER_END_S)
    rows = await fetch_all(url, "select session_id from chat_messages")
    assert [r["session_id"] for r in rows] == [flagged]


async def test_a_question_left_for_the_next_tutor_keeps_its_place_while_away(
    start_server, clients: list
) -> None:
    clock = FakeClock()
    server = await start_server(clock)
    kid = await server.connect("/student", student("s-left", "elem", 3))
    clients.append(kid)
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    question = "How do I factor x^2 + 5x + 6?"
    left = await kid.call("help:leave", {"request_id": rid, "topic": question})
    assert left["ok"] and left["request_id"] == rid and left["left_until"]
    other = await server.connect("/student", student("s-nosy", "elem", 3))
    clients.append(other)
    assert (await other.call("help:leave", {"request_id": rid}))["error"]["code"] == "not_found"
    await kid.close()
    await server.disconnected("student:s-left")
    clock.advance(server.settings.grace_seconds * 3)  # long past the grace period
    await server.sweep()
    assert await server.position(rid) == 1  # kept, not abandoned
    t = await server.connect("/tutor", tutor("t-morning", "paper", ["en"]))
    clients.append(t)
    snapshot = await t.until("queue:snapshot", lambda s: s["total"] == 1)
    assert snapshot["requests"][0]["left"] is True
    assert snapshot["requests"][0]["topic"] == question
    away = await t.call("help:accept", {"request_id": rid})
    assert away["error"]["code"] == "conflict" and "away" in away["error"]["message"]
    back = await server.connect("/student", student("s-left", "elem", 3))
    clients.append(back)
    state = await back.call("session:state")
    assert state["request"]["id"] == rid and state["request"]["left_until"]
    accepted = await t.call("help:accept", {"request_id": rid})
    assert accepted["ok"] and accepted["session"]["topic"] == question
