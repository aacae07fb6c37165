"""A launch while PostgreSQL or Redis cannot be reached: the student sees the translated
error page, 503 ``unavailable`` with ``Retry-After``, never a JSON body or a traceback, and
nothing is created; a later launch works.

Before, the outage's exception left the launch for the app's problem middleware: a JSON
``internal`` body inside the LMS's iframe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from broker.outages import OutageLog
from tests.lti.conftest import LtiEnv, accept
from tests.services import database_refused
from web import problems
from web.lti import LaunchData
from web.lti import nonces as nonces_module
from web.lti.nonces import RedisNonceStore

MakeEnv = Callable[..., Awaitable[LtiEnv]]


@pytest.fixture(autouse=True)
def fresh_outage_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another test's outage within the last 10 s would have used up this one's log line."""
    monkeypatch.setattr(problems, "outages", OutageLog(problems.log))


async def _launch(env: LtiEnv, locale: str = "es-MX") -> tuple[int, dict[str, str], str]:
    login = await env.login()
    token = env.platform.sign_launch(env.claims(login, locale=locale))
    response = await env.launch(token, login.state)
    return response.status, dict(response.headers), await response.text()


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unavailable: POST /lti/launch" in r.getMessage()]


async def test_database_outage_in_the_launch_is_a_translated_503_page(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    down = True

    async def on_launch(request: web.Request, data: LaunchData) -> web.StreamResponse:
        if down:  # the student's record cannot be written: PostgreSQL is down
            raise database_refused()
        return await accept(request, data)

    env = await make_env(on_launch=on_launch)
    caplog.set_level(logging.INFO)
    for _ in range(2):
        status, headers, html = await _launch(env)
        assert status == 503 and headers["Retry-After"] == "5"
        assert headers["Content-Type"].startswith("text/html")
        assert '<html lang="es" dir="ltr">' in html  # the launch's own language
        assert "Homework Help no está disponible por un momento." in html
        assert "<code data-i18n-skip>unavailable</code>" in html
    assert env.launches == []
    lines = _outage_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and not lines[0].exc_info
    assert not [r for r in caplog.records if r.exc_info]

    down = False
    status, _, html = await _launch(env)
    assert status == 200 and "widget" in html and len(env.launches) == 1


async def test_redis_outage_at_the_nonce_is_a_503_page(
    make_env: MakeEnv, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # a nonce store on a port where no Redis listens: redis-py's own ConnectionError
    nonces = RedisNonceStore(f"redis://127.0.0.1:{unused_tcp_port}/0", "hh-test")
    env = await make_env(nonces=nonces)
    caplog.set_level(logging.INFO)
    try:
        status, headers, html = await _launch(env, locale="fr-CA")
    finally:
        await nonces.close()
    assert status == 503 and headers["Retry-After"] == "5"
    assert "Homework Help est momentanément indisponible." in html
    assert env.launches == []
    assert len(_outage_lines(caplog)) == 1 and not [r for r in caplog.records if r.exc_info]


async def test_a_failure_that_is_not_an_outage_is_not_called_one(make_env: MakeEnv) -> None:
    async def on_launch(request: web.Request, data: LaunchData) -> web.StreamResponse:
        raise KeyError("a bug")

    env = await make_env(on_launch=on_launch)
    status, headers, _ = await _launch(env)
    # raised on, as before (in the app the problem middleware logs it in full: 500
    # `internal`); never called an outage
    assert status == 500 and "Retry-After" not in headers



async def test_a_nonce_store_that_answers_nothing_is_a_503_page(
    make_env: MakeEnv, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis frozen (connected, nothing answered): the launch waits ``REDIS_WAIT_S`` for
    the nonce, then answers the outage page, instead of holding the student's launch."""
    monkeypatch.setattr(nonces_module, "REDIS_WAIT_S", 0.2)
    nonces = RedisNonceStore(redis_url, "hh-test")
    never = asyncio.Event()

    async def unanswered(*args: Any, **kwargs: Any) -> Any:
        await never.wait()

    monkeypatch.setattr(nonces._client, "set", unanswered)
    env = await make_env(nonces=nonces)
    caplog.set_level(logging.INFO)
    try:
        status, headers, html = await asyncio.wait_for(_launch(env, locale="es"), 10)
    finally:
        await nonces.close()
    assert status == 503 and headers["Retry-After"] == "5"
    assert "Homework Help no está disponible por un momento." in html
    assert env.launches == []
    assert len(_outage_lines(caplog)) == 1
