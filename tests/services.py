"""Where the tests find PostgreSQL and Redis, and how they skip (or fail on CI) without them.

``HH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns every skip for a missing service into a
failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

PG_ADMIN_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
REQUIRE = os.environ.get("HH_REQUIRE_SERVICES") == "1"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        address = (parts.hostname or "127.0.0.1", parts.port or default_port)
        with socket.create_connection(address, 1):
            return True
    except OSError:
        return False


def need(url: str, default_port: int, what: str) -> None:
    if reachable(url, default_port):
        return
    reason = f"{what} not reachable at {url}"
    if REQUIRE:
        pytest.fail(f"HH_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
