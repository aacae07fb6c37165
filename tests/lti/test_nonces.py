"""Nonces are single use, in memory and in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from broker.settings import Settings
from web.lti.nonces import MemoryNonceStore, RedisNonceStore, make_nonce_store


async def test_memory_nonce_is_single_use_until_it_expires() -> None:
    now = [100.0]
    store = MemoryNonceStore(clock=lambda: now[0])
    assert await store.use("n-1", 60) is True
    assert await store.use("n-1", 60) is False
    assert await store.use("n-2", 60) is True
    now[0] += 61
    assert await store.use("n-1", 60) is True  # the token carrying it has expired anyway


async def test_memory_store_stays_bounded() -> None:
    store = MemoryNonceStore(max_entries=10)
    for i in range(50):
        assert await store.use(f"n-{i}", 600) is True
    assert len(store) <= 10


async def test_redis_nonce_is_single_use(redis_url: str, redis_prefix: str) -> None:
    store = RedisNonceStore(redis_url, redis_prefix)
    try:
        assert await store.use("n-1", 720) is True
        assert await store.use("n-1", 720) is False
        other_process = RedisNonceStore(redis_url, redis_prefix)
        try:
            assert await other_process.use("n-1", 720) is False
            assert await other_process.use("n-2", 720) is True
        finally:
            await other_process.close()
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{redis_prefix}:lti:nonce:*")]
            assert len(keys) == 2
            assert b"n-1" not in keys[0]  # stored hashed
            assert 0 < await client.ttl(keys[0]) <= 720
        finally:
            await client.aclose()
    finally:
        await store.close()


async def test_settings_choose_the_store(redis_url: str, redis_prefix: str) -> None:
    assert isinstance(make_nonce_store(Settings()), MemoryNonceStore)
    store = make_nonce_store(Settings(redis_url=redis_url, redis_prefix=redis_prefix))
    assert isinstance(store, RedisNonceStore)
    await store.close()


async def test_launch_replay_refused_with_redis_store(
    make_env, redis_url: str, redis_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    store = RedisNonceStore(redis_url, redis_prefix)
    env = await make_env(nonces=store)
    login = await env.login()
    token = env.platform.sign_launch(env.claims(login))
    assert (await env.launch(token, login.state)).status == 200
    codec = env.tool.codec
    response = await env.client.post(
        "/lti/launch", data={"id_token": token, "state": login.state},
        cookies={codec.cookie_name(login.state): codec.cookie_value(login.state)},
    )
    assert response.status == 401
    assert "nonce_replayed" in await response.text()
    assert len(env.launches) == 1
