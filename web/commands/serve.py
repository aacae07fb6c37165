"""``homework-help serve``: run the HTTP + socket.io server."""

from __future__ import annotations

import argparse
import dataclasses
import os

from broker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("serve", help="run the server")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=run)


def demo_banner(settings: Settings) -> str:
    from web.app import demo_base_url
    from web.commands.demo_seed import DEMO_ACCOUNTS, DEMO_PASSWORD

    base = demo_base_url(settings)
    tutors = ", ".join(str(a["username"]) for a in DEMO_ACCOUNTS if a["role"] == "tutor")
    staff = ", ".join(str(a["username"]) for a in DEMO_ACCOUNTS if a["role"] == "staff")
    return "\n".join(
        [
            "",
            "homework-help demo district is running:",
            f"  demo LMS (students launch the widget): {base}/demo/lms",
            f"  tutor console:   {base}/tutor   (sign in as {tutors})",
            f"  staff dashboard: {base}/staff   (sign in as {staff})",
            f"  demo password:   {DEMO_PASSWORD}",
            "Open the demo LMS and the tutor console in two windows to play a whole session.",
            "",
        ]
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT (Ctrl-C), then stop gracefully: ``web.lifecycle``."""
    import asyncio

    from web.app import init_app
    from web.gc_tuning import gc_pacing_ctx, on_startup_freeze
    from web.keys import GATEWAY
    from web.lifecycle import listen_backlog, serve
    from web.stall_watch import stall_watch_ctx, threshold_from_env

    changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = dataclasses.replace(settings, **changes)
    backlog = listen_backlog()  # a bad HH_LISTEN_BACKLOG stops us before anything starts
    stall_s = threshold_from_env(os.environ)  # so does a bad HH_STALL_LOG_MS
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    if settings.demo:
        print(demo_banner(settings), flush=True)
    app = init_app(settings)
    app.on_startup.append(on_startup_freeze)  # last: after the broker has started
    app.cleanup_ctx.append(gc_pacing_ctx)
    # First in, last out: it also watches the broker's start-up and its last cleanup.
    app.cleanup_ctx.insert(0, stall_watch_ctx(stall_s))
    asyncio.run(serve(app, app[GATEWAY].sio, settings.host, settings.port, backlog=backlog))
    return 0
