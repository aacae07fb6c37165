"""The one source of truth: requests, their queues, claims, sessions, capacity and messages.

Every state change of the broker is **one transaction** here, which happens whole or not at
all (a unit of the group committer, :mod:`broker.commit`), and carries its own check, so a
change that lost a race changes nothing:

===============  ==========================================================================
change           transaction (guards in brackets)
===============  ==========================================================================
request          insert the request as ``queued`` [the partial unique index on open requests
                 refuses a student's second one] — or as ``unmet``
cancel, abandon  ``queued`` -> closed [it was still queued, and, for a cancel, the caller's]
accept           the request -> ``accepted`` [still queued, in the tutor's vendor]; the
                 tutor's ``open_sessions`` + 1 [below the vendor's capacity]; the session
message          the session's ``seq`` + 1 and counters [the session is open]; the message
                 into the session's buffer with that sequence number
end              the session ends [it was open: at most once]; its request ends or goes back
                 to its queue with its rank (so at its old place); ``open_sessions`` - 1
===============  ==========================================================================

So the queues are the ``queued`` rows in ``rank`` order, one open request per student is a
constraint, ``open_sessions`` always equals the tutor's open sessions, and a message's
sequence number is assigned once. Anything kept elsewhere (Redis, process memory) is
derived from these tables or allowed to be lost. Unless the district turned message
retention on (``HH_MESSAGE_RETENTION_DAYS`` > 0), the student's topic lives here only while
the request is open, and message bodies while their session is open and for
:data:`~broker.constants.BUFFER_AFTER_END_S` after it ends (so that a participant who missed
the last messages in a pub/sub outage still gets them); :meth:`LifecycleStore.drop_ended_buffers`,
run by every process's sweep, deletes them then.

Statements are built once per store; the state-change writes go through one
:class:`~broker.commit.GroupCommitter`, so concurrent changes share a transaction while each
caller still returns only after its own commit. Reads use the SQLAlchemy engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import duty
from broker.commit import GroupCommitter, Outcome, Step, committer_for
from broker.db.computed import epoch_us
from broker.db.models import OPEN_REQUEST, Base, is_open_request, is_queued
from broker.db.reader import Reader, reader_for
from broker.ids import new_id
from broker.lifecycle_statements import (
    MESSAGE_COLUMNS,
    buffered_message,
    count_message,
    count_queued_ahead,
    fused_close,
    fused_enqueue,
    fused_messages,
    message_binds,
)
from broker.round_trips import RoundTrips, padded_params

UTC = dt.UTC
OPEN_OF_BATCH = 16  # students per statement when open requests are looked up together


def open_requests_of(table: sa.Table, n: int, *, lateral: bool) -> sa.Select[Any]:
    """The open requests of up to ``n`` students (parameters ``s0`` .. ``s<n-1>``; repeat
    one to fill the list): at most one row each, by the one-open-request index.

    ``lateral`` (PostgreSQL): one index lookup per student, whatever the planner knows.
    As ``student IN (...) AND status IN (...)``, a prepared statement's generic plan on a
    table without statistics (never analysed: autovacuum off or not yet run) reads every
    open request and filters them by student instead: 1.6 against 0.1 ms for 16 students
    among 1,000 open requests (measured), and every connecting student is looked up.
    ``LIMIT 1`` keeps the lookup a per-student subquery (without it the planner may turn it
    back into that join). SQLite has no LATERAL and uses the index for the IN list."""
    r = table
    students = [sa.bindparam(f"s{i}", type_=r.c.student.type) for i in range(n)]
    if not lateral:
        return sa.select(r).where(r.c.student.in_(students), is_open_request(r))
    given = sa.values(sa.column("student", r.c.student.type), name="given").data(
        [(s,) for s in students]
    )
    one = (
        sa.select(r)
        .where(r.c.student == given.c.student, is_open_request(r))
        .limit(sa.literal_column("1", sa.Integer))
        .lateral("one")
    )
    return sa.select(one).select_from(given).join(one, sa.true())


def at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def _seconds(micros: int | None) -> float | None:
    """Integer microseconds since 1970 as seconds, exactly as ``datetime.timestamp()``."""
    return None if micros is None else micros / 1_000_000


def epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _closed_as(
    row: dict[str, Any], at_column: str, reason_column: str, when: dt.datetime, reason: str
) -> bool:
    """Whether ``row`` was closed at ``when`` (to the microsecond) for ``reason``: how a
    close or an end whose write ran in doubt recognises its own first run's change."""
    return bool(row[reason_column] == reason and epoch(row[at_column]) == epoch(when))


