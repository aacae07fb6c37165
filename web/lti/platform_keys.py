"""Platform public keys (JWKS), fetched over HTTP and cached per issuer.

Guarantees:

* **What is cached, for how long**: each registration's RSA signing keys (by ``kid``), for the
  ``Cache-Control: max-age`` the platform sent (capped at :data:`MAX_TTL_S`, one day),
  :data:`DEFAULT_TTL_S` (5 minutes) when it sent none, and not at all with ``no-store`` or
  ``no-cache``. Keys are cached per ``(issuer, jwks_url)``.
* **Unknown kid**: the set is re-fetched once, then the kid is refused. Forced re-fetches of
  one issuer are at most one per ``refetch_min_interval_s`` (default 5 s) so a flood of tokens
  with made-up kids cannot turn the tool into a request amplifier.
* **Fetch failure**: the last good keys are kept (even past their expiry) and used; the next
  attempt waits :data:`RETRY_AFTER_FAILURE_S`. With no keys ever fetched, the launch is
  refused with ``keys_unavailable``.
* Concurrent launches for one issuer share one fetch (a per-issuer lock).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
from joserfc.jwk import RSAKey

from web.lti.errors import KeysUnavailable, UnknownKid
from web.lti.registry import PlatformRegistration

log = logging.getLogger("web.lti")

DEFAULT_TTL_S = 300.0
MAX_TTL_S = 86_400.0
RETRY_AFTER_FAILURE_S = 30.0
MAX_JWKS_BYTES = 256 * 1024
FETCH_TIMEOUT_S = 5.0
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def ttl_from_cache_control(header: str | None, default: float = DEFAULT_TTL_S) -> float:
    """Seconds a response may be reused: ``max-age`` (capped), 0 for no-store/no-cache."""
    if not header:
        return default
    lowered = header.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(header)
    if match is None:
        return default
    return min(float(match.group(1)), MAX_TTL_S)


def parse_jwks(body: bytes) -> dict[str, RSAKey]:
    """The RSA signature keys of a JWKS document, by kid; other keys are skipped."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, RSAKey] = {}
    for raw in data["keys"]:
        if not isinstance(raw, dict) or raw.get("kty") != "RSA" or not raw.get("kid"):
            continue
        if raw.get("use", "sig") != "sig" or raw.get("alg", "RS256") != "RS256":
            continue
        if "d" in raw:  # a platform must never publish a private key; do not keep one
            raw = {k: v for k, v in raw.items() if k in {"kty", "kid", "n", "e", "use", "alg"}}
        try:
            keys[str(raw["kid"])] = RSAKey.import_key(raw)
        except Exception:
            log.warning("skipping an unreadable JWK %r", raw.get("kid"))
    return keys


@dataclass
class _Entry:
    keys: dict[str, RSAKey] = field(default_factory=dict)
    fresh_until: float = 0.0
    fetched_at: float = float("-inf")
    next_attempt: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class PlatformKeyCache:
    """Fetches and caches each platform's JWKS; see the module docstring for guarantees."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        refetch_min_interval_s: float = 5.0,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self.refetch_min_interval_s = refetch_min_interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._entries: dict[tuple[str, str], _Entry] = {}

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _entry(self, registration: PlatformRegistration) -> _Entry:
        key = (registration.issuer, registration.jwks_url)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        return entry

    async def get_key(self, registration: PlatformRegistration, kid: str) -> RSAKey:
        """The platform's key ``kid``; raises :class:`UnknownKid` or :class:`KeysUnavailable`."""
        entry = self._entry(registration)
        async with entry.lock:
            now = self._clock()
            if now >= entry.fresh_until and now >= entry.next_attempt:
                await self._refresh(registration, entry)
            if kid not in entry.keys and self._clock() - entry.fetched_at >= (
                self.refetch_min_interval_s
            ) and self._clock() >= entry.next_attempt:
                log.info("unknown kid %r for %s: re-fetching its key set", kid, registration.issuer)
                await self._refresh(registration, entry)
            if not entry.keys and entry.fetched_at == float("-inf"):
                raise KeysUnavailable("platform key set unavailable", issuer=registration.issuer)
            key = entry.keys.get(kid)
        if key is None:
            raise UnknownKid("kid not in the platform's key set")
        return key

    async def _refresh(self, registration: PlatformRegistration, entry: _Entry) -> None:
        try:
            keys, ttl = await self._fetch(registration.jwks_url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            entry.next_attempt = self._clock() + RETRY_AFTER_FAILURE_S
            log.warning(
                "fetching the key set of %s failed (%s); keeping %d cached key(s)",
                registration.issuer, type(exc).__name__, len(entry.keys),
            )
            return
        now = self._clock()
        entry.keys = keys
        entry.fetched_at = now
        entry.fresh_until = now + ttl
        entry.next_attempt = 0.0

    async def _fetch(self, url: str) -> tuple[dict[str, RSAKey], float]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(
            url, timeout=self._timeout, headers={"Accept": "application/json"}
        ) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("key set too large")
            return parse_jwks(body), ttl_from_cache_control(
                response.headers.get("Cache-Control")
            )
