"""A serving process cut off from Redis alone hands its clients over to the others.

While one process alone cannot reach Redis (a partition: its host's route, a firewall),
its events are still answered from the database, but the other processes' pushes reach its
people late (docs/architecture.md, "What survives which fault"). Once the broker says so
(:meth:`broker.presence_judge.PresenceJudge.hand_over`: blind for ``HH_HAND_OVER_AFTER_S``
while another process's sweeps reach Redis), this watch, once per episode:

* turns new connections away: ``/healthz`` answers 503 ``{"ok": false, "handing_over":
  true}`` (a load balancer's health check stops sending clients here) and a new
  socket.io connection is refused 503 with ``Retry-After`` (:class:`web.lifecycle.Gate`);
* tells every client of this process ``server:restart {retry_after_ms}``, as a deploy
  does (:func:`web.lifecycle.tell_to_reconnect`: straight to each engine.io socket, the
  delays spread so the clients reach the others at a pace), and the pages come back
  through the load balancer to a process that sees Redis, with nothing lost: what they
  missed is synced from the database on reconnect.

It opens again as soon as the broker no longer says so (its sweeps reach Redis again, or no
other process does any more: then nobody is better served elsewhere). A process that stops
while it reaches Redis removes its row at once; one killed still counts as reaching it
for two sweeps and a bound (~5 s by default, :func:`broker.presence_blind.seeing_within_s`),
and a blind process may hand over meanwhile to nobody: its clients are then refused for
those seconds.
Nothing here holds state that must survive: a restarted process starts open and decides
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from broker.metrics import count_hand_over
from web.keys import BROKER, GATEWAY
from web.lifecycle import GATE, tell_to_reconnect

log = logging.getLogger(__name__)

CHECK_S = 0.5  # how often the broker's word is read (a property, no I/O)


class HandOver:
    """One process's watch (see the module); :meth:`check` once per :data:`CHECK_S`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.handing_over = False
        self.episodes = 0  # times this process handed its clients over

    async def check(self) -> None:
        broker = self.app.get(BROKER)
        if broker is None:
            return
        now_handing = broker.judge.hand_over(broker.clock())
        if now_handing == self.handing_over:
            return
        self.handing_over = now_handing
        gate = self.app.get(GATE)
        if gate is not None:
            gate.handing_over = now_handing
        if now_handing:
            self.episodes += 1
            count_hand_over()
            told = await tell_to_reconnect(self.app[GATEWAY].sio)
            log.warning(
                "this process has not reached Redis for %.0f s while another process does: "
                "told its %d clients to reconnect elsewhere, and turns new ones away "
                "(web/hand_over.py)", broker.judge.hand_over_after_s, told,
            )
        else:
            log.info("no longer handing clients over: accepting connections again")


async def hand_over_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the watch for the app's lifetime (after the broker's context)."""
    watch = HandOver(app)
    app[HAND_OVER] = watch

    async def forever() -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            try:
                await watch.check()
            except Exception:  # a bug: logged, the next check tries again
                log.exception("the hand-over check failed")

    task = asyncio.create_task(forever(), name="hand-over")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


HAND_OVER: web.AppKey[HandOver] = web.AppKey("hand_over", HandOver)
