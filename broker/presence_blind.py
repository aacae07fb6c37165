"""Processes that cannot vouch for their own connections: a partition of one process from
the shared presence store, told to the others through the database.

Presence (:mod:`broker.presence`) is a heartbeat every process gives its own connections;
another process judges someone gone once nobody has touched them for the grace period.
When Redis is unreachable for *every* process, nobody is judged (each sees its own
heartbeat fail). But when one process alone loses its route to Redis (a partition: its
host's network, a firewall, a proxy), the others still read presence and see that
process's people age: past the grace period they would end those people's sessions and
drop their places while they are connected and chatting (found by the fault suite,
``test_one_process_cut_off_from_redis``). The database is the one store every process
still shares, so the blind process says so there:

* **Declared while blind.** Each sweep whose heartbeat fails upserts the process's row
  (``presence_blind``, one statement) with the sweep's time; the first keeps ``since``.
  So a process is declared within a sweep interval plus
  :data:`~broker.constants.REDIS_WAIT_S` of losing presence (its first heartbeat after
  the loss, waiting out the bound), and its people were touched at most a sweep interval
  before the loss: the grace period must exceed two sweeps and the bound for no one to
  be judged in between. It does by far (120 s against 5 s by default; the sweep interval
  is a quarter of the grace period, at most 2 s); the fault suite's partition runs with a
  3 s grace, against the 2.5 s it needs.
* **Withdrawn after a touch.** A sweep whose heartbeat succeeds marks the row not blind
  (every sweep, so the others know the process sees presence: see below), after that
  heartbeat touched every connection of the process, so no other process can judge its
  people by a touch older than the row's withdrawal.
* **Heeded by the others.** A process judges nobody gone (nor closes a tutor's time on
  duty, nor announces a departure, nor counts a tutor as away) while another process's
  row is fresh: seen within :func:`fresh_within_s` of a sweep interval. A row goes stale
  by itself when its process dies or is cut off from the database too, and then the
  others judge by presence again (a dead process's people are gone indeed; a process cut
  off from both stores cannot serve its people anyway).
* **Old rows are pruned** by every sweep that sees (a row a day old is a process that
  died); a process that stops while it sees deletes its own (:func:`leave`).
* **Handed over.** A process blind for a while, while another process's row says it
  sees and was written within :func:`seeing_within_s` (two sweeps, shorter than a blind
  row's freshness: a process killed outright stops counting sooner), hands its clients
  over to the processes that see (web/hand_over.py): its people's pushes from the others
  come late while it is cut off. Only then: when every process is blind (Redis down for
  all) every row says so within a sweep and the bound, and nobody moves.

Times are the processes' clocks, as for presence (docs/operations.md: keep them
synchronised). The embedded stack has one process and presence in its memory: it
neither declares nor reads anything here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.constants import REDIS_WAIT_S
from broker.db.presence_blind_models import presence_blind

UTC = dt.UTC
PRUNE_AFTER_S = 24 * 3600.0
SWEEPS_FRESH = 3  # a blind process re-declares every sweep; missing three is stale
SWEEPS_SEEING = 2  # a process that sees writes its row every sweep; missing two: not a peer

b = presence_blind


def _upsert(dialect: Any, blind: bool) -> Any:
    """This process's row, blind or not, as of ``at``; ``since`` moves only on a change."""
    stmt = dialect.insert(b).values(
        process=sa.bindparam("process"), since=sa.bindparam("at"),
        seen_at=sa.bindparam("at"), blind=blind,
    )
    return stmt.on_conflict_do_update(
        index_elements=[b.c.process],
        set_={
            "seen_at": sa.bindparam("at"),
            "blind": blind,
            "since": sa.case((b.c.blind == blind, b.c.since), else_=sa.bindparam("at")),
        },
    )


_UPSERT = {
    (name, blind): _upsert(dialect, blind)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    for blind in (True, False)
}
_PRUNE = b.delete().where(b.c.seen_at < sa.bindparam("old"))
_LEAVE = b.delete().where(b.c.process == sa.bindparam("process"), b.c.blind.is_(False))
_OTHERS = (
    sa.select(b.c.process, b.c.blind, b.c.seen_at)
    .where(b.c.seen_at >= sa.bindparam("fresh"), b.c.process != sa.bindparam("process"))
    .order_by(b.c.process)
)


def _at(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, UTC)


def fresh_within_s(sweep_interval: float) -> float:
    """How recently a row must have been declared to count: three sweeps of its process,
    each of which may wait :data:`~broker.constants.REDIS_WAIT_S` on a Redis that answers
    nothing before it declares."""
    return SWEEPS_FRESH * (sweep_interval + REDIS_WAIT_S)


def seeing_within_s(sweep_interval: float) -> float:
    """How recently a row saying "sees" must have been written for its process to count as
    one that sees, a peer to hand clients over to: two sweeps and one bound (a process that
    sees waits on Redis at most once a sweep, and its heartbeat succeeded). Shorter than
    :func:`fresh_within_s` because the two err in opposite directions: a blind row
    forgotten too soon would let the others judge connected people gone, so it is kept
    long; a seeing row kept too long makes a process killed outright look like a peer that
    sees (~5 s by default against ~9 s), and one forgotten a sweep too soon only delays a
    hand-over by a sweep."""
    return SWEEPS_SEEING * sweep_interval + REDIS_WAIT_S


async def declare(engine: AsyncEngine, process: str, now: float) -> None:
    """``process`` cannot touch its connections as of ``now`` (one statement)."""
    statement: Any = _UPSERT[(engine.dialect.name, True)]
    async with engine.begin() as conn:
        await conn.execute(statement, {"process": process, "at": _at(now)})


async def withdraw(engine: AsyncEngine, process: str, now: float) -> None:
    """``process`` has touched its connections as of ``now`` (call only after that touch):
    its row says it sees; rows a day old are pruned (one transaction)."""
    statement: Any = _UPSERT[(engine.dialect.name, False)]
    async with engine.begin() as conn:
        await conn.execute(statement, {"process": process, "at": _at(now)})
        await conn.execute(_PRUNE, {"old": _at(now - PRUNE_AFTER_S)})


async def leave(engine: AsyncEngine, process: str) -> None:
    """``process`` stops: its row goes if it says it sees, so that no blind process hands
    its clients over to it (it would count as one that sees for two sweeps more). A blind
    row stays until it goes stale: its people were not touched while it was blind, and the
    others must not judge them by presence before they have reconnected elsewhere."""
    async with engine.begin() as conn:
        await conn.execute(_LEAVE, {"process": process})


@dataclass(frozen=True, slots=True)
class Peers:
    """What the other processes' fresh rows say: the first blind one (its name), and
    whether any sees presence."""

    blind: str | None = None
    seeing: bool = False


async def peers(
    engine: AsyncEngine, process: str, now: float, within_s: float, seeing_within_s: float
) -> Peers:
    """What the processes other than ``process`` say (one read): the first whose row is
    blind and fresh within ``within_s`` of ``now``, and whether one's row says it sees and
    was written within ``seeing_within_s`` (at most ``within_s``)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(_OTHERS, {"process": process, "fresh": _at(now - within_s)})
        ).all()
    blind = next((str(row.process) for row in rows if row.blind), None)
    recent = _at(now - seeing_within_s)
    return Peers(blind, any(not row.blind and row.seen_at >= recent for row in rows))
