"""A whole help session end to end, over real socket.io clients, on both stacks."""

from __future__ import annotations

from typing import Any

import pytest

from broker.constants import BUFFER_AFTER_END_S
from tests.broker.conftest import fetch_all
from tests.broker.harness import Server, staff, student, tutor

PAPER, TUTORCOM = "paper", "tutorcom"


async def test_request_accept_chat_end_is_recorded(server: Server, clients: list) -> None:
    kid = await server.connect("/student", student("s-ana", "elem", 3, given_name="Ana"))
    ms_x = await server.connect("/tutor", tutor("t-1", PAPER, ["en", "es"], "Ms. X"))
    clients += [kid, ms_x]
    assert (await ms_x.call("tutor:status", {"status": "available"}))["ok"]

    ack = await kid.call(
        "help:request", {"subject": "math", "language": "es", "topic": "fracciones"}
    )
    assert ack["ok"], ack
    request = ack["request"]
    assert request["vendor"] == PAPER and request["position"] == 1
    assert isinstance(request["eta_s"], int | None)

    snap = await ms_x.until(
        "queue:snapshot", lambda s: s["queue"] == f"{PAPER}:es" and s["total"] == 1
    )
    seen = snap["requests"][0]
    assert seen["id"] == request["id"]
    assert seen["grade_band"] == "3-5" and seen["school_kind"] == "elementary"
    assert seen["student"] == "s-ana"
    # never the LMS identity, the name or the exact school
    assert "Ana" not in str(snap) and "elem" not in {seen.get("school_id"), seen.get("school")}

    accepted = await ms_x.call("help:accept", {"request_id": request["id"]})
    assert accepted["ok"], accepted
    session_id = accepted["session"]["session_id"]
    started = await kid.next("session:started")
    assert started["session_id"] == session_id
    assert started["tutor"] == {"display_name": "Ms. X"}
    assert "student" not in started  # the student view carries no tutor-side details

    texts = ["hola", "¿en qué te ayudo?", "1/2 + 1/4", "gracias"]
    senders = [ms_x, kid, ms_x, kid]
    for who, text in zip(senders, texts, strict=True):
        ack = await who.call("chat:send", {"session_id": session_id, "text": text})
        assert ack["ok"], ack
    got = [await kid.next("chat:message") for _ in texts]
    assert [m["text"] for m in got] == texts
    assert [m["seq"] for m in got] == [1, 2, 3, 4]
    assert [m["from"] for m in got] == ["tutor", "student", "tutor", "student"]
    assert [(await ms_x.next("chat:message"))["id"] for _ in texts] == [m["id"] for m in got]

    ended = await ms_x.call(
        "session:end", {"session_id": session_id, "outcome": "resolved", "resolved": True}
    )
    assert ended["ok"], ended
    assert (await kid.next("session:ended")) == {"session_id": session_id, "reason": "tutor"}
    rated = await kid.call("session:rate", {"session_id": session_id, "helped": True, "stars": 5})
    assert rated["ok"], rated

    url = server.settings.database_url
    [req] = await fetch_all(url, "select * from help_requests where id = :id", id=request["id"])
    assert req["status"] == "ended" and req["vendor"] == PAPER and req["queue"] == f"{PAPER}:es"
    assert req["requested_at"] is not None and req["queued_at"] is not None
    assert req["accepted_at"] is not None and req["closed_at"] is not None
    [row] = await fetch_all(url, "select * from tutoring_sessions where id = :id", id=session_id)
    assert row["tutor_id"] == "t-1" and row["end_reason"] == "tutor"
    assert (row["school_id"], row["grade"], row["school_kind"]) == ("elem", 3, "elementary")
    assert (row["messages_student"], row["messages_tutor"]) == (2, 2)
    assert row["chars_tutor"] == len("hola") + len("1/2 + 1/4")
    assert row["first_response_s"] is not None and row["first_response_s"] >= 0
    assert row["rating_stars"] == 5 and row["rating_helped"] in (True, 1)
    assert row["resolved"] in (True, 1)
    # bodies are relayed, not kept, unless retention is on: the session's buffer goes a
    # grace period after the end (BUFFER_AFTER_END_S), at the next sweep past it
    assert len(await fetch_all(url, "select * from chat_messages")) == 4
    now = server.broker.clock()
    await server.broker.store.drop_ended_buffers(now + BUFFER_AFTER_END_S)
    assert await fetch_all(url, "select * from chat_messages") == []


async def test_unmet_request_is_recorded_with_reason(server: Server, clients: list) -> None:
    teen = await server.connect("/student", student("s-hs", "hs", 10))
    clients.append(teen)
    ack = await teen.call("help:request", {"subject": "math", "language": "zh"})
    assert ack["ok"] is False
    assert ack["error"]["code"] == "unmet"
    assert ack["error"]["detail"]["reason"] == "language_unsupported"
    rows = await fetch_all(server.settings.database_url, "select * from help_requests")
    assert len(rows) == 1 and rows[0]["status"] == "unmet"
    assert rows[0]["unmet_reason"] == "language_unsupported"


