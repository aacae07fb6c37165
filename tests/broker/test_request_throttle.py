"""``help:request`` and ``help:cancel`` are throttled per student across every process
(issue 10: one student made 5,000 request rows in 13 s): with a limit of N per window, a
student asking and cancelling from two tabs (on the scaled stack one tab per process) is
refused ``rate_limited`` at the (N+1)th event, wherever it lands, with ``retry_after``;
the refused event changes nothing, and another student is not affected."""

from __future__ import annotations

from typing import Any

from tests.broker.conftest import StartServer, fetch_all
from tests.broker.harness import Client, student

LIMIT = 6  # events (requests and cancels together) per window


async def test_requests_and_cancels_are_throttled_per_student_across_processes(
    stack_settings: Any, start_server: StartServer, clients: list[Client]
) -> None:
    limits = {"request_rate_limit": LIMIT, "request_rate_window_s": 600.0}
    servers = [await start_server(**limits)]
    if stack_settings.redis_url:  # the scaled stack: the second tab on another process
        servers.append(await start_server(**limits))
    ana = student("s-throttled", "elem", 3)
    tabs = [await servers[i % len(servers)].connect("/student", ana) for i in range(2)]
    clients += tabs
    answers = []
    for i in range(LIMIT // 2):  # request then cancel, each from the other tab
        asked = await tabs[i % 2].call("help:request", {"subject": "math", "language": "en"})
        assert asked["ok"], asked
        rid = asked["request"]["id"]
        answers.append(await tabs[(i + 1) % 2].call("help:cancel", {"request_id": rid}))
    assert all(a["ok"] for a in answers), answers
    rows_before = await fetch_all(stack_settings.database_url, "select id from help_requests")
    assert len(rows_before) == LIMIT // 2

    for tab in tabs:  # the limit is reached, on every process
        refused = await tab.call("help:request", {"subject": "math", "language": "en"})
        assert not refused["ok"] and refused["error"]["code"] == "rate_limited", refused
        assert refused["error"]["detail"]["retry_after"] >= 1
    rows_after = await fetch_all(stack_settings.database_url, "select id from help_requests")
    assert rows_after == rows_before  # a refusal wrote nothing
    state = await tabs[0].call("session:state", {})
    assert state["ok"] and state["request"] is None  # and nothing is left open

    bo = await servers[-1].connect("/student", student("s-other", "elem", 3))
    clients.append(bo)
    other = await bo.call("help:request", {"subject": "math", "language": "en"})
    assert other["ok"], other  # another student's count is their own