SESSION_END_FIELDS = (
    "ended_at", "end_reason", "outcome", "tutored_subject", "resolved", "tutor_notes",
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an accept's transaction found: ``ok``, or which check refused it."""

    ok: bool
    taken: bool = False  # the request was no longer queued
    over_capacity: bool = False


# A ``client_id`` the store gives a message sent without one: ``~`` is not among the
# characters a client's may hold (docs/protocol.md), so the two never collide.
OWN_CLIENT_ID = "~"


@dataclass(frozen=True, slots=True)
class Resent:
    """The message a ``client_id`` already made (:meth:`LifecycleStore.add_message`)."""

    seq: int
    sender: str  # as buffered: "student", "tutor", or a booked room's student slot
    text: str
    at: float


def _bound(table: sa.Table, names: Sequence[str]) -> dict[str, Any]:
    """SET clause of bind parameters ``v_<column>`` (column names are reserved for VALUES)."""
    return {n: sa.bindparam("v_" + n, type_=table.c[n].type) for n in names}


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {"v_" + k: v for k, v in values.items()}


def _insert(table: sa.Table, dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the broker supports SQLite and PostgreSQL, not {dialect}")


class LifecycleStore:
    def __init__(self, engine: AsyncEngine, *, keep_text: bool = False) -> None:
        """``keep_text``: the district keeps message bodies and topics (retention on)."""
        self.engine = engine
        self.keep_text = keep_text
        self.writer: GroupCommitter = committer_for(engine)
        #: standalone reads, one hand-off each (:mod:`broker.db.reader`)
        self.reader: Reader = reader_for(engine)
        tables = Base.metadata.tables
        self.requests = r = tables["help_requests"]
        self.sessions = s = tables["tutoring_sessions"]
        self.messages = m = tables["chat_messages"]
        self.tutors = t = tables["tutor_states"]
        dialect = engine.dialect.name
        cleared = {} if keep_text else {"topic": None, "first_name": None}

        # -- requests ----------------------------------------------------------------------
        self._insert_unmet = r.insert()
        self._insert_queued = _insert(r, dialect).on_conflict_do_nothing(
            index_elements=[r.c.student], index_where=OPEN_REQUEST
        )
        # On PostgreSQL, where each statement is a round trip, the request is inserted with
        # its place in its queue in one statement: the requests queued ahead of it
        # (strictly, so whether the statement sees its own row does not matter), plus one;
        # no row comes back when the student already has an open request. SQLite runs
        # statements in the writer's thread, where its RETURNING costs more than a second
        # statement (25 against 10 us an insert and cancel, measured): there the place is
        # a second statement (``_position``) of the same unit.
        self._postgres = dialect == "postgresql"
        place = count_queued_ahead(
            r.alias("ahead"),
            sa.bindparam("ahead_queue"),
            sa.bindparam("ahead_rank", type_=r.c.rank.type),
            sa.bindparam("ahead_id", type_=r.c.id.type),
        )
        self._insert_placed = self._insert_queued.returning(
            (place.scalar_subquery() + 1).label("position")
        )
        if self._postgres:  # a batch's requests as one statement (broker.commit.base)
            self.writer.fuse(self._insert_placed, fused_enqueue(r))
        self._close_queued = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"), is_queued(r))
            .values(
                status=sa.bindparam("new_status"),
                closed_at=sa.bindparam("when", type_=r.c.closed_at.type),
                close_reason=sa.bindparam("reason"),
                **cleared,
            )
            .returning(r.c.student, r.c.queue)
        )
        self._cancel = self._close_queued.where(r.c.student == sa.bindparam("student"))
        if self._postgres:  # a batch's closes as one statement (broker.commit.base)
            for single, by_student in ((self._close_queued, False), (self._cancel, True)):
                self.writer.fuse(single, fused_close(r, cleared, by_student=by_student))
        # -- accept ------------------------------------------------------------------------
        self._ensure_tutor = _insert(t, dialect).on_conflict_do_nothing(
            index_elements=[t.c.tutor_id]
        )
        self._claim_request = (
            r.update()
            .where(
                r.c.id == sa.bindparam("rid"),
                is_queued(r),
                r.c.vendor == sa.bindparam("vendor"),
            )
            .values(
                status="accepted",
                **_bound(r, ["accepted_at"]),
                # the staff reports' read model (broker/request_rollup.py), in this same
                # transaction: the first acceptance is kept through requeues
                first_accepted_at=sa.func.coalesce(
                    r.c.first_accepted_at,
                    sa.bindparam("v_first_accepted_at", type_=r.c.first_accepted_at.type),
                ),
                session_count=r.c.session_count + 1,
            )
        )
        self._take_slot = (
            t.update()
            .where(
                t.c.tutor_id == sa.bindparam("tid"),
                t.c.open_sessions < sa.bindparam("capacity"),
            )
            .values(open_sessions=t.c.open_sessions + 1, **_bound(t, ["updated_at"]))
        )
        self._insert_session = s.insert()
        # -- messages ----------------------------------------------------------------------
        bound = message_binds(s, m)
        self._count_message = {
            sender: count_message(s, m, sender, bound).returning(s.c.seq)
            for sender in ("student", "tutor")
        }
        self._buffer_message = m.insert().from_select(
            MESSAGE_COLUMNS,
            buffered_message(s.c.id, s.c.seq, bound).where(s.c.id == sa.bindparam("sid")),
        )
        # On PostgreSQL (a round trip per statement) the two steps are one statement: the
        # count as a CTE, the message inserted from the row it counted; nothing is inserted
        # or returned when the count's guard keeps the session's row out. A batch's
        # messages to different sessions run fused, as one such statement over arrays.
        self._message_in_one: dict[str, Any] = {}
        if self._postgres:
            for sender, count in self._count_message.items():
                counted = count.returning(s.c.id).cte("counted")
                self._message_in_one[sender] = (
                    m.insert()
                    .from_select(
                        MESSAGE_COLUMNS, buffered_message(counted.c.id, counted.c.seq, bound)
                    )
                    .add_cte(counted)
                    .returning(m.c.seq)
                )
                self.writer.fuse(self._message_in_one[sender], fused_messages(s, m, sender))
        # -- end ---------------------------------------------------------------------------
        self._end_session = (
            s.update()
            .where(s.c.id == sa.bindparam("sid"), s.c.ended_at.is_(None))
            .values(**_bound(s, SESSION_END_FIELDS))
        )
        self._end_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(status="ended", **_bound(r, ["closed_at", "close_reason"]), **cleared)
        )
        self._requeue_request = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(status="queued", accepted_at=None)
        )
        # Back at the head of its queue (before every queued request of that queue): the
        # student was let down by a tutor who never answered (``tutor_silent``).
        head = r.alias("head")
        self._requeue_head = (
            r.update()
            .where(r.c.id == sa.bindparam("rid"))
            .values(
                status="queued",
                accepted_at=None,
                rank=sa.select(sa.func.coalesce(sa.func.min(head.c.rank), r.c.rank) - 1)
                .where(head.c.queue == r.c.queue, is_queued(head))
                .scalar_subquery(),
            )
        )
        self._free_slot = (
            t.update()
            .where(t.c.tutor_id == sa.bindparam("tid"), t.c.open_sessions > 0)
            .values(open_sessions=t.c.open_sessions - 1, **_bound(t, ["updated_at"]))
        )
        # -- reads -------------------------------------------------------------------------
        self._open_request_of = (
            sa.select(r)
            .where(
                r.c.student == sa.bindparam("student"),
                # literal values: no "expanding" parameter to post-compile per call, and
                # the one-open-request index finds the row
                is_open_request(r),
            )
            .order_by(r.c.requested_at.desc())
            .limit(1)
        )
        # The same for up to OPEN_OF_BATCH students at once (a list of plain parameters,
        # not an expanding one, so the native readers prepare it once).
        self._open_requests_of = open_requests_of(r, OPEN_OF_BATCH, lateral=self._postgres)
        self._open_of: RoundTrips[str, dict[str, Any] | None] = RoundTrips(
            "open-request-of", self._open_requests_of_all
        )
        self._position = count_queued_ahead(
            r,
            sa.bindparam("queue"),
            sa.bindparam("rank", type_=r.c.rank.type),
            sa.bindparam("rid", type_=r.c.id.type),
            including=True,
        )
        # built once, so each read skips building the statement and its cache key, and the
        # SQLite reader compiles each once
        self._request = sa.select(r).where(r.c.id == sa.bindparam("rid"))
        self._tutor_states = sa.select(t)
        self._tutor_state = sa.select(t).where(t.c.tutor_id == sa.bindparam("tid"))
        in_queue = (is_queued(r), r.c.queue == sa.bindparam("queue"))
        self._queue = sa.select(r).where(*in_queue).order_by(r.c.rank, r.c.id)
        self._queue_head = self._queue.limit(sa.bindparam("limit", type_=sa.Integer))
        self._queue_length = sa.select(sa.func.count().label("count")).where(*in_queue)
        self._queued = sa.select(
            r.c.id, r.c.student, r.c.queue, r.c.queued_at, r.c.left_until
        ).where(is_queued(r))
        self._queue_figures = (
            sa.select(r.c.queue, sa.func.count().label("count"),
                      sa.func.min(r.c.queued_at).label("oldest"))
            .where(is_queued(r))
            .group_by(r.c.queue)
        )
        self._accepts_since = (
            sa.select(r.c.queue, sa.func.count().label("count"))
            .select_from(s.join(r, r.c.id == s.c.request_id))
            .where(s.c.accepted_at >= sa.bindparam("since"))
            .group_by(r.c.queue)
        )
        self._open_session_counts = sa.select(
            sa.func.count().label("total"), sa.func.count(s.c.booking).label("booked")
        ).where(s.c.ended_at.is_(None))
        self._open_sessions: dict[tuple[bool, bool, bool], sa.Select[Any]] = {}
        self._open_session_clocks = sa.select(
            s.c.id, s.c.tutor_id, s.c.student,
            epoch_us(s.c.accepted_at).label("accepted_at"),
            epoch_us(s.c.last_activity_at).label("last_activity_at"),
            epoch_us(s.c.first_response_at).label("first_response_at"),
        ).where(s.c.ended_at.is_(None), s.c.booking.is_(None))
        self._session = sa.select(s).where(s.c.id == sa.bindparam("sid"))
        self._last_session_of_request = (
            sa.select(s)
            .where(s.c.request_id == sa.bindparam("rid"), s.c.student == sa.bindparam("student"))
            .order_by(s.c.accepted_at.desc())
            .limit(1)
        )
        self._messages_after = (
            sa.select(m.c.id, m.c.seq, m.c.sender, m.c.text, m.c.at)
            .where(m.c.session_id == sa.bindparam("sid"), m.c.seq > sa.bindparam("after"))
            .order_by(m.c.seq)
        )
        self._message_by_client_id = sa.select(m.c.seq, m.c.sender, m.c.text, m.c.at).where(
            m.c.session_id == sa.bindparam("sid"), m.c.client_id == sa.bindparam("cid")
        )

    async def close(self) -> None:
        """Finish pending writes; stop the reader."""
        await self.writer.close()
        await self.reader.close()

    # -- requests ------------------------------------------------------------------------
    async def record_unmet(self, row: dict[str, Any]) -> None:
        """Insert a request no vendor can serve (status ``unmet``)."""
        await self.writer.write([(self._insert_unmet, row)], key=row["id"])

    async def enqueue(self, row: dict[str, Any]) -> int | None:
        """Insert a ``queued`` request; return its place in its queue, counted in the same
        transaction, or ``None`` (nothing written) if the student already has an open
        request.

        When the writer ran the insert again because its first run's answer was lost
        (:attr:`broker.commit.Outcome.in_doubt`), the second run is refused by the first's
        row; if that row, this request's (its id is new), is there, its place is answered."""
        if self._postgres:
            ahead = {"ahead_queue": row["queue"], "ahead_rank": row["rank"],
                     "ahead_id": row["id"]}
            unit = [Step(self._insert_placed, {**row, **ahead}, expect=1, returning=True)]
        else:
            where = {"queue": row["queue"], "rank": row["rank"], "rid": row["id"]}
            unit = [
                Step(self._insert_queued, row, expect=1),
                Step(self._position, where, returning=True),
            ]
        outcome = await self.writer.write(unit, key=row["student"])
        if outcome.ok:
            return int(outcome.rows(len(unit) - 1)[0][0])
        if outcome.in_doubt and await self.request(row["id"]) is not None:
            return await self.position(row["queue"], row["rank"], row["id"])
        return None

    async def close_queued(
        self, request_id: str, status: str, when: float, reason: str,
        *, student: str | None = None,
    ) -> tuple[str, str] | None:
        """Move a queued request to cancelled / abandoned / expired (with ``student``: only
        that student's); return its (student, queue), or ``None`` (nothing changed) if it
        was not queued (or not theirs).

        When the writer ran the close again because its first run's answer was lost
        (:attr:`broker.commit.Outcome.in_doubt`), a refusal is checked once more: a request
        closed with this close's status, reason and ``closed_at`` was closed by it, and is
        answered as closed."""
        closed_at = at(when)
        params = {"rid": request_id, "new_status": status, "when": closed_at, "reason": reason}
        stmt = self._close_queued
        if student is not None:
            stmt, params = self._cancel, {**params, "student": student}
        outcome = await self.writer.write(
            [Step(stmt, params, expect=1, returning=True)], key=request_id
        )
        if outcome.ok:
            [(owner, queue)] = outcome.rows(0)
            return str(owner), str(queue)
        if not outcome.in_doubt:
            return None
        row = await self.request(request_id)  # closed by this close's first run?
        if row is None or (student is not None and row["student"] != student):
            return None
        mine = row["status"] == status and _closed_as(
            row, "closed_at", "close_reason", closed_at, reason
        )
        return (str(row["student"]), str(row["queue"])) if mine else None

    # -- accept --------------------------------------------------------------------------
    async def accept(
        self, request_id: str, vendor: str, tutor: dict[str, Any], capacity: int,
        session: dict[str, Any],
    ) -> Accepted:
        """Claim the queued request for the tutor, take one of their slots and open the
        session, in one transaction; nothing changes unless all three happen.

        When the writer ran the accept again because its first run's answer was lost
        (:attr:`broker.commit.Outcome.in_doubt`), a claim refused because the request was no
        longer queued is checked once more: if the session ``session`` names exists, this
        very accept made it (its id is new), and it is answered as done."""
        now = session["accepted_at"]
        outcome = await self.writer.write([
            Step(self._ensure_tutor, {**tutor, "open_sessions": 0, "updated_at": now}),
            Step(
                self._claim_request,
                {"rid": request_id, "vendor": vendor, "v_accepted_at": now,
                 "v_first_accepted_at": now},
                expect=1,
            ),
            Step(
                self._take_slot,
                {"tid": tutor["tutor_id"], "capacity": capacity, "v_updated_at": now},
                expect=1,
            ),
            Step(self._insert_session, session),
        ], key=request_id, order=tutor["tutor_id"])
        if outcome.ok:
            return Accepted(True)
        if (
            outcome.failed == 1 and outcome.in_doubt
            and await self.session(session["id"]) is not None
        ):
            return Accepted(True)  # made by this accept's first run (its answer was lost)
        return Accepted(False, taken=outcome.failed == 1, over_capacity=outcome.failed == 2)

    # -- messages ------------------------------------------------------------------------
    async def add_message(
        self, session_id: str, sender: str, text: str, when: float, accepted_at: float,
        *, buffered_as: str | None = None, client_id: str | None = None,
    ) -> int | Resent | None:
        """Count the message and buffer it with the next sequence number of its session;
        return that number, or ``None`` (nothing written) if the session is not open.
        ``sender`` is the role counted; the buffer records ``buffered_as`` instead when
        given (a booked room's student slot, see :mod:`broker.rooms`; at most 8 chars).

        At most once per ``client_id``: if the session already has a message with that
        ``client_id`` (the client resent after losing the acknowledgement), nothing is
        written and the earlier message is returned as a :class:`Resent`, whether the two
        sends raced on one process (one lane: the second sees the first's row) or on two
        (PostgreSQL: the second waited on the session row's lock, then the unique index
        refuses its insert; its unit, retried alone, finds the first's row).

        A message sent without a ``client_id`` is given one here (:data:`OWN_CLIENT_ID`
        and a new id, which no client can send), so that when the write's outcome was in
        doubt and the writer ran it again (:meth:`broker.commit.GroupCommitter._retry_in_doubt`)
        the second run finds the first's row and the message is stored once; it is then
        answered as new (its number), since nobody was told of it."""
        own = client_id is None
        if client_id is None:
            client_id = OWN_CLIENT_ID + new_id()
        params: dict[str, Any] = {
            "sid": session_id, "chars": len(text), "now": at(when), "cid": client_id,
        }
        if sender == "tutor":
            params.update(now2=at(when), delta=max(0.0, when - accepted_at))
        buffered = {"sender": buffered_as or sender, "text": text, "at": at(when)}
        unit: list[Step]
        if self._postgres:
            one = self._message_in_one[sender]
            unit = [Step(one, {**params, **buffered}, expect=1, returning=True)]
        else:
            unit = [
                Step(self._count_message[sender], params, expect=1, returning=True),
                Step(self._buffer_message, {"sid": session_id, "cid": client_id, **buffered}),
            ]
        try:
            outcome = await self.writer.write(unit, key=session_id)
        except sa.exc.IntegrityError:
            made = await self.message_by_client_id(session_id, client_id)
            if own and made is None:
                raise  # not the message's own row: a fault of its own
        else:
            if outcome.ok:
                return int(outcome.rows(0)[0][0])
            made = await self.message_by_client_id(session_id, client_id)
        return made.seq if own and made is not None else made

    async def message_by_client_id(self, session_id: str, client_id: str) -> Resent | None:
        """The session's buffered message that its client numbered ``client_id``."""
        row = await self.reader.first(
            self._message_by_client_id, {"sid": session_id, "cid": client_id}
        )
        if row is None:
            return None
        return Resent(int(row["seq"]), str(row["sender"]), str(row["text"]),
                      epoch(row["at"]) or 0.0)

    # -- end -----------------------------------------------------------------------------
    async def end_session(
        self, session_id: str, request_id: str, tutor_id: str, values: dict[str, Any],
        *, requeue: bool, at_head: bool = False,
    ) -> bool:
        """End the open session with ``values`` (:data:`SESSION_END_FIELDS`); its request
        ends too, or goes back to ``queued`` (keeping its rank, so its place). ``False``
        (nothing changed) if the session had already ended. With ``at_head`` a requeued
        request goes before every request waiting in its queue.

        When the writer ran the end again because its first run's answer was lost
        (:attr:`broker.commit.Outcome.in_doubt`), a refusal because the session had ended
        is checked once more: if it ended at this end's ``ended_at`` and for its
        ``end_reason``, this end did it (another end at the same microsecond, for the same
        reason, would be taken for it), and it is answered as done."""
        when = values["ended_at"]
        steps: list[Step] = [
            Step(self._end_session, {"sid": session_id, **_params(values)}, expect=1)
        ]
        if requeue:
            requeue_stmt = self._requeue_head if at_head else self._requeue_request
            steps.append(Step(requeue_stmt, {"rid": request_id}))
        else:
            closed = {"closed_at": when, "close_reason": values["end_reason"]}
            steps.append(Step(self._end_request, {"rid": request_id, **_params(closed)}))
        steps.append(Step(self._free_slot, {"tid": tutor_id, "v_updated_at": when}))
        outcome: Outcome = await self.writer.write(steps, key=session_id, order=tutor_id)
        if outcome.ok:
            return True
        if not outcome.in_doubt:
            return False
        row = await self.session(session_id)  # ended by this end's first run?
        return row is not None and _closed_as(
            row, "ended_at", "end_reason", when, values["end_reason"]
        )

    async def drop_ended_buffers(self, ended_before: float) -> int:
        """Delete the messages of sessions that ended before ``ended_before`` (retention
        off), except a flagged session's while staff may review it (``safety_flags
        .keep_until``); return how many. Idempotent, safe in every process at once."""
        if self.keep_text:
            return 0
        m, s = self.messages, self.sessions
        cutoff = at(ended_before)
        ended = sa.select(s.c.id).where(s.c.ended_at.is_not(None), s.c.ended_at < cutoff)
        flags = Base.metadata.tables["safety_flags"]
        kept = sa.select(flags.c.session_id).where(flags.c.keep_until > cutoff)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                m.delete().where(
                    m.c.at < cutoff, m.c.session_id.in_(ended), m.c.session_id.not_in(kept)
                )
            )
        return int(result.rowcount or 0)

    # -- tutors --------------------------------------------------------------------------
    async def set_tutor_status(
        self, tutor_id: str, vendor: str, languages: Sequence[str], status: str, when: float
    ) -> None:
        """Record a tutor's chosen status (and their vendor and languages as they are now),
        and open or close their time on duty (:mod:`broker.duty`) in the same transaction."""
        t = self.tutors
        stmt = _insert(t, self.engine.dialect.name)
        values = {"vendor": vendor, "languages": ",".join(languages), "status": status,
                  "updated_at": at(when)}
        upsert = stmt.values(tutor_id=tutor_id, open_sessions=0, **values).on_conflict_do_update(
            index_elements=[t.c.tutor_id], set_=values
        )
        async with self.engine.begin() as conn:
            await conn.execute(upsert)
            await duty.record_status(conn, tutor_id, languages, status, at(when))

    async def tutor_states(self) -> list[dict[str, Any]]:
        return await self.reader.all(self._tutor_states)

    async def tutor_state(self, tutor_id: str) -> dict[str, Any] | None:
        return await self.reader.first(self._tutor_state, {"tid": tutor_id})

    # -- the tutor's account of a session, the student's rating --------------------------
    async def rate(self, session_id: str, student: str, helped: bool | None, stars: int) -> bool:
        """Store a rating of an ended session by its own student. False if not theirs/ended."""
        s = self.sessions
        async with self.engine.begin() as conn:
            result = await conn.execute(
                s.update()
                .where(s.c.id == session_id, s.c.student == student, s.c.ended_at.is_not(None))
                .values(rating_helped=helped, rating_stars=stars)
            )
        return bool(result.rowcount)

    async def set_outcome(
        self,
        session_id: str,
        tutor_id: str,
        outcome: str | None,
        tutored_subject: str | None,
        resolved: bool | None,
        notes: str | None = None,
    ) -> bool:
        """The tutor's account of an ended session of theirs (with their private notes).
        False if not theirs/ended."""
        s = self.sessions
        async with self.engine.begin() as conn:
            result = await conn.execute(
                s.update()
                .where(s.c.id == session_id, s.c.tutor_id == tutor_id, s.c.ended_at.is_not(None))
                .values(
                    outcome=outcome, tutored_subject=tutored_subject, resolved=resolved,
                    tutor_notes=notes,
                )
            )
        return bool(result.rowcount)

    # -- reads ---------------------------------------------------------------------------
    async def request(self, request_id: str) -> dict[str, Any] | None:
        return await self.reader.first(self._request, {"rid": request_id})

    async def open_request_of(self, student: str) -> dict[str, Any] | None:
        """The student's queued or accepted request, if any, as of a moment after the call.

        Calls made while others are being read go together as the next read (every
        connecting student is looked up: a crowd reconnecting after a restart costs one
        statement per :data:`OPEN_OF_BATCH` students, not one each); each caller gets its
        own copy of its row."""
        return await self._open_of.call(student)

    async def _open_requests_of_all(
        self, students: list[str]
    ) -> list[dict[str, Any] | BaseException | None]:
        unique = list(dict.fromkeys(students))
        if len(unique) == 1:  # alone: the single statement, as cheap as before
            one = await self.reader.first(self._open_request_of, {"student": unique[0]})
            return [None if one is None else dict(one) for _ in students]
        queries = [(self._open_requests_of, given)
                   for given in padded_params(unique, OPEN_OF_BATCH, "s")]
        latest: dict[str, dict[str, Any]] = {}
        for rows in await self.reader.batch(queries):
            for row in rows:  # one per student (a unique index); the latest if ever more
                had = latest.get(row["student"])
                if had is None or row["requested_at"] > had["requested_at"]:
                    latest[row["student"]] = row
        found = [latest.get(x) for x in students]
        return [None if row is None else dict(row) for row in found]

    async def position(self, queue: str, rank: float, request_id: str) -> int:
        """1-based place of a queued request in its queue (requests ahead of it + 1)."""
        ahead = await self.reader.scalar(
            self._position, {"queue": queue, "rank": rank, "rid": request_id}
        )
        return int(ahead or 0)

    async def queue(self, queue: str, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """The queue's requests in service order (the first ``limit``), and how many wait."""
        if limit:
            rows = await self.reader.all(self._queue_head, {"queue": queue, "limit": limit})
        else:
            rows = await self.reader.all(self._queue, {"queue": queue})
        total = len(rows)
        if limit and total >= limit:
            total = int(await self.reader.scalar(self._queue_length, {"queue": queue}) or 0)
        return rows, total

    async def queued(self) -> list[dict[str, Any]]:
        """Every queued request (id, student, queue, queued_at, left_until), for the sweep."""
        return await self.reader.all(self._queued)

    async def leave_question(
        self, request_id: str, student: str, topic: str | None, until: float
    ) -> bool:
        """The student's waiting request keeps its place until ``until`` while they are
        away (with their question as its topic, if given); ``False`` if it is not their
        waiting request."""
        r = self.requests
        values: dict[str, Any] = {"left_until": at(until)}
        if topic:
            values["topic"] = topic
        async with self.engine.begin() as conn:
            result = await conn.execute(
                r.update()
                .where(r.c.id == request_id, r.c.student == student, is_queued(r))
                .values(**values)
            )
        return bool(result.rowcount)

    async def queue_figures(self) -> dict[str, tuple[int, dt.datetime | None]]:
        """Queue name -> (requests waiting, the oldest one's queued_at), non-empty queues."""
        out: dict[str, tuple[int, dt.datetime | None]] = {}
        for row in await self.reader.all(self._queue_figures):
            name, count, oldest = row["queue"], row["count"], row["oldest"]
            if isinstance(oldest, str):  # SQLite's MIN() of a text column: back to UTC
                oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=UTC)
            out[str(name)] = (int(count), oldest)
        return out

    async def accepts_since(self, since: float) -> dict[str, int]:
        """Queue name -> accepts (sessions started) since ``since``, for wait estimates."""
        rows = await self.reader.all(self._accepts_since, {"since": at(since)})
        return {str(row["queue"]): int(row["count"]) for row in rows}

    async def open_session_counts(self) -> dict[str, int]:
        """Open sessions now by kind: ``on_demand`` (from a queue) and ``booked`` (rooms)."""
        row = await self.reader.first(self._open_session_counts)
        total, booked = (row["total"], row["booked"]) if row else (0, 0)
        return {"on_demand": int(total) - int(booked), "booked": int(booked)}

    def _open_sessions_query(self) -> sa.Select[Any]:
        s, r = self.sessions, self.requests
        return (
            sa.select(s, r.c.queue, r.c.topic, r.c.first_name, r.c.rank, r.c.priority)
            .join(r, r.c.id == s.c.request_id)
            .where(s.c.ended_at.is_(None))
        )

    async def open_sessions(
        self, *, tutor: str | None = None, student: str | None = None,
        session_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Open sessions (optionally one tutor's, one student's, or one by id), each with
        its request's queue, topic and first name."""
        s = self.sessions
        shape = (tutor is not None, student is not None, session_id is not None)
        query = self._open_sessions.get(shape)
        if query is None:
            query = self._open_sessions_query()
            if tutor is not None:
                query = query.where(s.c.tutor_id == sa.bindparam("tutor"))
            if student is not None:
                query = query.where(s.c.student == sa.bindparam("student"))
            if session_id is not None:
                query = query.where(s.c.id == sa.bindparam("sid"))
            query = self._open_sessions[shape] = query.order_by(s.c.accepted_at)
        params = {"tutor": tutor, "student": student, "sid": session_id}
        return await self.reader.all(query, {k: v for k, v in params.items() if v is not None})

    async def open_session_clocks(
        self,
    ) -> list[tuple[str, str, str, float, float | None, float | None]]:
        """Every open on-demand session's (id, tutor, student, accepted_at,
        last_activity_at, first_response_at), for the sweep: plain columns, so reading thousands
        costs the event loop little (the full rows, :meth:`open_sessions`, only for the few
        it ends). Booked sessions' rooms are not here: they end at their time
        (:mod:`broker.rooms`), not with presence or idleness. The database gives the
        timestamps as integer microseconds (:class:`~broker.db.computed.epoch_us`)."""
        return [
            (str(row["id"]), str(row["tutor_id"]), str(row["student"]),
             _seconds(row["accepted_at"]) or 0.0, _seconds(row["last_activity_at"]),
             _seconds(row["first_response_at"]))
            for row in await self.reader.all(self._open_session_clocks)
        ]

    async def session(self, session_id: str) -> dict[str, Any] | None:
        """A session, open or ended."""
        return await self.reader.first(self._session, {"sid": session_id})

    async def last_session_of_request(
        self, request_id: str, student: str
    ) -> dict[str, Any] | None:
        """The latest session (open or ended) made from one of the student's requests."""
        return await self.reader.first(
            self._last_session_of_request, {"rid": request_id, "student": student}
        )

    async def messages_after(self, session_id: str, after_seq: int) -> list[dict[str, Any]]:
        """The session's buffered messages with a sequence number above ``after_seq``."""
        return await self.reader.all(
            self._messages_after, {"sid": session_id, "after": after_seq}
        )
