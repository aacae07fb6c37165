"""JSON responses of the staff and scheduling APIs: one place for their caching rule.

Every such response is personal or scoped (who may see what depends on the caller), so it
carries ``Cache-Control: no-store``: no browser, proxy or disk cache keeps a copy, and a
shared school computer's back button shows nothing of the last user's data.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from web import jsonlib

NO_STORE = {"Cache-Control": "no-store"}


def no_store_json(data: Any, status: int = 200) -> web.Response:
    """``data`` as JSON (orjson), with ``Cache-Control: no-store``."""
    return web.json_response(data, status=status, headers=NO_STORE, dumps=jsonlib.dumps)
