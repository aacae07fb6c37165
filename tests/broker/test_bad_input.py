"""Bad input on every event: a typed error ack, nothing changes, everything keeps working."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import socketio

from broker import tokens
from tests.broker.conftest import fetch_all
from tests.broker.harness import (
    SECRET,
    BrowserJsonPacket,
    Server,
    browser_client,
    student,
    tutor,
)

HUGE = "x" * 100_000

STUDENT_CASES = [
    ("help:request", None, "invalid_payload"),
    ("help:request", "math", "invalid_payload"),
    ("help:request", [], "invalid_payload"),
    ("help:request", {}, "invalid_payload"),
    ("help:request", {"subject": 7, "language": "en"}, "invalid_payload"),
    ("help:request", {"subject": "math", "language": None}, "invalid_payload"),
    ("help:request", {"subject": "math", "language": "en", "topic": HUGE}, "invalid_payload"),
    ("help:request", {"subject": HUGE, "language": "en"}, "invalid_payload"),
    ("help:request", {"subject": "math", "language": "en", "grade": {"x": 1}}, "invalid_payload"),
    ("help:cancel", {}, "invalid_payload"),
    ("help:cancel", {"request_id": 12}, "invalid_payload"),
    ("help:cancel", {"request_id": "nope"}, "not_found"),
    ("help:cancel", {"request_id": "../../etc"}, "invalid_payload"),
    ("chat:send", {"session_id": "nope", "text": "hi"}, "not_found"),
    ("chat:send", {"session_id": "nope"}, "invalid_payload"),
    ("chat:send", {"session_id": "nope", "text": HUGE}, "invalid_payload"),
    ("session:end", {"session_id": "nope"}, "not_found"),
    ("session:rate", {"session_id": "nope", "stars": 9}, "invalid_payload"),
    ("session:rate", {"session_id": "nope", "stars": 4}, "not_found"),
    ("session:rate", {"session_id": "nope", "stars": True}, "invalid_payload"),
    ("help:request", {"subject": "math\x00", "language": "en"}, "invalid_payload"),
    ("help:request", {"subject": "math", "language": "en", "topic": "a\x00b"}, "invalid_payload"),
    ("chat:send", {"session_id": "nope", "text": "hi\x00"}, "invalid_payload"),
    ("session:sync", {"session_id": "nope", "after_seq": 0}, "not_found"),
    ("session:sync", {"session_id": "nope", "after_seq": -1}, "invalid_payload"),
    ("session:sync", {"session_id": "nope"}, "invalid_payload"),
    ("disconnect", {}, "invalid_payload"),
    ("connect", {"token": "x"}, "invalid_payload"),
    ("connect_error", None, "invalid_payload"),
]

TUTOR_CASES = [
    ("tutor:status", {"status": "asleep"}, "invalid_payload"),
    ("tutor:status", {"status": ["available"]}, "invalid_payload"),
    ("help:accept", {}, "invalid_payload"),
    ("help:accept", {"request_id": "0" * 32}, "already_taken"),
    ("help:accept", {"request_id": HUGE}, "invalid_payload"),
    ("chat:send", {"session_id": "nope", "text": "hi"}, "not_found"),
    ("session:end", {"session_id": None}, "invalid_payload"),
]


@pytest.mark.parametrize(("event", "payload", "code"), STUDENT_CASES)
async def test_student_bad_input(
    server: Server, clients: list, event: str, payload: object, code: str
) -> None:
    kid = await server.connect("/student", student("s-bad", "elem", 3))
    clients.append(kid)
    ack = await kid.call(event, payload)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code and ack["error"]["message"]
    # the connection and the process keep working, and nothing was recorded
    ok = await kid.call("help:request", {"subject": "math", "language": "en"})
    assert ok["ok"], ok
    rows = await fetch_all(server.settings.database_url, "select status from help_requests")
    assert [r["status"] for r in rows] == ["queued"]


@pytest.mark.parametrize(("event", "payload", "code"), TUTOR_CASES)
async def test_tutor_bad_input(
    server: Server, clients: list, event: str, payload: object, code: str
) -> None:
    t = await server.connect("/tutor", tutor("t-bad", "paper", ["en"]))
    clients.append(t)
    ack = await t.call(event, payload)
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code
    assert (await t.call("tutor:status", {"status": "available"}))["ok"]


async def test_another_students_session_is_not_reachable(server: Server, clients: list) -> None:
    owner = await server.connect("/student", student("s-own", "elem", 3))
    intruder = await server.connect("/student", student("s-int", "elem", 3))
    t = await server.connect("/tutor", tutor("t-own", "paper", ["en"]))
    clients += [owner, intruder, t]
    rid = (await owner.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    assert (await intruder.call("help:cancel", {"request_id": rid}))["error"]["code"] == "not_found"
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    for event, payload in [
        ("chat:send", {"session_id": sid, "text": "let me in"}),
        ("session:end", {"session_id": sid}),
        ("chat:typing", {"session_id": sid}),
    ]:
        ack = await intruder.call(event, payload)
        assert ack["error"]["code"] == "not_found", (event, ack)
    assert intruder.drain("chat:message") == []
    assert (await owner.call("chat:send", {"session_id": sid, "text": "still mine"}))["ok"]


async def test_chat_is_rate_limited_per_sender(start_server, clients: list) -> None:
    server = await start_server(chat_rate_messages=3, chat_rate_window_s=60.0)
    kid = await server.connect("/student", student("s-rl", "elem", 3))
    t = await server.connect("/tutor", tutor("t-rl", "paper", ["en"]))
    clients += [kid, t]
    rid = (await kid.call("help:request", {"subject": "math", "language": "en"}))["request"]["id"]
    sid = (await t.call("help:accept", {"request_id": rid}))["session"]["session_id"]
    acks = [await kid.call("chat:send", {"session_id": sid, "text": f"m{i}"}) for i in range(4)]
    assert [a["ok"] for a in acks] == [True, True, True, False]
    assert acks[3]["error"]["code"] == "rate_limited"
    assert (await t.call("chat:send", {"session_id": sid, "text": "tutor not limited"}))["ok"]


@pytest.mark.parametrize(
    ("namespace", "identity"),
    [
        ("/tutor", tokens.Identity("student", "s-x", {})),
        ("/student", tokens.Identity("tutor", "t-x", {"vendor": "paper", "languages": ["en"]})),
        ("/staff", tokens.Identity("student", "s-x", {})),
    ],
)
async def test_wrong_role_is_refused(
    server: Server, namespace: str, identity: tokens.Identity
) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect(namespace, identity)


@pytest.mark.parametrize(
    "token",
    [None, "", "garbage", "a.b", tokens.issue("other-secret", tokens.Identity("student", "s", {}))],
)
async def test_bad_tokens_are_refused(server: Server, token: str | None) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect("/student", None, token=token if token is not None else "")


async def test_expired_token_is_refused(server: Server) -> None:
    token = tokens.issue(SECRET, tokens.Identity("student", "s", {}), ttl_s=-5)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.connect("/student", None, token=token)


async def test_an_event_with_extra_arguments_is_answered(server: Server, clients: list) -> None:
    kid = await server.connect("/student", student("s-extra", "elem", 3))
    clients.append(kid)
    ack = await kid.sio.call(
        "help:request", ({"subject": "math", "language": "en"}, "extra", 3),
        namespace="/student", timeout=10,
    )
    assert ack["ok"], ack


async def test_a_client_disconnect_event_leaves_the_connection_working(
    server: Server, clients: list
) -> None:
    kid = await server.connect("/student", student("s-disc", "elem", 3))
    clients.append(kid)
    assert (await kid.call("disconnect", {}))["error"]["code"] == "invalid_payload"
    await kid.sio.emit("disconnect", {}, namespace="/student")  # without an ack, too
    ok = await kid.call("help:request", {"subject": "math", "language": "en"})
    assert ok["ok"], ok  # still connected and still known to the server


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "é.é",  # not ASCII: hmac.compare_digest raised TypeError, and no answer came
        "\ud800.x",  # a lone surrogate: the CONNECT's JSON did not decode, no answer came
    ],
)
async def test_connect_error_carries_the_code_and_message_as_its_data(
    server: Server, token: str
) -> None:
    # stdlib json, as a browser encodes: orjson would refuse the lone surrogate client-side
    client = socketio.AsyncClient(reconnection=False, serializer=BrowserJsonPacket)
    errors: list[object] = []

    @client.on("connect_error", namespace="/student")  # type: ignore[untyped-decorator]
    async def on_error(data: object) -> None:
        errors.append(data)

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                server.url, namespaces=["/student"], transports=["websocket"],
                auth={"token": token}, wait_timeout=5,
            )
    finally:
        await client.disconnect()
    # The packet is {message, data}: socket.io-client makes it err.message and err.data.
    assert errors and isinstance(errors[0], dict), errors
    assert isinstance(errors[0]["message"], str)
    assert errors[0]["data"]["code"] == "unauthenticated" and errors[0]["data"]["message"]


# Requests no browser would send, byte for byte: each is refused, never a 500.
MULTIPART = b"Content-Type: multipart/form-data; boundary=x"
RAW_REQUESTS = [
    (b"GET /api/me", b"Cookie: hh_session=\xc3\xa9.\xc3\xa9", b"", 401),  # not ASCII
    (b"GET /api/me", b"Cookie: hh_session=\xff\xfe.ab", b"", 401),  # not UTF-8
    (b"GET /api/stats/summary", b"Authorization: Bearer \xc3\xa9.\xc3\xa9", b"", 401),
    (b"GET /api/stats/summary", b"Authorization: Bearer \xff.\xfe", b"", 401),
    (b"GET /metrics", b"Authorization: Bearer \xff\xfe", b"", 401),
    (b"POST /api/login", b"Content-Type: application/json",
     b'{"username": "\\ud800", "password": "\\ud800xxxxxxxx"}', 400),  # a lone surrogate
    # a multipart body without its boundary: aiohttp's form reader raised ValueError
    (b"POST /login", MULTIPART, b"username=a&password=b", 400),
    (b"POST /lti/login", MULTIPART, b"iss=x", 400),
    (b"POST /lti/launch", MULTIPART, b"id_token=x&state=y", 400),
]


async def test_raw_requests_no_browser_sends_are_refused_not_a_500(
    start_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HH_METRICS_TOKEN", "metrics-secret")
    server = await start_server()
    port = int(server.url.rsplit(":", 1)[1])
    for line, header, body, status in RAW_REQUESTS:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == str(status).encode(), (
            line, header, answer[:300])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_an_over_long_static_name_is_a_404(server: Server) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for path in ("/static/" + "a" * 5000, "/static/" + "b" * 300, "/static/js/" + "c" * 600):
            async with http.get(server.url + path) as resp:
                assert resp.status == 404, path


async def test_malformed_engine_io_frames_are_one_log_line_not_a_traceback(
    server: Server, clients: list, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp

    kid = await server.connect("/student", student("s-frames", "elem", 3))
    clients.append(kid)
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            url = server.url + "/socket.io/?EIO=4&transport=websocket"
            async with http.ws_connect(url) as ws:
                await ws.receive_str()
                await ws.send_str("")  # an empty engine.io packet
                ended = await ws.receive()  # the server ends that connection
                assert ended.type in (
                    aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR
                )
    reports = [r for r in caplog.records if "malformed engine.io frame" in r.getMessage()]
    assert len(reports) == 1 and not any(r.exc_info for r in caplog.records)
    assert (await kid.call("help:request", {"subject": "math", "language": "en"}))["ok"]


@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "math", "language": "en", "topic": "cut emoji \ud83d"},
        {"subject": "math", "language": "en", "grade": float("nan")},
    ],
)
async def test_an_event_whose_json_does_not_decode_is_answered(
    server: Server, clients: list, payload: dict[str, object]
) -> None:
    sio = await browser_client(server, "/student", student("s-json", "elem", 3))
    try:
        ack = await sio.call("help:request", payload, namespace="/student", timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
        rows = await fetch_all(server.settings.database_url, "select status from help_requests")
        assert rows == []
        ok = await sio.call("help:request", {"subject": "math", "language": "en"},
                            namespace="/student", timeout=10)
        assert ok["ok"], ok
    finally:
        await sio.disconnect()


# Raw socket.io packets a client library would never send; ``{id}`` is the packet's ack id.
# Each is answered with its code, or (None) dropped; either way the connection keeps working.
MALFORMED_PACKETS = [
    ('42/student,{id}["nope:nope",{{}}]', "unknown_event"),
    ('42/student,{id}[5,{{}}]', "invalid_payload"),
    ('42/student,{id}[]', "invalid_payload"),
    ('42/student,{id}{{"a":1}}', "invalid_payload"),
    ('42/student,{id}"help:request"', "invalid_payload"),
    ('42/student,{id}[["help:request"],{{}}]', "invalid_payload"),
    ('42/student,{id}["help:request",{{"subject":"math","language":NaN}}]', "invalid_payload"),
    ('451-/student,{id}["help:request",{{"_placeholder":true,"num":0}}]', "invalid_payload"),
    ('46/student,{id}["help:request"]', None),  # a binary ack with no attachments
    ('47/student,{id}["x"]', None),  # no such packet type
    ('44/student,{id}{{"message":"x"}}', None),  # CONNECT_ERROR is the server's to send
    ('42/nowhere,{id}["help:request",{{}}]', "unauthenticated"),  # a namespace not joined
]


async def _acks_until(ws: Any, marker: int) -> dict[int, Any]:
    """Every ack received, by id, up to and with the one of ``marker``."""
    import aiohttp

    acks: dict[int, Any] = {}
    while marker not in acks:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data == "2":
            await ws.send_str("3")
            continue
        head, bracket, body = msg.data.partition("[")
        if head.startswith("43"):
            acks[int(head.rpartition(",")[2])] = json.loads(bracket + body)[0]
    return acks


async def test_malformed_socket_io_packets_are_answered_or_dropped_not_wedged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp

    caplog.set_level(logging.INFO)
    from broker.log_pace import LogPace
    from web.keys import GATEWAY
    from web.sio_guard import LOG_EVERY_S

    assert server.test_server is not None
    # a stopped clock: every report after the first falls within the interval
    server.test_server.app[GATEWAY].sio._malformed = LogPace(LOG_EVERY_S, clock=lambda: 0.0)
    token = tokens.issue(SECRET, student("s-packets", "elem", 3))
    state = '42/student,{id}["session:state",{{}}]'
    async with aiohttp.ClientSession() as http:
        url = server.url + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(url) as ws:
            await ws.receive_str()  # engine.io's open
            await ws.send_str("40/student," + json.dumps({"token": token}))
            for n, (frame, code) in enumerate(MALFORMED_PACKETS):
                sent, marker = 100 + n, 500 + n
                await ws.send_str("4" + frame.format(id=sent)[1:])
                await ws.send_str("4" + state.format(id=marker)[1:])  # is it still working?
                acks = await _acks_until(ws, marker)
                assert acks[marker]["ok"], (frame, acks)
                if code is None:
                    assert sent not in acks, (frame, acks)
                else:
                    assert acks[sent]["error"]["code"] == code, (frame, acks)
            # an event after leaving the namespace is answered too
            await ws.send_str("41/student,")
            await ws.send_str("4" + state.format(id=900)[1:])
            left = await _acks_until(ws, 900)
            assert left[900]["error"]["code"] == "unauthenticated", left
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # the three dropped packets: one line, as they came within the report interval
    reports = [r for r in caplog.records if "malformed socket.io packet" in r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in reports]
