"""gzip for the pages' scripts, styles and the scripts' catalogs (issue 13: the widget's first
load in any locale stays small on a school's network).

A middleware: a ``GET`` of ``/static/**.js|.css|.svg`` or ``/i18n/*.json`` from a browser that
accepts gzip is answered compressed (``Content-Encoding: gzip``, ``Vary: Accept-Encoding``).
Static files are compressed once per file version and kept in memory (they are small and
few); a catalog response is compressed as it is sent. Everything else is left alone (socket.io
frames, HTML, which carries per-request configuration).
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path

from aiohttp import web
from aiohttp.web_fileresponse import CONTENT_TYPES  # FileResponse's own table

from web.render import STATIC_PREFIX

STATIC = Path(__file__).parent / "static"

COMPRESSIBLE = (".js", ".css", ".svg", ".json")
MIN_BYTES = 512  # smaller ones gain nothing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@lru_cache(maxsize=256)
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def static_gzip(relative: str) -> bytes | None:
    """The gzip of a shipped static file (``relative`` to ``web/static``), compressed once
    per file version; ``None`` for a file that is not there, outside, or too small."""
    root = STATIC.resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    if stat.st_size < MIN_BYTES or not path.is_file():
        return None
    return _gzipped(str(path), stat.st_mtime_ns, stat.st_size)


def _wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


@web.middleware
async def compress(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.method != "GET" or not request.path.endswith(COMPRESSIBLE):
        return response
    if not (request.path.startswith("/static/") or request.path.startswith("/i18n/")):
        return response
    if "Content-Encoding" in response.headers:  # already encoded by its handler
        return response
    response.headers.add("Vary", "Accept-Encoding")
    if not _wants_gzip(request) or response.status != 200:
        return response
    if isinstance(response, web.FileResponse):
        body = static_gzip(request.path[len(STATIC_PREFIX) + 1 :])
        if body is None:
            return response
        headers = {
            k: v for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "vary")
        }
        compressed = web.Response(body=body, status=200, headers=headers)
        # the type aiohttp would have sent for the file
        compressed.content_type = (
            CONTENT_TYPES.guess_type(request.path)[0] or "application/octet-stream"
        )
        compressed.headers["Content-Encoding"] = "gzip"
        compressed.headers["Vary"] = "Accept-Encoding"
        return compressed
    if isinstance(response, web.Response) and response.body is not None:
        response.enable_compression(web.ContentCoding.gzip)
    return response
