"""The socket.io cells of docs/security.md's authorisation table, over a real server.

Identities come from real sign-ins (``/api/token``) where the role has an account, so these
also show that socket.io connections carry the same identity as the cookie session.
"""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from broker import tokens
from broker.accounts import Accounts
from broker.identity import Scope, staff_identity
from tests.accounts.conftest import PASSWORD, AuthServer, make_people
from tests.broker.harness import Client, student

NAMESPACES = ("/student", "/tutor", "/staff")
TEACHER = staff_identity("lti-teacher-1", Scope("school", "elem"), role="teacher", source="lti")


async def token_for(server: AuthServer, username: str) -> str:
    async with server.http() as http:
        resp = await http.post("/api/login", json={"username": username, "password": PASSWORD})
        assert resp.status == 200
        body = await (await http.get("/api/token")).json()
        return str(body["token"])


async def connect(server: AuthServer, namespace: str, who: str | tokens.Identity) -> Client:
    if isinstance(who, str):
        return await server.connect(namespace, None, token=await token_for(server, who))
    return await server.connect(namespace, who)


# row of the table -> the one namespace it may connect to
ALLOWED = {
    "student": "/student",
    "paper.tutor": "/tutor",
    "teacher": "/staff",
    "elem.staff": "/staff",
    "paper.manager": "/staff",
    "district.staff": "/staff",
}


async def test_each_role_connects_only_to_its_namespace(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    rows: dict[str, str | tokens.Identity] = {
        "student": student("s-ana", "elem", 3), "teacher": TEACHER,
        **{u: u for u in ALLOWED if "." in u},
    }
    for row, who in rows.items():
        for namespace in NAMESPACES:
            if namespace == ALLOWED[row]:
                clients.append(await connect(server, namespace, who))
            else:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await connect(server, namespace, who)
                    pytest.fail(f"{row} connected to {namespace}")


async def test_tutor_of_another_vendor_can_neither_see_nor_take_nor_join(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    kid = await connect(server, "/student", student("s-ana", "elem", 3))
    own = await connect(server, "/tutor", "paper.tutor")
    other = await connect(server, "/tutor", "tc.tutor")  # Tutor.com, English
    clients += [kid, own, other]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    snap = await own.until("queue:snapshot", lambda s: s["total"] == 1)
    assert snap["queue"] == "paper:en" and snap["requests"][0]["id"] == rid
    refused = await other.call("help:accept", {"request_id": rid})
    assert refused["error"]["code"] == "not_allowed"
    state = await other.call("tutor:state", {})
    assert rid not in str(state)

    sid = (await own.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    for event, payload in (("chat:send", {"session_id": sid, "text": "hi"}),
                           ("chat:typing", {"session_id": sid}),
                           ("session:end", {"session_id": sid})):
        ack = await other.call(event, payload)
        assert ack["error"]["code"] == "not_found", (event, ack)
    # a request in other's own queue: its snapshot reaches other after anything about
    # rid or sid that (wrongly) would have
    await server.broker.flush_pushes()
    marker = await connect(server, "/student", student("s-marker", "hs", 10))
    clients.append(marker)
    ack = await marker.call("help:request", {"subject": "math", "language": "en"})
    await server.broker.flush_pushes()
    received = await other.upto("queue:snapshot", lambda s: ack["request"]["id"] in str(s))
    for event in ("chat:message", "chat:typing", "session:ended"):
        received += other.drain(event)
    assert rid not in str(received) and sid not in str(received)


async def test_a_student_reaches_only_their_own_request_and_session(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    ana = await connect(server, "/student", student("s-ana", "elem", 3))
    ben = await connect(server, "/student", student("s-ben", "elem", 3))
    t = await connect(server, "/tutor", "paper.tutor")
    clients += [ana, ben, t]
    rid = (await ana.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    assert (await ben.call("help:cancel", {"request_id": rid}))["error"]["code"] == "not_found"
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    state = await ben.call("session:state", {})
    assert state["ok"] and state["request"] is None and state["session"] is None
    await t.call("session:end", {"session_id": sid})
    rate = await ben.call("session:rate", {"session_id": sid, "helped": True, "stars": 1})
    assert rate["error"]["code"] == "not_found"
    assert (await ana.call("session:rate", {"session_id": sid, "stars": 5}))["ok"]


def _queues(figures: dict[str, Any]) -> set[str]:
    return {q["queue"] for q in figures["queues"]}


async def test_vendor_managers_see_only_their_vendor_live(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    young = await connect(server, "/student", student("s-young", "elem", 3))
    teen = await connect(server, "/student", student("s-teen", "hs", 10))
    clients += [young, teen]
    await young.call("help:request", {"subject": "math", "language": "en"})
    await teen.call("help:request", {"subject": "math", "language": "en"})
    manager = await connect(server, "/staff", "paper.manager")
    district = await connect(server, "/staff", "district.staff")
    clients += [manager, district]
    mine = (await manager.call("staff:live", {}))["figures"]
    everything = (await district.call("staff:live", {}))["figures"]
    assert _queues(mine) == {"paper:en"} and mine["queued"] == 1
    assert _queues(everything) == {"paper:en", "tutorcom:en"} and everything["queued"] == 2


async def test_student_and_tutor_events_are_not_served_on_staff(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    district = await connect(server, "/staff", "district.staff")
    clients.append(district)
    for event in ("help:accept", "help:request", "chat:send"):
        ack = await district.call(event, {"request_id": "x"})
        assert ack["ok"] is False and ack["error"]["code"] == "unknown_event", ack


async def test_tutors_see_pseudonyms_never_names(
    server: AuthServer, accounts: Accounts, clients: list[Client]
) -> None:
    await make_people(accounts)
    kid = await connect(server, "/student", student("s-ana", "elem", 3, given_name="Ana",
                                                    sis_id="SIS-123"))
    t = await connect(server, "/tutor", "paper.tutor")
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    snap = await t.until("queue:snapshot", lambda s: s["total"] == 1)
    accepted = await t.call("help:accept", {"request_id": rid})
    seen = str(snap) + str(accepted)
    assert "s-ana" in seen and "Ana" not in seen and "SIS-123" not in seen
    assert "'elem'" not in seen  # the school kind, not the exact school
