"""``GET /metrics``: the broker's figures in Prometheus's text exposition format.

Each scrape first awaits the database figures (queues, tutors, open sessions: the whole
district's, whichever process answers), then renders them with this process's counters
(:mod:`broker.metrics`); the rendering does no I/O. A scrape whose database read fails is
answered 503 while PostgreSQL is unreachable, else 500 (a problem body), so Prometheus
records it as a failed scrape (``up == 0``).

Who may read it: the figures name queues and count people, and carry no personal data
(no pseudonym, name, school or message). By default anyone who reaches the bind address
may read them (put the port behind the platform's private network, or not route
``/metrics`` at the load balancer). With ``HH_METRICS_TOKEN`` set, a scrape must send
``Authorization: Bearer <token>``; any other is answered 401 with no figure. The token is
read from the environment once, when the app is made (:func:`setup_metrics`), the only
place it is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiohttp import web

from broker.metrics import CONTENT_TYPE, LiveFigures, render
from broker.tokens import same_secret
from web.keys import BROKER
from web.problems import problem

PATH = "/metrics"
TOKEN_ENV = "HH_METRICS_TOKEN"


def metrics_token(env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token scrapes must send, or None (open): ``HH_METRICS_TOKEN``."""
    env = os.environ if env is None else env
    return env.get(TOKEN_ENV) or None


def _allowed(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and same_secret(given.strip(), token)


def setup_metrics(app: web.Application, token: str | None = None) -> None:
    """Mount ``GET /metrics``; ``token`` (default: :func:`metrics_token`) guards it."""
    token = (token if token is not None else metrics_token()) or None

    async def metrics(request: web.Request) -> web.Response:
        if not _allowed(request, token):
            refused = problem(401, "unauthenticated", "send Authorization: Bearer <token>")
            refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        broker = request.app[BROKER]
        live = LiveFigures(
            await broker.live_figures(), await broker.store.open_session_counts()
        )
        return web.Response(body=render(live), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get(PATH, metrics)