async def test_span_decides_vendor(server: Server, clients: list) -> None:
    at_k8 = await server.connect("/student", student("s-7a", "k8", 7))
    at_ms = await server.connect("/student", student("s-7b", "ms", 7))
    clients += [at_k8, at_ms]
    a = await at_k8.call("help:request", {"subject": "math", "language": "en"})
    b = await at_ms.call("help:request", {"subject": "math", "language": "en"})
    assert a["request"]["vendor"] == PAPER
    assert b["request"]["vendor"] == TUTORCOM


async def test_positions_are_pushed_when_they_change(server: Server, clients: list) -> None:
    kids = [await server.connect("/student", student(f"s-{i}", "elem", 2)) for i in range(3)]
    other_tab = await server.connect("/student", student("s-0", "elem", 2))
    clients += [*kids, other_tab]
    ids = []
    for i, kid in enumerate(kids, start=1):
        ack = await kid.call("help:request", {"subject": "reading", "language": "en"})
        assert ack["ok"], ack
        assert ack["request"]["position"] == i
        ids.append(ack["request"]["id"])
    assert (await kids[0].call("help:cancel", {"request_id": ids[0]}))["ok"]
    p1 = await kids[1].until("queue:position", lambda m: m["position"] == 1)
    p2 = await kids[2].until("queue:position", lambda m: m["position"] == 2)
    assert p1["request_id"] == ids[1] and p2["request_id"] == ids[2]
    # The cancelling connection learns it from its ack; the student's other tab is told.
    closed = await other_tab.next("request:closed")
    assert closed["status"] == "cancelled" and closed["request_id"] == ids[0]
    assert kids[0].drain("request:closed") == []
    [row] = await fetch_all(
        server.settings.database_url, "select status from help_requests where id = :id", id=ids[0]
    )
    assert row["status"] == "cancelled"


async def test_a_student_on_another_process_is_told_their_new_place(
    start_server: Any, clients: list
) -> None:
    """Scaled stack, two processes: a cancel on one moves up students connected to the
    other, whose own process tells them (it reads the queue when the other's snapshot
    arrives), in order and with no place shown twice."""
    server = await start_server()
    if server.settings.redis_url is None:
        pytest.skip("one process only without Redis")
    other = await start_server()
    first = await server.connect("/student", student("s-p1", "elem", 2))
    behind = [await other.connect("/student", student(f"s-p{i}", "elem", 2)) for i in (2, 3)]
    clients += [first, *behind]
    ids = []
    for kid in (first, *behind):
        ack = await kid.call("help:request", {"subject": "reading", "language": "en"})
        assert ack["ok"], ack
        ids.append(ack["request"]["id"])
    assert (await first.call("help:cancel", {"request_id": ids[0]}))["ok"]
    for kid, rid, place in ((behind[0], ids[1], 1), (behind[1], ids[2], 2)):
        told = await kid.upto("queue:position", lambda m, p=place: m["position"] == p)
        assert [m["request_id"] for m in told] == [rid] * len(told)
        assert [m["position"] for m in told][-1:] == [place] and len(told) == len(
            {m["position"] for m in told}
        )


async def test_one_open_request_per_student(server: Server, clients: list) -> None:
    kid = await server.connect("/student", student("s-dup", "elem", 4))
    clients.append(kid)
    first = await kid.call("help:request", {"subject": "math", "language": "en"})
    again = await kid.call("help:request", {"subject": "math", "language": "en"})
    assert first["ok"] and again["ok"] is False
    assert again["error"]["code"] == "conflict"
    assert again["error"]["detail"]["request_id"] == first["request"]["id"]


async def test_tutors_see_and_take_only_their_vendor_and_languages(
    server: Server, clients: list
) -> None:
    kid = await server.connect("/student", student("s-es", "elem", 1))
    other_vendor = await server.connect("/tutor", tutor("t-tc", TUTORCOM, ["en", "es"]))
    other_language = await server.connect("/tutor", tutor("t-fr", PAPER, ["fr"]))
    clients += [kid, other_vendor, other_language]
    ack = await kid.call("help:request", {"subject": "math", "language": "es"})
    rid = ack["request"]["id"]
    for t in (other_vendor, other_language):
        refused = await t.call("help:accept", {"request_id": rid})
        assert refused["error"]["code"] == "not_allowed"
    await server.broker.flush_pushes()  # paper:es's snapshot, with rid, has gone out
    # then a request in a queue each outsider does watch: its snapshot comes after
    # anything about rid that would (wrongly) have reached them
    markers = []
    for t, who, language in (
        (other_vendor, student("s-m-tc", "hs", 10), "en"),
        (other_language, student("s-m-fr", "elem", 1), "fr"),
    ):
        marker = await server.connect("/student", who)
        clients.append(marker)
        ack = await marker.call("help:request", {"subject": "math", "language": language})
        markers.append((t, ack["request"]["id"]))
    await server.broker.flush_pushes()
    for t, marker_id in markers:
        snapshots = await t.upto("queue:snapshot", lambda s, m=marker_id: m in str(s))
        assert all(rid not in str(snap) for snap in snapshots)


