"""HTTP errors as JSON problem bodies (RFC 9457): typed, logged, never a stack trace.

A refusal is its error's status and code; PostgreSQL or Redis unavailable is 503
``unavailable`` with ``Retry-After`` (logged as one line per outage kind every 10 s);
anything else unexpected is 500 ``internal``, logged with its traceback. Either way nothing
was changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.errors import BrokerError
from broker.outages import OutageLog, kind_of
from routing.errors import RoutingError

log = logging.getLogger(__name__)
outages = OutageLog(log)

PROBLEM = "application/problem+json"
# A dependency outage (PostgreSQL restarting, Redis failing over) lasts seconds: what a
# refused call's Retry-After says, and what a load balancer or a client waits before again.
UNAVAILABLE_RETRY_AFTER_S = 5


def problem(status: int, code: str, message: str, **extra: object) -> web.Response:
    body = {"type": f"about:blank#{code}", "title": message, "status": status, "code": code}
    body.update(extra)
    return web.json_response(body, status=status, content_type=PROBLEM)


def answered_as_outage(request: web.Request, exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL or Redis unavailable (:func:`broker.outages.kind_of`),
    logged as one line per outage kind every 10 s when it is. A call it failed changed
    nothing, and the same call works once the service is back: answer 503 and
    :func:`retry_later`."""
    kind = kind_of(exc)
    if kind is None:
        return False
    outages.report(kind, f"{request.method} {request.path}", exc)
    return True


def retry_later(response: web.Response) -> web.Response:
    """``response`` with ``Retry-After`` for an outage's 503."""
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return response


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as exc:
        log.info("%s %s refused: %s", request.method, request.path, exc.code)
        return problem(exc.http_status, exc.code, exc.message, **exc.detail)
    except RoutingError as exc:
        log.info("%s %s refused: %s", request.method, request.path, exc.code)
        return problem(400, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        return problem(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception as exc:
        if answered_as_outage(request, exc):
            return retry_later(problem(
                503, "unavailable",
                "the service is briefly unavailable; nothing was changed; try again",
            ))
        outages.failure(f"{request.method} {request.path}", exc)  # in full, with its traceback
        return problem(500, "internal", "something went wrong")
