"""Tutor and staff sign-in: passwords, throttles, and whether an identity still stands.

Guarantees:

* Failures answer one generic message (:data:`GENERIC_FAILURE`) for an unknown user, a
  wrong password and a disabled account, after one scrypt derivation each
  (:meth:`broker.accounts.Accounts.authenticate`).
* After :data:`~broker.constants.LOGIN_USER_FAILURES` failed attempts for one username, or
  :data:`~broker.constants.LOGIN_IP_FAILURES` from one client address, within
  :data:`~broker.constants.LOGIN_WINDOW_S`, further attempts are refused with
  :class:`~broker.errors.RateLimited` without checking the password. The counts are shared
  by every process when Redis is configured (:mod:`broker.throttle`).
* The counts are protection that must hold, so a sign-in whose counts cannot be read
  (Redis refused, or no answer within :data:`~broker.constants.REDIS_WAIT_S`) is refused
  as an outage (the pages answer 503 ``unavailable``), not let through.
* :meth:`SignIn.still_active` re-checks that an account-made identity's account exists and
  is enabled, so disabling an account ends its access at the next request.
"""

from __future__ import annotations

import asyncio
import logging

from broker.accounts import Accounts
from broker.constants import LOGIN_IP_FAILURES, LOGIN_USER_FAILURES, LOGIN_WINDOW_S, REDIS_WAIT_S
from broker.errors import RateLimited, Unauthenticated
from broker.identity import ACCOUNT_SOURCE, Identity
from broker.throttle import Throttles

log = logging.getLogger(__name__)

GENERIC_FAILURE = "incorrect username or password"
MAX_USERNAME = 200


class SignIn:
    def __init__(self, accounts: Accounts, throttles: Throttles) -> None:
        self.accounts = accounts
        self.by_user = throttles.make("login", LOGIN_USER_FAILURES, LOGIN_WINDOW_S)
        self.by_ip = throttles.make("login", LOGIN_IP_FAILURES, LOGIN_WINDOW_S)

    async def attempt(self, username: str, password: str, client_ip: str) -> Identity:
        """The account's identity; raise :class:`RateLimited` or :class:`Unauthenticated`."""
        username = username[:MAX_USERNAME]
        user_key, ip_key = f"u:{username.strip().lower()}", f"ip:{client_ip}"
        async with asyncio.timeout(REDIS_WAIT_S):  # a Redis that answers nothing: an outage
            wait = max(
                await self.by_user.retry_after(user_key), await self.by_ip.retry_after(ip_key)
            )
        if wait > 0:
            log.warning("sign-in throttled for %s", client_ip)
            raise RateLimited("too many sign-in attempts; try again later", retry_after=int(wait))
        account = await self.accounts.authenticate(username, password)
        if account is None:
            async with asyncio.timeout(REDIS_WAIT_S):
                await self.by_user.record(user_key)
                await self.by_ip.record(ip_key)
            log.info("sign-in failed from %s", client_ip)
            raise Unauthenticated(GENERIC_FAILURE)
        async with asyncio.timeout(REDIS_WAIT_S):
            await self.by_user.clear(user_key)
        log.info("signed in %s %s", account.role, account.id)
        return account.identity()

    async def still_active(self, identity: Identity) -> Identity:
        """``identity`` if it still stands; raise :class:`Unauthenticated` if its account was
        disabled or removed. Identities from a launch stand until their token expires."""
        if identity.source == ACCOUNT_SOURCE and not await self.accounts.is_active(
            identity.subject
        ):
            raise Unauthenticated("please sign in")
        return identity

    async def refreshed(self, identity: Identity) -> Identity:
        """The identity as the account is now (vendor, languages, scope may have changed)."""
        if identity.source != ACCOUNT_SOURCE:
            return identity
        account = await self.accounts.by_id(identity.subject)
        if account is None or account.disabled:
            raise Unauthenticated("please sign in")
        return account.identity()
