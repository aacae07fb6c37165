"""GET /metrics over HTTP on both stacks: what real socket.io clients did shows up, read
with prometheus_client's text parser."""

from __future__ import annotations

import aiohttp
import pytest

from tests.broker.conftest import StartServer
from tests.broker.harness import Client, Server, student, tutor
from tests.broker.unit import FakeClock
from tests.metrics.scrape import Scrape, scrape

QUEUE = "paper:es"  # where the test district routes an elementary student's Spanish math


async def _queued(server: Server, clients: list[Client]) -> tuple[Client, Client, str]:
    """An available paper tutor and a student with one request queued in ``QUEUE``."""
    ms_x = await server.connect("/tutor", tutor("t-1", "paper", ["en", "es"]))
    kid = await server.connect("/student", student("s-ana", "elem", 3))
    clients += [ms_x, kid]
    assert (await ms_x.call("tutor:status", {"status": "available"}))["ok"]
    ack = await kid.call("help:request", {"subject": "math", "language": "es"})
    assert ack["ok"], ack
    assert ack["request"]["vendor"] == "paper"
    return ms_x, kid, ack["request"]["id"]


def _acks(after: Scrape, before: Scrape, namespace: str, event: str, code: str) -> float:
    """How many acks of ``event`` with ``code`` were counted between two scrapes."""
    labels = {"namespace": namespace, "event": event, "code": code}
    return after.count("hh_acks_total", **labels) - before.count("hh_acks_total", **labels)


async def test_queue_tutors_sessions_and_acks_are_exposed(
    start_server: StartServer, clients: list[Client]
) -> None:
    clock = FakeClock()
    server = await start_server(clock)
    before = await scrape(server.url)
    assert before.names("hh_queue_depth") == []

    ms_x, kid, request_id = await _queued(server, clients)
    second = await kid.call("help:request", {"subject": "math", "language": "es"})
    assert second["error"]["code"] == "conflict"
    bad = await kid.call("help:request", {"language": "es"})
    assert bad["error"]["code"] == "invalid_payload"
    clock.advance(42)
    await server.sweep()  # the heartbeat: "available" counts tutors connected now (issue 14)

    now = await scrape(server.url)
    assert now.value("hh_queue_depth", queue=QUEUE) == 1
    assert now.value("hh_queue_oldest_wait_seconds", queue=QUEUE) == 42
    assert now.names("hh_queue_depth") == [{"queue": QUEUE}]  # no other queue
    assert now.value("hh_tutors", status="available") == 1
    assert now.value("hh_tutors", status="busy") == 0
    assert now.value("hh_tutors", status="away") == 0
    assert now.value("hh_sessions_open", kind="on_demand") == 0
    assert now.value("hh_sessions_open", kind="booked") == 0

    # counters are the process's (other tests in this run counted too): compare deltas
    for namespace, event, code in [
        ("/student", "help:request", "ok"),
        ("/student", "help:request", "conflict"),
        ("/student", "help:request", "invalid_payload"),
        ("/tutor", "tutor:status", "ok"),
    ]:
        assert _acks(now, before, namespace, event, code) == 1, (namespace, event, code)
    assert _acks(now, before, "/student", "help:cancel", "ok") == 0

    accepted = await ms_x.call("help:accept", {"request_id": request_id})
    assert accepted["ok"], accepted
    after = await scrape(server.url)
    assert after.names("hh_queue_depth") == []  # an empty queue is not exposed
    assert after.value("hh_sessions_open", kind="on_demand") == 1
    assert after.value("hh_tutors", status="busy") == 1
    assert after.value("hh_tutors", status="available") == 0
    assert _acks(after, now, "/tutor", "help:accept", "ok") == 1


async def test_every_family_has_help_and_the_conventional_type(server: Server) -> None:
    scraped = await scrape(server.url)
    for name in (
        "hh_queue_depth", "hh_queue_oldest_wait_seconds", "hh_tutors", "hh_sessions_open",
        "hh_acks", "hh_moderation_decisions", "hh_alerts_raised",
    ):
        assert scraped.help.get(name), f"{name} has no HELP"
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as got:
        text = await got.text()
    for counter in ("hh_acks", "hh_moderation_decisions", "hh_alerts_raised"):
        assert f"# TYPE {counter}_total counter" in text or f"# TYPE {counter} counter" in text
    for gauge in ("hh_queue_depth", "hh_queue_oldest_wait_seconds", "hh_tutors"):
        assert f"# TYPE {gauge} gauge" in text
    assert "_created" not in text  # one series per counter
    assert "process_resident_memory_bytes" in text


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # no broker state involved
async def test_a_token_is_required_when_configured(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HH_METRICS_TOKEN", "s3cret-token")
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic s3cret-token"},
            {"Authorization": "Bearer s3cret-token-and-more"},
        ):
            async with http.get(f"{server.url}/metrics", headers=headers) as got:
                body = await got.text()
                assert got.status == 401, headers
                assert got.headers["WWW-Authenticate"].startswith("Bearer")
                assert "hh_" not in body and '"unauthenticated"' in body
    scraped = await scrape(server.url, token="s3cret-token")
    assert scraped.value("hh_tutors", status="available") == 0
