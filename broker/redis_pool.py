"""One way to open Redis for the broker: a bounded pool that waits for a free connection.

redis-py's default pool raises ``MaxConnectionsError`` the moment a burst (a thousand
accepts at once) exceeds it; a blocking pool queues the burst instead, up to ``timeout``.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
WAIT_TIMEOUT_S = 10.0


def open_redis(url: str, *, decode_responses: bool = False) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=WAIT_TIMEOUT_S,
        decode_responses=decode_responses,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it
