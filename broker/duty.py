"""Tutors' time on duty: the spans during which a tutor was available and connected, per
queue (``tutor_duty``, :mod:`broker.db.duty_models`), so that coverage's "observed"
tutors are exact (:mod:`broker.capacity.coverage`).

A tutor is **on duty** for a queue (their vendor + one of their languages) while their
chosen status is ``available`` and they are connected to some process (the same test as
wait estimates and the staff's "tutors available": touched within
:attr:`broker.service.Broker.here_within_s`). Guarantees:

* **Written with the fact that changes it.** ``tutor:status`` ``available`` opens a span
  per queue (if none is open) and ``away`` closes them, in the status change's own
  transaction (:func:`record_status`, one statement); a sign-out (status ``away``) and a
  suspension (:func:`close_spans`, in the suspension's transaction) close them too.
* **Connection is reconciled by every sweep** (:func:`reconcile`): an open span of a
  tutor who is not available-and-connected is closed — at the time presence last saw
  them when they are gone, else at the sweep's time — and a tutor who is
  available-and-connected without one gets one, from the sweep's time (so a tutor who
  comes back opens a new span within one sweep). A process killed between any two steps
  therefore leaves no span open past the next sweep of any process.
* **Idempotent across processes.** At most one span per tutor and queue is open (a
  partial unique index: a second opener's insert does nothing); a close is guarded by
  the span still being open (a second closer changes nothing); an open by the sweep is
  guarded, in its statement, by the tutor's status still being ``available``, so a sweep
  that read the status before a tutor went away cannot reopen their span.
* A span never ends before it starts (its end is clamped to its start).

Presence is allowed to be lost: after a loss, a tutor never touched since answers the
store's epoch (:mod:`broker.presence`), so a span left open across a restart of the
embedded stack (memory presence) is closed at the restart's time, not earlier; the sweep
reconciles only once presence has answered for three sweeps (as it judges "gone").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.db.duty_models import OPEN_DUTY, tutor_duty
from broker.db.models import tutor_states
from broker.presence import tutor_subject

UTC = dt.UTC
d = tutor_duty
ts = tutor_states
LastSeen = Callable[[list[str]], Awaitable[dict[str, float] | None]]


def _when() -> sa.BindParameter[Any]:
    return sa.bindparam("when", type_=d.c.ended_at.type)


# The span of ``tid`` for queue (its vendor, ``lang``) from ``when``, only while the tutor's
# status is ``available`` (read in the same statement), unless one is open already.
_OPEN_SELECT = sa.select(
    ts.c.tutor_id, ts.c.vendor, sa.bindparam("lang", type_=d.c.language.type), _when()
).where(ts.c.tutor_id == sa.bindparam("tid"), ts.c.status == "available")
_OPEN = {
    name: dialect.insert(d)
    .from_select(["tutor_id", "vendor", "language", "started_at"], _OPEN_SELECT)
    .on_conflict_do_nothing(
        index_elements=[d.c.tutor_id, d.c.vendor, d.c.language], index_where=OPEN_DUTY
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_END = sa.case((d.c.started_at > _when(), d.c.started_at), else_=_when())
_CLOSE_TUTOR = (
    d.update()
    .where(d.c.tutor_id == sa.bindparam("tid"), d.c.ended_at.is_(None))
    .values(ended_at=_END)
)
_CLOSE_SPAN = (
    d.update().where(d.c.id == sa.bindparam("span"), d.c.ended_at.is_(None)).values(ended_at=_END)
)
_OPEN_SPANS = sa.select(d.c.id, d.c.tutor_id, d.c.vendor, d.c.language).where(
    d.c.ended_at.is_(None)
)
_AVAILABLE = sa.select(ts.c.tutor_id, ts.c.vendor, ts.c.languages).where(
    ts.c.status == "available"
)


def _open_statement(conn: AsyncConnection) -> Any:
    try:
        return _OPEN[conn.dialect.name]
    except KeyError:
        raise NotImplementedError(
            f"the broker supports SQLite and PostgreSQL, not {conn.dialect.name}"
        ) from None


async def record_status(
    conn: AsyncConnection, tutor_id: str, languages: Sequence[str], status: str,
    when: dt.datetime,
) -> None:
    """In the transaction that has just written the tutor's ``status`` to
    ``tutor_states``: open their spans (``available``; one per language, none where one is
    open) or close them (anything else). One statement."""
    if status == "available":
        params = [{"tid": tutor_id, "lang": lang, "when": when} for lang in languages if lang]
        if params:
            await conn.execute(_open_statement(conn), params)
    else:
        await close_spans(conn, tutor_id, when)


async def close_spans(conn: AsyncConnection, tutor_id: str, when: dt.datetime) -> int:
    """Close the tutor's open spans at ``when`` (in the caller's transaction); how many."""
    result = await conn.execute(_CLOSE_TUTOR, {"tid": tutor_id, "when": when})
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one reconciliation changed (spans this process opened / closed)."""

    opened: int = 0
    closed: int = 0


