"""Random payloads on every event a client may send: each is answered with a well-formed ack,
never ``internal``, never a traceback in the log, and the connection keeps working.

The payloads come from a seeded generator (the seed is in the test's id, so a failure
repeats): random JSON of every type, and objects with the fields the events read, each
either random or a real id of the caller's (so the handlers' deeper paths run too). They are
encoded as a browser's ``JSON.stringify`` would (stdlib ``json``: lone surrogates and
``NaN`` pass), not with the server's orjson.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from tests.broker.harness import Server, browser_client, staff, student, tutor

ACK_TIMEOUT_S = 5.0
ROUNDS = 40  # payloads per event per seed

# every code an ack may carry (docs/protocol.md), less ``internal``
CODES = {
    "invalid_payload", "unmet", "conflict", "not_found", "already_taken", "over_capacity",
    "not_allowed", "rate_limited", "unauthenticated", "broker_error", "bad_image",
    "image_limit", "image_too_large", "unsupported_image", "unknown_event",
}

UNKNOWN = ["help:requests", "", "staff:live", "x" * 300]  # no such event in /student, /tutor
SHARED = [
    "session:sync", "chat:send", "chat:typing", "session:end", "booked:join", "chat:report",
    "board:stroke", "board:undo", "board:clear", "board:sync",
]
EVENTS = {
    "/student": [
        "help:request", "help:cancel", "help:leave", "session:rate", "session:state", *SHARED,
        *UNKNOWN,
    ],
    "/tutor": [
        "tutor:status", "help:accept", "tutor:state", "session:outcome", *SHARED, *UNKNOWN,
        "tutor:sign_out",  # last: it ends the tutor's sessions
    ],
    "/staff": ["staff:live", "help:request", "chat:send"],
}
FIELDS = [
    "subject", "language", "topic", "grade", "request_id", "session_id", "text", "after_seq",
    "seq", "stars", "status", "outcome", "tutored_subject", "resolved", "helped", "notes",
    "note", "reason", "client_id", "image", "id", "part", "tool", "colour", "width", "points",
]
STRINGS = [
    "", " ", "math", "en", "es", "available", "pen", "#ff0000", "a\x00b", "cut \ud83d",
    "\udc00", "😀" * 50, "x" * 5000, "../../etc/passwd", "'; drop table help_requests; --",
    "<script>alert(1)</script>", "١٢٣", "ß", "null", "NaN", "-1", "0" * 32, "\u202e\u200b",
]
NUMBERS: list[Any] = [
    0, 1, -1, 2, 3, 5, 7, 40, 256, 2**31, 2**63, -(2**63), 10**30, 0.5, -0.0, 1e308,
    float("nan"), float("inf"), float("-inf"),
]


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, nested at most three deep."""
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind in (2, 3):
        return rng.choice(STRINGS)
    if kind == 4:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 5:
        return [[rng.random(), rng.random()] for _ in range(rng.randrange(1, 300))]
    return {rng.choice(FIELDS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def valid(event: str, real: dict[str, Any]) -> dict[str, Any]:
    """A payload the event accepts (with the caller's real ids), to mutate."""
    rid, sid = {"request_id": real["request_id"]}, {"session_id": real["session_id"]}
    return {
        "help:request": {"subject": "math", "language": "en", "topic": "fractions", "grade": 3},
        "help:cancel": rid,
        "help:leave": {**rid, "topic": "fractions"},
        "help:accept": rid,
        "session:rate": {**sid, "stars": 4, "helped": True},
        "session:sync": {**sid, "after_seq": 0},
        "booked:join": {**sid, "after_seq": 0},
        "chat:send": {**sid, "text": "hello", "client_id": "c-1"},
        "chat:report": {**sid, "seq": 1, "note": "look at this"},
        "session:end": {**sid, "notes": "good"},
        "session:outcome": {**sid, "outcome": "helped", "tutored_subject": "math",
                            "resolved": True, "notes": "good"},
        "board:stroke": {**sid, "id": "s-1", "part": 0, "tool": "pen", "colour": "#ff0000",
                         "width": 3, "points": [[0.1, 0.2], [0.3, 0.4]]},
        "board:undo": {**sid, "id": "s-1"},
        "tutor:status": {"status": "available"},
    }.get(event, sid)


def payload(rng: random.Random, event: str, real: dict[str, Any]) -> Any:
    """Random JSON; or the event's valid payload with one to three fields replaced by random
    values, dropped, or added (so each validation step, and what is past it, is reached)."""
    if rng.random() < 0.15:
        return value(rng)
    out = dict(valid(event, real))
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice([*out, *FIELDS]) if out else rng.choice(FIELDS)
        if key in out and rng.random() < 0.25:
            del out[key]
        else:
            out[key] = value(rng)
    return out


def check(event: str, sent: Any, ack: Any) -> None:
    where = f"{event} {sent!r:.300}"
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), (where, ack)
    if not ack["ok"]:
        error = ack.get("error")
        assert isinstance(error, dict), (where, ack)
        assert error.get("code") in CODES, (where, ack)
        assert isinstance(error.get("message"), str) and error["message"], (where, ack)


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_payloads_on_every_event_are_answered(
    server: Server, clients: list, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    rng = random.Random(seed)
    caplog.set_level(logging.INFO)
    kid_identity = student(f"s-fuzz-{seed}", "elem", 3)
    tutor_identity = tutor(f"t-fuzz-{seed}", "paper", ["en"])
    kid = await browser_client(server, "/student", kid_identity)
    teacher = await browser_client(server, "/tutor", tutor_identity)
    desk = await browser_client(server, "/staff", staff())
    try:
        asked = await kid.call("help:request", {"subject": "math", "language": "en"},
                               namespace="/student", timeout=ACK_TIMEOUT_S)
        rid = asked["request"]["id"]
        accepted = await teacher.call("help:accept", {"request_id": rid},
                                      namespace="/tutor", timeout=ACK_TIMEOUT_S)
        real = {"request_id": rid, "session_id": accepted["session"]["session_id"]}
        for namespace, sio in (("/student", kid), ("/tutor", teacher), ("/staff", desk)):
            for event in EVENTS[namespace]:
                for _ in range(ROUNDS):
                    sent = payload(rng, event, real)
                    ack = await sio.call(event, sent, namespace=namespace, timeout=ACK_TIMEOUT_S)
                    check(event, sent, ack)
                    if rng.random() < 0.1:  # and without asking for an ack
                        await sio.emit(event, payload(rng, event, real), namespace=namespace)
            # still connected, still known to the server
            state_event = {
                "/student": "session:state", "/tutor": "tutor:state", "/staff": "staff:live"
            }[namespace]
            alive = await sio.call(state_event, {}, namespace=namespace, timeout=ACK_TIMEOUT_S)
            assert alive["ok"], alive
    finally:
        for sio in (kid, teacher, desk):
            await sio.disconnect()
    broken = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not broken, [r.getMessage() for r in broken]
