"""Every Redis key and channel name the product uses, in one place (after arq's
``constants.py``).

Every name starts with the district's prefix (``HH_REDIS_PREFIX``, default ``hh``), so
several districts, or several test runs, can share one Redis. Nothing under a prefix is
the only copy of a fact that must survive: see ``docs/architecture.md`` for what each
structure is derived from and what happens when Redis loses it.

=====================================  ============  ==========================================
name                                   type          what
=====================================  ============  ==========================================
``<p>:socketio``                       channel       socket.io's message manager (fan-out)
``<p>:login:<sha256>``                 sorted set    failed sign-ins per username or address
``<p>:rate:<name>:<sha256>``           sorted set    other sliding-window limits
``<p>:lti:nonce:<sha256>``             string        a used LTI nonce (``SET NX EX``)
``<p>:presence:seen``                  sorted set    subject -> last heartbeat (epoch seconds)
``<p>:presence:epoch``                 string        when presence was (re)created
``<p>:lease:<job>``                    string        a background job's lease: its owner (``PX``)
``<p>:board:<session id>``             list          an open session's whiteboard log (``EXPIRE``)
=====================================  ============  ==========================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def digest(value: str) -> str:
    """A fixed-length, non-reversible key part for user-supplied text (usernames,
    addresses, nonces), so keys neither leak it nor grow with it."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The names under one prefix."""

    prefix: str = "hh"

    @property
    def socketio_channel(self) -> str:
        return f"{self.prefix}:socketio"

    def throttle(self, name: str, key: str) -> str:
        """A sliding-window counter; sign-in keeps its historical ``login`` names."""
        if name == "login":
            return f"{self.prefix}:login:{digest(key)}"
        return f"{self.prefix}:rate:{name}:{digest(key)}"

    def lti_nonce(self, nonce: str) -> str:
        return f"{self.prefix}:lti:nonce:{hashlib.sha256(nonce.encode()).hexdigest()}"

    @property
    def presence_seen(self) -> str:
        return f"{self.prefix}:presence:seen"

    @property
    def presence_epoch(self) -> str:
        return f"{self.prefix}:presence:epoch"

    def lease(self, name: str) -> str:
        """A background job's lease (``broker/leases.py``); losing it lets the job run
        again elsewhere, which jobs tolerate (they are idempotent)."""
        return f"{self.prefix}:lease:{name}"

    def board(self, session_id: str) -> str:
        """An open session's whiteboard log (:mod:`broker.whiteboard`): session content
        kept for the session, dropped at its end; losing it clears the board."""
        return f"{self.prefix}:board:{session_id}"
