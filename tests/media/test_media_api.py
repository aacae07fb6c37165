"""Pictures in the chat over HTTP and socket.io, on both stacks (SQLite + in-process, and
PostgreSQL + Redis with two processes): a photo sent, announced, relayed and fetched by the
other side only; bad files, strangers, caps and the throttle refused with typed errors and
nothing stored; pictures gone with their session, kept while a reported session is under
review, and purged by the retention job when it keeps messages."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from PIL import Image

from broker import tokens
from broker.constants import BUFFER_AFTER_END_S
from broker.retention import purge_engine
from broker.student_data import export_student
from tests.broker.conftest import fetch_all
from tests.broker.harness import SECRET, Server, staff, student, tutor
from tests.broker.unit import FakeClock
from tests.media import files

KID = ("s-pic", "elem", 3)


def token(identity: tokens.Identity) -> str:
    return tokens.issue(SECRET, identity)


async def post(server: Server, who: tokens.Identity | None, sid: str, data: Any,
               **headers: str) -> tuple[int, dict[str, Any]]:
    if who is not None:
        headers["Authorization"] = f"Bearer {token(who)}"
    async with aiohttp.ClientSession() as http, http.post(
        f"{server.url}/api/sessions/{sid}/images", data=data, headers=headers
    ) as response:
        return response.status, await response.json(content_type=None)


async def get(server: Server, who: tokens.Identity | None, sid: str, image_id: str
              ) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token(who)}"} if who is not None else {}
    async with aiohttp.ClientSession() as http, http.get(
        f"{server.url}/api/sessions/{sid}/images/{image_id}", headers=headers
    ) as response:
        return response.status, await response.read(), dict(response.headers)


async def open_session(server: Server, clients: list, name: str = KID[0]) -> tuple[Any, Any, str]:
    kid = await server.connect("/student", student(name, *KID[1:]))
    tut = await server.connect("/tutor", tutor(f"t-{name}", "paper", ["en"]))
    clients += [kid, tut]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await tut.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    return kid, tut, sid


async def stored(server: Server) -> int:
    rows = await fetch_all(server.settings.database_url, "select count(*) as n from chat_images")
    return int(rows[0]["n"])


async def test_a_photo_is_relayed_and_only_the_other_side_may_fetch_it(
    start_server, clients: list
) -> None:
    server = await start_server()
    kid, tut, sid = await open_session(server, clients)
    me, other = student(*KID), tutor(f"t-{KID[0]}", "paper", ["en"])
    status, body = await post(server, me, sid, files.phone_photo(), **{
        "Content-Type": "application/octet-stream"})
    assert status == 201, body
    image = body["image"]
    assert {k: image[k] for k in ("type", "width", "height")} == {
        "type": "image/jpeg", "width": 1200, "height": 1600}
    assert (await get(server, other, sid, image["id"]))[0] == 404  # not announced yet
    assert (await get(server, me, sid, image["id"]))[0] == 200

    ack = await kid.call("chat:send", {"session_id": sid, "image": image["id"]})
    assert ack["ok"], ack
    message = ack["message"]
    assert (message["text"], message["image"], message["from"]) == ("", image, "student")
    pushed = await tut.until("chat:message", lambda m: m["id"] == message["id"])
    assert pushed["image"] == image
    again = await kid.call("chat:send", {"session_id": sid, "image": image["id"],
                                          "client_id": "something-else"})
    assert again["message"] == message  # announced once, however often it is sent
    stolen = await tut.call("chat:send", {"session_id": sid, "image": image["id"]})
    assert stolen["error"]["code"] == "not_found"
    synced = await tut.call("session:sync", {"session_id": sid, "after_seq": 0})
    assert [m.get("image") for m in synced["messages"]] == [image]

    status, data, headers = await get(server, other, sid, image["id"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "no-store, private"
    assert headers["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(data)) as seen:
        assert seen.size == (1200, 1600) and dict(seen.getexif()) == {}

    # Strangers, staff and the anonymous: nothing seen, nothing stored.
    stranger = student("s-other", "elem", 3)
    other_tutor = tutor("t-other", "paper", ["en"])
    for who, code in ((stranger, 404), (other_tutor, 404), (staff(), 403), (None, 401)):
        assert (await get(server, who, sid, image["id"]))[0] == code
        status, body = await post(server, who, sid, files.png())
        assert (status, body["code"]) == (code, {404: "not_found", 403: "not_allowed",
                                                 401: "unauthenticated"}[code])
    assert (await get(server, me, sid, "0" * 32))[0] == 404
    assert await stored(server) == 1

    if server.settings.redis_url:  # any process serves it: it is in the database
        second = await start_server()
        assert (await get(second, other, sid, image["id"]))[1] == data


async def test_bad_files_caps_throttle_and_pictures_gone_with_their_session(
    start_server, clients: list
) -> None:
    clock = FakeClock(time.time())
    server = await start_server(clock)
    kid, tut, sid = await open_session(server, clients)
    me, other = student(*KID), tutor(f"t-{KID[0]}", "paper", ["en"])
    # Every bad file: a typed error, and nothing stored.
    refused = {
        "svg with script": (files.SVG_WITH_SCRIPT, 415, "unsupported_image"),
        "html named .jpg": (files.HTML, 415, "unsupported_image"),
        "heic": (files.HEIC, 415, "unsupported_image"),
        "gif": (files.GIF, 415, "unsupported_image"),
        "empty": (b"", 415, "unsupported_image"),
        "10 gigapixel png": (files.png_claiming(100_000, 100_000), 422, "bad_image"),
        "81 MP png": (files.png_claiming(9000, 9000, rows=4), 422, "bad_image"),
        "81 MP jpeg": (files.jpeg_claiming(9000, 9000), 422, "bad_image"),
        "truncated": (files.truncated_jpeg(), 422, "bad_image"),
        "corrupt": (files.corrupt_png(), 422, "bad_image"),
        "over 10 MB": (b"\xff\xd8\xff" + bytes(10 * 1024 * 1024), 413, "image_too_large"),
    }
    for name, (data, status, code) in refused.items():
        got = await post(server, me, sid, data, **{"Content-Type": "image/jpeg"})
        assert (got[0], got[1].get("code")) == (status, code), name

    async def endless():  # chunked, no Content-Length: refused once past the limit
        for _ in range(200):
            yield b"\xff" * (64 * 1024)

    got = await post(server, me, sid, endless())
    assert (got[0], got[1]["code"]) == (413, "image_too_large")
    bad = await post(server, me, "not an id!", files.png())
    assert bad[0] in (400, 404)
    assert await stored(server) == 0

    # The caps and the throttle (the bad files above were counted by it too).
    media = server.broker.media
    media.configure(uploads=2)
    ids = []
    for _ in range(2):
        status, body = await post(server, other, sid, files.png())
        ids.append(body["image"]["id"])
    status, body = await post(server, other, sid, files.png())
    assert (status, body["code"]) == (429, "rate_limited")  # a third upload in a minute
    media.configure(uploads=50, per_session=2)
    status, body = await post(server, me, sid, files.png())
    assert (status, body["code"], body["limit"]) == (409, "image_limit", "count")
    media.configure(per_session=10, session_bytes=1)
    status, body = await post(server, me, sid, files.png())
    assert (status, body["code"], body["limit"]) == (409, "image_limit", "bytes")
    media.configure(session_bytes=10**9)
    assert await stored(server) == 2
    held = await export_student(server.broker.store.engine, KID[0])  # a data request
    assert sorted(p["id"] for p in held["chat_images"]) == sorted(ids)
    assert all(p["data_base64"] and p["session_id"] == sid for p in held["chat_images"])

    # Gone with the session: a short while after its end, as its messages.
    assert (await tut.call("chat:send", {"session_id": sid, "image": ids[0]}))["ok"]
    assert (await kid.call("session:end", {"session_id": sid}))["ok"]
    status, _ = await post(server, other, sid, files.png())
    assert status == 404  # ended: nothing more comes in
    assert (await get(server, me, sid, ids[0]))[0] == 200  # in flight for a while
    assert (await get(server, me, sid, ids[1]))[0] == 404  # never announced
    clock.advance(BUFFER_AFTER_END_S + 1)
    assert (await get(server, me, sid, ids[0]))[0] == 404
    await server.sweep()
    assert await stored(server) == 0

    # A reported session's pictures are kept while staff may review it, as its messages;
    # with message retention on, the retention job purges them when it is time.
    settings = server.settings.with_(message_retention_days=1)
    kid2, _, sid2 = await open_session(server, clients, "s-pic-2")
    assert (await post(server, student("s-pic-2", *KID[1:]), sid2, files.png()))[0] == 201
    assert (await kid2.call("chat:report", {"session_id": sid2}))["ok"]
    assert (await kid2.call("session:end", {"session_id": sid2}))["ok"]
    clock.advance(BUFFER_AFTER_END_S + 1)
    await server.sweep()
    assert await stored(server) == 1
    engine = server.broker.store.engine
    now = datetime.fromtimestamp(clock.now, UTC)
    await purge_engine(engine, settings, now)
    assert await stored(server) == 1
    await purge_engine(engine, settings, now + timedelta(days=40))  # review is over
    assert await stored(server) == 0
