"""The aiohttp application factory (after aiohttp-demos' ``init_app`` with ``cleanup_ctx``).

Start-up order: database engine, school directory and catalog, queue and live state,
broker (which rebuilds lost queue state from the database), then socket.io handlers are
bound. Shutdown runs the same contexts in reverse.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from broker.catalog_source import load_catalog
from broker.db.closing import dispose_within
from broker.db.engine import create_engine, session_factory
from broker.directory import load_school_directory_from
from broker.lifecycle_store import LifecycleStore
from broker.presence import make_presence
from broker.scheduler.service import Scheduler
from broker.service import Broker
from broker.settings import Settings
from broker.throttle import Throttles
from web.auth import setup_auth, staff_caller
from web.capacity_advice_api import setup_capacity_advice_api
from web.capacity_api import setup_capacity_api
from web.catalog_api import setup_catalog_api
from web.compression import compress
from web.hand_over import hand_over_ctx
from web.keys import BROKER, ENGINE, GATEWAY, SETTINGS
from web.launch import on_launch
from web.lti import frame_ancestors_middleware, setup_lti
from web.media_api import setup_media_api
from web.metrics_route import setup_metrics
from web.negotiation import remember_language
from web.pages import setup_pages, static_guard
from web.problems import problem_middleware
from web.safety_api import setup_safety_api
from web.scheduler_api import setup_scheduler_api
from web.scheduling_pages import setup_scheduling_pages
from web.sio import SioNotifier, SocketGateway, create_server, engineio_frame_guard
from web.staff_api import setup_staff_api
from web.stats_api import setup_stats_api

log = logging.getLogger(__name__)

def app_now(app: web.Application) -> datetime:
    """The app's one clock: the broker's (tests give the broker a fake one, so the
    scheduler's "now" moves with it), read at each call."""
    return datetime.fromtimestamp(app[BROKER].clock(), UTC)


async def health(request: web.Request) -> web.Response:
    broker = request.app.get(BROKER)
    return web.json_response({"ok": broker is not None})


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url)
    catalog = load_catalog(settings)
    directory = await load_school_directory_from(session_factory(engine))
    gateway = app[GATEWAY]
    broker = Broker(
        settings,
        catalog,
        directory,
        LifecycleStore(engine, keep_text=settings.message_retention_days > 0),
        SioNotifier(gateway.sio),
        presence=make_presence(settings.redis_url, settings.redis_prefix),
        throttles=Throttles(settings.redis_url, settings.redis_prefix),
    )
    await broker.start()
    app[ENGINE] = engine
    app[BROKER] = broker
    gateway.attach(broker)
    log.info(
        "broker ready: %d schools, %s, %s",
        len(directory),
        "redis fan-out and presence" if settings.redis_url else "one process",
        settings.database_url.split("://", 1)[0],
    )
    yield
    await gateway.detach()
    await broker.stop()
    await gateway.close_fanout()
    await dispose_within(engine)  # a database that does not answer must not hold the exit


def demo_base_url(settings: Settings) -> str:
    """Where the server reaches itself (the demo platform's JWKS is fetched over HTTP)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def init_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings.from_env()
    app = web.Application(
        client_max_size=64 * 1024,
        middlewares=[
            frame_ancestors_middleware(settings), problem_middleware, engineio_frame_guard(),
            static_guard, remember_language, compress,
        ],
    )
    app[SETTINGS] = settings
    sio = create_server(settings)
    sio.attach(app)
    app[GATEWAY] = SocketGateway(sio, settings)
    app.router.add_get("/healthz", health)
    setup_metrics(app)  # GET /metrics; HH_METRICS_TOKEN guards it when set
    app.cleanup_ctx.append(broker_ctx)  # first: the routes below need the broker's engine
    app.cleanup_ctx.append(hand_over_ctx)  # a process cut off from Redis alone moves clients
    setup_lti(app, settings, on_launch)
    setup_auth(app, settings)  # after broker_ctx: its start-up needs the broker's engine
    setup_staff_api(app)
    setup_safety_api(app)
    setup_media_api(app)  # chat pictures (docs/protocol.md, "Images")
    setup_stats_api(app, lambda: app[ENGINE], staff_caller)
    setup_catalog_api(app)
    setup_capacity_api(app, lambda: app[ENGINE], lambda: app[BROKER].catalog, staff_caller,
                       lambda: app_now(app))  # shift plans and coverage (issue 15)
    setup_capacity_advice_api(app, lambda: app[ENGINE], lambda: app[BROKER].catalog,
                              staff_caller, lambda: app_now(app))  # advice, what-if
    setup_scheduler_api(app, lambda: Scheduler(app[ENGINE], settings.secret_key,
                                               clock=lambda: app_now(app)))
    setup_scheduling_pages(app)
    setup_pages(app)
    if settings.demo:
        from web.demo_platform import setup_demo_platform
        from web.demo_tokens import setup_demo_tokens

        setup_demo_tokens(app)
        setup_demo_platform(app, settings, demo_base_url(settings))
    return app
