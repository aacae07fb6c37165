"""HTTP errors as JSON problem bodies (RFC 9457): typed, logged, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.errors import BrokerError
from broker.outages import OutageLog
from routing.errors import RoutingError

log = logging.getLogger(__name__)
outages = OutageLog(log)

PROBLEM = "application/problem+json"


def problem(status: int, code: str, message: str, **extra: object) -> web.Response:
    body = {"type": f"about:blank#{code}", "title": message, "status": status, "code": code}
    body.update(extra)
    return web.json_response(body, status=status, content_type=PROBLEM)


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
        outages.failure(f"{request.method} {request.path}", exc)
        return problem(500, "internal", "something went wrong")
