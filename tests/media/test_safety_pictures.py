"""Staff see a flagged session's pictures (issue 14 + issue 12), on both stacks: the flag's
message list carries each picture message's ``image``, and the reviewer (district staff, or
the school's designee; vendor managers refused) fetches it under the flag, audited in the
read's transaction, with the participants' picture headers; a picture never sent, or
another flag's, is not shown; after the chat's buffer the participants lose it but the
reviewer keeps it until the review period ends."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from broker import tokens
from broker.constants import BUFFER_AFTER_END_S
from broker.retention import purge_engine
from tests.broker.conftest import fetch_all
from tests.broker.harness import Server, staff, student, tutor
from tests.broker.unit import FakeClock
from tests.media import files
from tests.media.test_media_api import KID, get, open_session, post, token
from web.media_api import IMAGE_HEADERS

HELD_CAPTION = "how old are you and where do you live?"  # a tutor's personal question: held


async def staff_get(server: Server, path: str, who: tokens.Identity | None
                    ) -> tuple[int, bytes, dict[str, str]]:
    """GET ``/api/safety/flags`` + ``path`` as ``who``: (status, body, headers)."""
    auth = {} if who is None else {"Authorization": f"Bearer {token(who)}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        response = await http.get(f"{server.url}/api/safety/flags{path}")
        body = await response.read()
    return response.status, body, dict(response.headers)


async def flag_of(server: Server, kind: str) -> dict[str, Any]:
    flags = json.loads((await staff_get(server, "", staff()))[1])["flags"]
    return next(f for f in flags if f["kind"] == kind)


async def audit(server: Server) -> list[dict[str, Any]]:
    return await fetch_all(server.settings.database_url,
                           "select action, detail from audit_log order by at, id")


async def test_reviewers_see_a_flagged_sessions_pictures_audited(
    start_server: Any, clients: list[Any]
) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock)
    kid, tut, sid = await open_session(server, clients, "s-flagpic")
    me, teacher = student("s-flagpic", *KID[1:]), tutor("t-s-flagpic", "paper", ["en"])
    sent = (await post(server, me, sid, files.phone_photo()))[1]["image"]
    assert (await kid.call("chat:send", {"session_id": sid, "image": sent["id"]}))["ok"]
    unsent = (await post(server, me, sid, files.png()))[1]["image"]  # chosen, never sent
    held = (await post(server, teacher, sid, files.png()))[1]["image"]
    ack = await tut.call("chat:send", {"session_id": sid, "image": held["id"],
                                       "text": HELD_CAPTION})
    assert ack["ok"] and ack["held"]
    assert (await kid.call("chat:report", {"session_id": sid, "note": "his picture"}))["ok"]
    report, held_flag = await flag_of(server, "report"), await flag_of(server, "held")

    # The flag's messages: the picture message carries its image; the held one is the flag's.
    status, body, _ = await staff_get(server, f"/{report['id']}", staff())
    assert status == 200
    view = json.loads(body)
    assert [(m["from"], m["text"], m.get("image")) for m in view["messages"]] == [
        ("student", "", sent)]
    assert "image" not in view
    status, body, _ = await staff_get(server, f"/{held_flag['id']}", staff())
    assert json.loads(body)["image"] == held

    # The reviewer fetches it under the flag: the bytes the tutor sees, the same headers.
    _, seen_by_tutor, _ = await get(server, teacher, sid, sent["id"])
    status, data, headers = await staff_get(server, f"/{report['id']}/images/{sent['id']}",
                                            staff())
    assert (status, data) == (200, seen_by_tutor)
    assert headers["Content-Type"] == "image/jpeg"
    assert {k: headers[k] for k in IMAGE_HEADERS} == IMAGE_HEADERS
    assert (await staff_get(server, f"/{held_flag['id']}/images/{held['id']}", staff()))[0] == 200
    reads = [a for a in await audit(server) if a["action"] == "safety.read_image"]
    assert [a["detail"] for a in reads] == [
        f"flag={report['id']} image={sent['id']}", f"flag={held_flag['id']} image={held['id']}"]

    # Refused, and nothing recorded: outside the flag, out of scope, not staff, not an id.
    refusals = [
        (f"{report['id']}/images/{unsent['id']}", staff(), 404),  # never sent
        (f"{report['id']}/images/{held['id']}", staff(), 404),  # another flag's held picture
        (f"{report['id']}/images/{'0' * 32}", staff(), 404),
        (f"{report['id']}/images/{sent['id']}", staff("school", "hs"), 404),
        (f"{report['id']}/images/{sent['id']}", staff("vendor", "paper"), 403),
        (f"{report['id']}/images/{sent['id']}", teacher, 403),
        (f"{report['id']}/images/{sent['id']}", None, 401),
        (f"{report['id']}/images/not-an-id", staff(), 400),
    ]
    for path, who, code in refusals:
        assert (await staff_get(server, f"/{path}", who))[0] == code, (path, who)
    assert (await staff_get(server, f"/{report['id']}/images/{sent['id']}",
                            staff("school", "elem")))[0] == 200  # the school's designee
    reads = [a for a in await audit(server) if a["action"] == "safety.read_image"]
    assert len(reads) == 3

    # After the chat's buffer the participants lose it; the reviewer keeps it for the review.
    assert (await kid.call("session:end", {"session_id": sid}))["ok"]
    clock.advance(BUFFER_AFTER_END_S + 1)
    await server.sweep()
    assert (await get(server, teacher, sid, sent["id"]))[0] == 404
    assert (await staff_get(server, f"/{report['id']}/images/{sent['id']}", staff()))[0] == 200
    now = datetime.fromtimestamp(clock.now, UTC)
    await purge_engine(server.broker.store.engine, server.settings, now + timedelta(days=400))
    assert (await staff_get(server, f"/{report['id']}/images/{sent['id']}", staff()))[0] == 404
