"""The platform key cache: max-age honoured, one re-fetch on an unknown kid, last good keys
kept through a fetch failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from web.demo_platform import DemoPlatform, registration_for_demo
from web.lti.errors import KeysUnavailable, UnknownKid
from web.lti.platform_keys import (
    DEFAULT_TTL_S,
    RETRY_AFTER_FAILURE_S,
    PlatformKeyCache,
    parse_jwks,
    ttl_from_cache_control,
)
from web.lti.registry import PlatformRegistration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served(
    aiohttp_server: Callable[..., Awaitable[Any]],
) -> tuple[DemoPlatform, PlatformRegistration]:
    platform = DemoPlatform("http://placeholder", "http://placeholder", users=[])
    app = web.Application()
    app.router.add_get("/platform/jwks.json", platform.handle_jwks)
    server = await aiohttp_server(app)
    return platform, registration_for_demo(str(server.make_url("")))


@pytest.fixture
async def cache() -> Any:
    clock = Clock()
    keys = PlatformKeyCache(clock=clock, refetch_min_interval_s=5.0)
    yield keys, clock
    await keys.close()


def test_ttl_from_cache_control() -> None:
    assert ttl_from_cache_control("public, max-age=120") == 120
    assert ttl_from_cache_control('max-age="60"') == 60
    assert ttl_from_cache_control(None) == DEFAULT_TTL_S
    assert ttl_from_cache_control("public") == DEFAULT_TTL_S
    assert ttl_from_cache_control("no-store") == 0
    assert ttl_from_cache_control("no-cache, max-age=600") == 0
    assert ttl_from_cache_control("max-age=99999999") == 86_400


def test_parse_jwks_keeps_only_rsa_signature_keys() -> None:
    platform = DemoPlatform("http://x", "http://x", users=[])
    good = platform.key.as_dict(private=False)
    body = {
        "keys": [
            good,
            {**good, "kid": "enc", "use": "enc"},
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {**good, "kid": None},
        ]
    }
    import orjson

    assert list(parse_jwks(orjson.dumps(body))) == [platform.key.kid]


async def test_max_age_is_honoured(served: Any, cache: Any) -> None:
    platform, registration = served
    keys, clock = cache
    platform.jwks_cache_control = "max-age=120"
    await keys.get_key(registration, platform.key.kid)
    clock.now += 119
    await keys.get_key(registration, platform.key.kid)
    assert platform.jwks_hits == 1
    clock.now += 2
    await keys.get_key(registration, platform.key.kid)
    assert platform.jwks_hits == 2


async def test_no_store_refetches_every_time(served: Any, cache: Any) -> None:
    platform, registration = served
    keys, _ = cache
    platform.jwks_cache_control = "no-store"
    await keys.get_key(registration, platform.key.kid)
    await keys.get_key(registration, platform.key.kid)
    assert platform.jwks_hits == 2


async def test_unknown_kid_refetches_once_then_refuses_and_is_rate_limited(
    served: Any, cache: Any
) -> None:
    platform, registration = served
    keys, clock = cache
    await keys.get_key(registration, platform.key.kid)
    clock.now += 10
    with pytest.raises(UnknownKid):
        await keys.get_key(registration, "made-up")
    assert platform.jwks_hits == 2
    with pytest.raises(UnknownKid):  # within refetch_min_interval_s: no new fetch
        await keys.get_key(registration, "made-up-too")
    assert platform.jwks_hits == 2
    clock.now += 10
    new = platform.rotate()
    assert await keys.get_key(registration, new.kid) is not None
    assert platform.jwks_hits == 3


async def test_last_good_keys_survive_a_fetch_failure(served: Any, cache: Any) -> None:
    platform, registration = served
    keys, clock = cache
    platform.jwks_cache_control = "max-age=60"
    kid = platform.key.kid
    await keys.get_key(registration, kid)
    platform.jwks_status = 503
    clock.now += 61
    assert await keys.get_key(registration, kid) is not None  # stale but still trusted
    assert platform.jwks_hits == 2
    await keys.get_key(registration, kid)  # backing off: no new attempt yet
    assert platform.jwks_hits == 2
    clock.now += RETRY_AFTER_FAILURE_S
    platform.jwks_status = 200
    await keys.get_key(registration, kid)
    assert platform.jwks_hits == 3


async def test_no_keys_ever_fetched_is_keys_unavailable(served: Any, cache: Any) -> None:
    platform, registration = served
    keys, _ = cache
    platform.jwks_status = 500
    with pytest.raises(KeysUnavailable):
        await keys.get_key(registration, platform.key.kid)


async def test_unreachable_jwks_url_is_keys_unavailable(cache: Any) -> None:
    keys, _ = cache
    registration = registration_for_demo("http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(KeysUnavailable):
        await keys.get_key(registration, "any")
