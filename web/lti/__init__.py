"""The LTI 1.3 tool: how a student's Schoology launch becomes a broker login.

Use::

    from web.lti import LaunchData, frame_ancestors_middleware, setup_lti

    async def on_launch(request: web.Request, launch: LaunchData) -> web.StreamResponse: ...

    app = web.Application(middlewares=[frame_ancestors_middleware(settings)])
    setup_lti(app, settings, on_launch)

Routes: ``/lti/login`` (GET, POST), ``/lti/launch`` (POST), ``/lti/jwks.json``,
``/lti/config.json``. See ``docs/lti.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from broker.settings import Settings
from web.lti.errors import LtiError
from web.lti.launch import LaunchData, map_roles, role_of
from web.lti.nonces import NonceStore, make_nonce_store
from web.lti.platform_keys import PlatformKeyCache
from web.lti.registry import PlatformRegistration, Registry, parse_platforms
from web.lti.routes import (
    CONFIG_PATH,
    JWKS_PATH,
    LAUNCH_PATH,
    LOGIN_PATH,
    LTI_TOOL,
    LtiTool,
    OnLaunch,
    config,
    frame_ancestors_middleware,
    jwks,
    launch,
    login,
)
from web.lti.state import StateCodec
from web.lti.tool_keys import ToolKeys, load_tool_keys
from web.lti.validate import Policy

__all__ = [
    "LTI_TOOL",
    "LaunchData",
    "LtiError",
    "LtiTool",
    "OnLaunch",
    "PlatformRegistration",
    "Registry",
    "frame_ancestors_middleware",
    "map_roles",
    "parse_platforms",
    "role_of",
    "setup_lti",
]


def setup_lti(
    app: web.Application,
    settings: Settings,
    on_launch: OnLaunch,
    *,
    registrations: Iterable[PlatformRegistration] = (),
    tool_keys: ToolKeys | None = None,
    nonces: NonceStore | None = None,
    key_cache: PlatformKeyCache | None = None,
) -> LtiTool:
    """Mount the LTI routes on ``app`` and return the shared :class:`LtiTool`.

    Trusted platforms come from ``settings.lti_platforms`` plus ``registrations`` (and the
    demo platform adds its own through :func:`web.demo_platform.setup_demo_platform`). Nonces
    go to Redis when ``settings.redis_url`` is set. ``on_launch`` runs only for a launch that
    passed every check; its response is returned to the browser.
    """
    registry = Registry(parse_platforms(settings.lti_platforms))
    for registration in registrations:
        registry.add(registration)
    tool = LtiTool(
        settings=settings,
        registry=registry,
        keys=key_cache or PlatformKeyCache(),
        nonces=nonces or make_nonce_store(settings),
        codec=StateCodec(settings.secret_key),
        tool_keys=tool_keys or load_tool_keys(),
        on_launch=on_launch,
        policy=Policy(),
    )
    app[LTI_TOOL] = tool

    async def close(_: web.Application) -> None:
        await tool.keys.close()
        await tool.nonces.close()

    app.on_cleanup.append(close)
    app.router.add_get(LOGIN_PATH, login)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(LAUNCH_PATH, launch)
    app.router.add_get(JWKS_PATH, jwks)
    app.router.add_get(CONFIG_PATH, config)
    return tool