async def test_capacity_is_enforced(server: Server, clients: list) -> None:
    busy = await server.connect("/tutor", tutor("t-cap", PAPER, ["en"]))
    kids = [await server.connect("/student", student(f"s-c{i}", "elem", 5)) for i in range(3)]
    clients += [busy, *kids]
    ids = [
        (await k.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
        for k in kids
    ]
    assert (await busy.call("help:accept", {"request_id": ids[0]}))["ok"]
    assert (await busy.call("help:accept", {"request_id": ids[1]}))["ok"]
    third = await busy.call("help:accept", {"request_id": ids[2]})
    assert third["error"]["code"] == "over_capacity"
    assert (await server.broker.store.request(ids[2]))["status"] == "queued"  # still waiting


async def test_staff_get_live_figures(server: Server, clients: list) -> None:
    watcher = await server.connect("/staff", staff())
    kid = await server.connect("/student", student("s-live", "hs", 11))
    t = await server.connect("/tutor", tutor("t-live", TUTORCOM, ["en"]))
    clients += [watcher, kid, t]
    await t.call("tutor:status", {"status": "available"})
    await kid.call("help:request", {"subject": "chemistry", "language": "en"})
    figures = await watcher.until("staff:live", lambda f: f["queued"] == 1)
    assert figures["queues"][0]["queue"] == f"{TUTORCOM}:en"
    assert figures["tutors_available"] == 1
    vendor_manager = await server.connect("/staff", staff("vendor", PAPER))
    clients.append(vendor_manager)
    only_paper = await vendor_manager.call("staff:live", {})
    assert only_paper["figures"]["queued"] == 0 and only_paper["figures"]["tutors_available"] == 0


async def test_tutor_records_outcome_after_the_student_ends(server: Server, clients: list) -> None:
    kid = await server.connect("/student", student("s-out", "elem", 4))
    t = await server.connect("/tutor", tutor("t-out", PAPER, ["en"]))
    other = await server.connect("/tutor", tutor("t-other", PAPER, ["en"]))
    clients += [kid, t, other]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    outcome = {
        "session_id": sid,
        "outcome": "resolved",
        "tutored_subject": "geometry",
        "resolved": True,
    }
    early = await t.call("session:outcome", outcome)
    assert early["error"]["code"] == "not_found"  # not ended yet: session:end carries it
    assert (await kid.call("session:end", {"session_id": sid}))["ok"]
    assert (await t.next("session:ended"))["reason"] == "student"
    assert (await other.call("session:outcome", outcome))["error"]["code"] == "not_found"
    assert (await t.call("session:outcome", outcome))["ok"]
    [row] = await fetch_all(
        server.settings.database_url, "select * from tutoring_sessions where id = :id", id=sid
    )
    assert (row["end_reason"], row["tutored_subject"], row["outcome"]) == (
        "student",
        "geometry",
        "resolved",
    )


async def test_first_name_is_shown_to_tutors_only_when_the_district_allows(
    start_server, clients: list
) -> None:
    server = await start_server(show_first_name_to_tutors=True)
    kid = await server.connect("/student", student("s-fn", "elem", 3, given_name="Ana María"))
    t = await server.connect("/tutor", tutor("t-fn", PAPER, ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    snap = await t.until("queue:snapshot", lambda s: s["total"] == 1)
    assert snap["requests"][0]["first_name"] == "Ana"  # the first word only, never the surname
    accepted = await t.call("help:accept", {"request_id": rid})
    assert accepted["session"]["student"]["first_name"] == "Ana"


async def test_message_bodies_are_stored_only_when_the_district_turns_on_retention(
    start_server, clients: list
) -> None:
    server = await start_server(message_retention_days=30)
    kid = await server.connect("/student", student("s-ret", "elem", 3))
    t = await server.connect("/tutor", tutor("t-ret", PAPER, ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    assert (await kid.call("chat:send", {"session_id": sid, "text": "what is 3/4?"}))["ok"]
    assert (await t.call("chat:send", {"session_id": sid, "text": "three quarters"}))["ok"]
    rows = await fetch_all(
        server.settings.database_url,
        "select session_id, sender, text from chat_messages order by at, id",
    )
    assert [(r["session_id"], r["sender"], r["text"]) for r in rows] == [
        (sid, "student", "what is 3/4?"),
        (sid, "tutor", "three quarters"),
    ]
