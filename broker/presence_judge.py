"""How the broker reads presence: who is gone, who is here, when someone was last seen.

Presence (:mod:`broker.presence`) is allowed to be lost or unreachable, and not being able
to read it must never make anyone look gone. Every read and touch of it goes through
:class:`PresenceJudge`, which keeps that promise in one place:

* **Bounded.** Each call waits at most :data:`~broker.constants.REDIS_WAIT_S` (a Redis
  that answers nothing holds no event and no sweep), and an unreachable or silent store
  is one paced log line per outage (:class:`~broker.outages.OutageLog`), never raised.
* **Asked once per outage.** Once a call has failed, events stop asking presence (their
  touches are skipped, their reads answered "cannot tell" at once) until the process's
  heartbeat, which keeps asking, gets an answer: a page's ``session:state`` would
  otherwise wait out the bound once per presence call it makes (three, 3 s, in the fault
  suite's one-process partition), and the calls queued behind it on its connection
  longer. A skipped touch costs nothing: the heartbeat touches every connection.
* **Cautious when it cannot tell.** Nobody is gone, everybody is here, nobody's last
  sighting is known (``None``) while presence cannot be read; and after it failed, the
  judge waits until it has answered for three sweeps (every process has touched its own
  connections since) before judging anyone gone again (:meth:`settled`).
* **Cautious when another process cannot tell.** With presence shared by several
  processes, a process cut off from it alone says so in the database
  (:mod:`broker.presence_blind`, :meth:`vouch`); while one has, every other process
  treats presence as it would its own outage, since that process's people are connected
  but untouched.
* **Handing over when alone in the dark.** A process blind for ``hand_over_after_s``
  while another process sees presence is better left by its clients
  (:meth:`hand_over`; the edge tells them to reconnect elsewhere and turns new ones away,
  web/hand_over.py): their pushes from the other processes reach them late meanwhile.

Times are the caller's clock (the broker's, so tests use a fake clock).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import presence_blind
from broker.constants import HAND_OVER_AFTER_S, REDIS_WAIT_S
from broker.db.closing import finish_within
from broker.outages import OutageLog
from broker.presence import Presence, gone_past

log = logging.getLogger(__name__)

LEAVE_WAIT_S = 1.0  # a stopping process waits this long at most to remove its row
SETTLE_SWEEPS = 3  # presence answering this many sweeps again: every process touched its own


def process_name() -> str:
    """``host:pid:random``: names this process in ``presence_blind`` (unique even for two
    brokers in one process, as in tests)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class PresenceJudge:
    """The broker's bounded, outage-aware reading of ``presence`` (module docstring).

    ``grace_s`` and ``sweep_s`` are the broker's grace period and (a callable for) its
    sweep interval; ``engine`` is the database every process shares, where a process cut
    off from shared presence declares itself (unused with presence in memory)."""

    def __init__(
        self,
        presence: Presence,
        engine: AsyncEngine,
        grace_s: float,
        sweep_s: Callable[[], float],
        outages: OutageLog,
        hand_over_after_s: float = HAND_OVER_AFTER_S,
    ) -> None:
        self.presence = presence
        self.engine = engine
        self.grace_s = grace_s
        self.sweep_s = sweep_s
        self.outages = outages
        self.process = process_name()
        self._since: float | None = None  # presence has answered since then
        self.others_blind = False  # as of this process's latest sweep
        self._vouched_at = float("-inf")  # the time of the sweep others_blind is from
        self.hand_over_after_s = hand_over_after_s
        self.blind_since: float | None = None  # this process's sweeps have not touched since
        self.others_see = False  # another process sees presence, as of the latest sweep

    # -- this process's own view ----------------------------------------------------------
    def _failed(self, what: str, exc: BaseException) -> None:
        self._since = None
        self.outages.report("presence", what, exc)

    @property
    def answering(self) -> bool:
        """Whether presence answered the last call made to it (events ask it only then)."""
        return self._since is not None

    async def touch(self, subjects: list[str], now: float, probe: bool = False) -> bool:
        """Heartbeat ``subjects`` at ``now``; ``False`` when presence cannot be reached or
        does not answer in time (it is not needed to serve anyone). Unless ``probe`` (the
        process's heartbeat, and its start), nothing is asked while presence is not
        :attr:`answering`."""
        if not probe and not self.answering:
            return False
        try:
            async with asyncio.timeout(REDIS_WAIT_S):  # a Redis that answers nothing
                await self.presence.touch(subjects, now)
        except Exception as exc:
            self._failed("a heartbeat", exc)
            return False
        if self._since is None:
            self._since = now
        return True

    def settled(self, now: float) -> bool:
        """Whether presence has answered long enough for every process to have touched its
        own connections since it last failed here (three sweeps): before that, someone who
        was not touched during an outage would look gone."""
        since = self._since
        return since is not None and now - since >= SETTLE_SWEEPS * self.sweep_s()

    def can_judge(self, now: float) -> bool:
        """Whether anyone may be judged gone now: presence settled here, and no other
        process cut off from it (as of the last :meth:`vouch`)."""
        return self.settled(now) and not self.others_blind

    # -- the other processes (shared presence only) ---------------------------------------
    async def vouch(self, now: float, touched: bool) -> None:
        """Once per sweep, after its heartbeat (``touched``: whether it reached presence):
        declare this process blind or seeing, and learn whether another process is blind
        and whether one sees (:mod:`broker.presence_blind`; this process's own blindness
        and the latter are what :meth:`hand_over` goes by). Does nothing with presence in
        memory (one process). A database error propagates (the sweep reports it).

        The newest sweep's answer stands: the process's loop runs its sweeps one after
        another, but a sweep run beside it (tests, ``replay``) may overtake one waiting
        on the database, whose answer, about an earlier time, is then dropped."""
        if not self.presence.shared:
            return
        if not touched:
            await presence_blind.declare(self.engine, self.process, now)
        else:  # every sweep: the others learn that this one sees (see hand_over)
            await presence_blind.withdraw(self.engine, self.process, now)
        sweep_s = self.sweep_s()
        others = await presence_blind.peers(
            self.engine, self.process, now, presence_blind.fresh_within_s(sweep_s),
            presence_blind.seeing_within_s(sweep_s),
        )
        if now < self._vouched_at:
            return
        self._vouched_at = now
        if touched:
            self.blind_since = None
        elif self.blind_since is None:
            self.blind_since = now
        self.others_see = others.seeing
        blind = others.blind
        if (blind is not None) != self.others_blind:  # once per change, for the operators
            if blind is not None:
                log.warning("process %s cannot reach presence: judging nobody gone until it "
                            "can (broker/presence_blind.py)", blind)
            else:
                log.info("every process reaches presence again: judging absences again")
        self.others_blind = blind is not None

    async def leave(self) -> None:
        """The process stops (:func:`presence_blind.leave`); bounded, and a database that
        does not answer is logged, not raised: stopping must not wait on it."""
        if not self.presence.shared:
            return
        try:
            await finish_within(presence_blind.leave(self.engine, self.process), LEAVE_WAIT_S)
        except Exception as exc:
            self.outages.report("database", "removing this process's presence row", exc)

    def hand_over(self, now: float) -> bool:
        """Whether this process's clients are better served elsewhere: its sweeps have not
        reached presence for ``hand_over_after_s`` while another process's do (as of the
        latest sweep). Never with presence in memory, nor when every process is blind."""
        since = self.blind_since
        return since is not None and now - since >= self.hand_over_after_s and self.others_see

    # -- reads ---------------------------------------------------------------------------
    async def last_seen(self, subjects: list[str], now: float) -> dict[str, float] | None:
        """When presence last saw each subject (its epoch for one never seen); ``None``
        when that cannot be told: presence unreachable, or another process blind."""
        if self.others_blind or not self.answering:
            return None
        if not subjects:
            return {}
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                return await self.presence.last_seen(subjects, now)
        except Exception as exc:
            self._failed("a presence read", exc)
            return None

    async def gone(self, subjects: list[str], now: float, judge: bool = True) -> set[str]:
        """Who has been gone past the grace period; nobody when ``judge`` is false (the
        sweep's :meth:`can_judge`) or presence cannot tell."""
        if not judge or not subjects:
            return set()
        seen = await self.last_seen(subjects, now)
        return set() if seen is None else gone_past(seen, subjects, now, self.grace_s)

    async def here(self, subjects: list[str], now: float, within_s: float) -> set[str]:
        """Who is connected to some process now (touched within ``within_s``); everyone
        when presence cannot tell."""
        return (await self.gone_and_here(subjects, now, within_s, judge=False))[1]

    async def gone_and_here(
        self, subjects: list[str], now: float, within_s: float, judge: bool
    ) -> tuple[set[str], set[str]]:
        """:meth:`gone` and :meth:`here` of the same ``subjects`` from one read of presence
        (the staff figures ask both of every tutor)."""
        seen = await self.last_seen(subjects, now)
        if seen is None:
            return set(), set(subjects)
        gone = gone_past(seen, subjects, now, self.grace_s) if judge else set()
        return gone, set(subjects) - gone_past(seen, subjects, now, within_s)

    async def forget(self, subjects: list[str]) -> None:
        """The subjects left on purpose (:meth:`Presence.forget`); when presence cannot be
        reached they stay until the grace period ends them (nothing raised)."""
        if not self.answering:
            return
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                await self.presence.forget(subjects)
        except Exception as exc:
            self._failed("a sign-out", exc)
