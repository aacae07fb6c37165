"""The aiohttp application factory (after aiohttp-demos' ``init_app`` with ``cleanup_ctx``)."""

from __future__ import annotations

import logging

from aiohttp import web

from broker.settings import Settings

log = logging.getLogger(__name__)

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def init_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings.from_env()
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.router.add_get("/healthz", health)
    return app