async def reconcile(
    engine: AsyncEngine, last_seen: LastSeen, here_within_s: float, now: float
) -> Reconciled:
    """Make the open spans those of the tutors available and connected now (module
    docstring). ``last_seen``: presence's look-up (subjects -> epoch seconds), ``None``
    when presence cannot tell, and then nothing is changed. Reads the open spans before
    the statuses, so a span opened by a status change after the first read is not
    mistaken for a stale one.
    """
    async with engine.connect() as conn:
        spans = (await conn.execute(_OPEN_SPANS)).all()
        available = (await conn.execute(_AVAILABLE)).all()
    tutors = {str(row.tutor_id) for row in spans} | {str(row.tutor_id) for row in available}
    if not tutors:
        return Reconciled()
    seen = await last_seen([tutor_subject(t) for t in sorted(tutors)])
    if seen is None:
        return Reconciled()

    def last(tutor: str) -> float:
        return seen.get(tutor_subject(tutor), now)

    here = {t for t in tutors if now - last(t) <= here_within_s}
    wanted = {
        (str(row.tutor_id), str(row.vendor), lang)
        for row in available
        if row.tutor_id in here
        for lang in str(row.languages).split(",")
        if lang
    }
    have = {(str(row.tutor_id), str(row.vendor), str(row.language)) for row in spans}
    closes = [
        {"span": row.id, "when": _at(now if row.tutor_id in here else min(now, last(row.tutor_id)))}
        for row in spans
        if (row.tutor_id, row.vendor, row.language) not in wanted
    ]
    opens = [
        {"tid": tutor, "lang": lang, "when": _at(now)}
        for tutor, _, lang in sorted(wanted - have)
    ]
    if not closes and not opens:
        return Reconciled()
    closed = opened = 0
    async with engine.begin() as conn:
        for params in closes:  # one by one: the rows each changed are counted
            closed += int((await conn.execute(_CLOSE_SPAN, params)).rowcount or 0)
        for params in opens:
            opened += int((await conn.execute(_open_statement(conn), params)).rowcount or 0)
    return Reconciled(opened, closed)


def _at(epoch: float) -> dt.datetime:
    """An instant from epoch seconds; a subject presence forgot (a sign-out: minus
    infinity, or 1970) is clamped to 1970, and the span's end to its start."""
    return dt.datetime.fromtimestamp(max(0.0, epoch), UTC)


async def on_duty(
    conn: AsyncConnection, vendors: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, str, dt.datetime, dt.datetime | None]]:
    """Every span of ``vendors``' queues overlapping ``[start, end)``: (vendor, language,
    tutor, started_at, ended_at or ``None`` while open), in no particular order."""
    query = sa.select(d.c.vendor, d.c.language, d.c.tutor_id, d.c.started_at, d.c.ended_at).where(
        d.c.vendor.in_(sorted(set(vendors))),
        d.c.started_at < end,
        sa.or_(d.c.ended_at.is_(None), d.c.ended_at > start),
    )
    return [
        (str(v), str(lang), str(tutor), started, ended)
        for v, lang, tutor, started, ended in await conn.execute(query)
    ]
