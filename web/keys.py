"""The application's typed keys, in a leaf module: every part of ``web/`` finds the shared
objects here, and nothing imports ``web.app`` back.

The objects are made in ``web.app``'s start-up contexts (``cleanup_ctx``), so handlers read
them at request time; ``SETTINGS`` is set when the app is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from broker.accounts import Accounts
from broker.db.engine import Engine
from broker.identity import Identity
from broker.service import Broker
from broker.settings import Settings
from broker.sign_in import SignIn

if TYPE_CHECKING:
    from web.sio import SocketGateway

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
BROKER: web.AppKey[Broker] = web.AppKey("broker", Broker)
GATEWAY: web.AppKey[SocketGateway] = web.AppKey("gateway")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts", Accounts)
SIGN_IN: web.AppKey[SignIn] = web.AppKey("sign_in", SignIn)

# The caller of a guarded handler (``web.auth.require``).
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity", Identity)
