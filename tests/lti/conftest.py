"""The LTI tool and the fake Schoology served together by one real aiohttp test server.

The tool fetches the platform's key set over HTTP from that server, as it would in
production. The cookie jar treats the test origin as secure so the ``Secure`` state cookie
round-trips over plain http, as browsers do for localhost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from joserfc.jwk import RSAKey

from broker.settings import Settings
from web.demo_platform import FALLBACK_STAFF, FALLBACK_USERS, DemoPlatform, setup_demo_platform
from web.lti import LaunchData, LtiTool, frame_ancestors_middleware, setup_lti
from web.lti.nonces import MemoryNonceStore, NonceStore
from web.lti.tool_keys import ToolKeys

STUDENT = "demo-1002"  # a built-in demo student (grade 7, K-8 school)
_TOOL_KEY: RSAKey | None = None


def tool_keys() -> ToolKeys:
    global _TOOL_KEY
    if _TOOL_KEY is None:
        _TOOL_KEY = RSAKey.generate_key(2048, private=True)
    return ToolKeys(_TOOL_KEY)


@dataclass
class Login:
    state: str
    nonce: str
    auth_url: str
    response: aiohttp.ClientResponse


@dataclass
class LtiEnv:
    client: TestClient[Any, Any]
    platform: DemoPlatform
    tool: LtiTool
    base: str
    launches: list[LaunchData] = field(default_factory=list)

    async def login(self, user: str = STUDENT, *, storage: bool = False) -> Login:
        """Start a login as the platform would and return the state and nonce it issued."""
        url = self.platform.login_initiation_url(user, storage=storage)
        response = await self.client.get(url[len(self.base):], allow_redirects=False)
        if storage:
            assert response.status == 200, await response.text()
            auth_url = storage_config(await response.text())["next"]
        else:
            assert response.status == 302, await response.text()
            auth_url = response.headers["Location"]
        query = parse_qs(urlsplit(auth_url).query)
        return Login(query["state"][0], query["nonce"][0], auth_url, response)

    def claims(self, login: Login, user: str = STUDENT, **kwargs: Any) -> dict[str, Any]:
        return self.platform.launch_claims(user, nonce=login.nonce, **kwargs)

    async def launch(self, token: str, state: str, **extra: str) -> aiohttp.ClientResponse:
        data = {"id_token": token, "state": state, **extra}
        return await self.client.post("/lti/launch", data=data)

    async def good_launch(self, user: str = STUDENT) -> None:
        login = await self.login(user)
        token = self.platform.sign_launch(self.claims(login, user))
        response = await self.launch(token, login.state)
        assert response.status == 200, await response.text()


def storage_config(html: str) -> dict[str, Any]:
    """The JSON configuration of a platform-storage page."""
    pattern = r'<script type="application/json" id="hh-config">(.*?)</script>'
    match = re.search(pattern, html, re.S)
    assert match, html
    config = dict(json.loads(match.group(1)))
    assert config.pop("locale") and config.pop("i18n_url")  # every page's own keys
    return config


def form_fields(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the first form in an auto-post page."""
    action = re.search(r'<form[^>]*action="([^"]*)"', html)
    assert action, html
    fields = dict(
        (unescape(n), unescape(v))
        for n, v in re.findall(r'<input type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
    )
    return unescape(action.group(1)), fields


async def accept(request: web.Request, launch: LaunchData) -> web.StreamResponse:
    request.app[LAUNCHES].append(launch)
    return web.Response(text="<p>widget</p>", content_type="text/html")


LAUNCHES: web.AppKey[list[LaunchData]] = web.AppKey("test_launches", list)


@pytest.fixture
def make_env(
    aiohttp_server: Callable[..., Awaitable[Any]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    unused_tcp_port_factory: Callable[[], int],
) -> Callable[..., Awaitable[LtiEnv]]:
    async def make(
        *,
        nonces: NonceStore | None = None,
        settings: Settings | None = None,
        on_launch: Callable[[web.Request, LaunchData], Awaitable[web.StreamResponse]] = accept,
    ) -> LtiEnv:
        port = unused_tcp_port_factory()
        base = f"http://127.0.0.1:{port}"
        settings = settings or Settings(secret_key="test-secret")
        app = web.Application(middlewares=[frame_ancestors_middleware(settings)])
        app[LAUNCHES] = []
        tool = setup_lti(
            app, settings, on_launch, tool_keys=tool_keys(),
            nonces=nonces or MemoryNonceStore(),
        )
        tool.keys.refetch_min_interval_s = 0.0
        platform = setup_demo_platform(
            app, settings, base, users=[*FALLBACK_USERS, *FALLBACK_STAFF]
        )
        server = await aiohttp_server(app, port=port)
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=base)
        client = await aiohttp_client(server, cookie_jar=jar)
        return LtiEnv(client, platform, tool, base, app[LAUNCHES])

    return make


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[LtiEnv]]) -> LtiEnv:
    return await make_env()
