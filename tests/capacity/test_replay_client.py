"""The replay's lean socket.io client against the real server: joins, calls, refusals."""

from __future__ import annotations

import aiohttp
import pytest

from broker import tokens
from broker.settings import Settings
from tests.broker.harness import SECRET, free_port
from web.commands.replay_client import LeanClient
from web.commands.simulate import running_app


async def test_lean_client_joins_calls_and_is_refused(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, secret_key=SECRET, pseudonym_secret=SECRET,
                        port=free_port(), host="127.0.0.1")
    student = tokens.Identity("student", "syn-stu-1", {"grade": 10, "groups": []})
    async with running_app(settings, []) as (url, _), aiohttp.ClientSession() as http:
        client = LeanClient(http, url, "/student")
        await client.connect({"token": tokens.issue(SECRET, student)})
        first, second = await client.call("session:state", {}), await client.call(
            "help:request", {"subject": "math", "language": "xx"})
        assert first["ok"] is True
        assert second["ok"] is False and second["error"]["code"]  # a typed refusal
        await client.disconnect()
        await client.disconnect()  # idempotent
        with pytest.raises(ConnectionError):
            await client.call("session:state", {})
        stranger = LeanClient(http, url, "/student")
        with pytest.raises(ConnectionError):
            await stranger.connect({"token": "not-a-token"})
        await stranger.disconnect()
