"""The benchmark's baseline: a bare python-socketio server with one event that echoes.

``python -m bench._baseline_server --port P``: an ``AsyncServer`` on aiohttp, websocket
transport, python-socketio's default JSON, no auth, one event ``echo`` on the default
namespace that returns its argument. Same event loop as the broker (uvloop when installed),
so the figures of ``bench.broker`` compare the broker's work per event with the cheapest
possible socket.io round trip on this machine. Stops on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
from aiohttp import web


def make_app() -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", transports=["websocket"], logger=False, engineio_logger=False
    )

    async def echo(sid: str, data: Any = None) -> Any:
        return data

    sio.on("echo", echo)

    app = web.Application()
    sio.attach(app)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", health)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional, as in the broker's serve command
        pass
    web.run_app(make_app(), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
