"""Write statements of the lifecycle store built from parts (:mod:`broker.lifecycle_store`).

A chat message's count on its session row and its buffered row, shared by the statement
of each dialect; and, for PostgreSQL, where every statement is a round trip, the *fused*
forms the group committer runs for a batch's units of one kind (:class:`broker.commit.base.
Fusion`): the same statement over arrays of the units' parameters, each row returned with
its unit's 1-based place in the arrays (``unnest ... WITH ORDINALITY``), written so that
every unit's outcome is the one it would have had run alone, after the units before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from broker.commit import Fusion
from broker.db.models import OPEN_REQUEST, is_queued


def each_of(types: dict[str, Any], name: str) -> Any:
    """The units' values as rows: one array parameter ``each_<key>`` per key of ``types``
    (its element type), unnested side by side into columns named by the keys, and ``i``,
    each row's 1-based place in the arrays (the ordinal a fused statement returns first)."""
    return sa.func.unnest(
        *(sa.bindparam(f"each_{key}", type_=postgresql.ARRAY(t)) for key, t in types.items())
    ).table_valued(
        *(sa.column(key, t) for key, t in types.items()), with_ordinality="i"
    ).render_derived(name=name)


def collecting(keys: Iterable[str]) -> dict[str, str]:
    """A :class:`Fusion`'s arrays for :func:`each_of`: ``each_<key>`` collects ``key``."""
    return {f"each_{key}": key for key in keys}


def count_queued_ahead(
    table: sa.FromClause, queue: Any, rank: Any, rid: Any, *, including: bool = False
) -> sa.Select[Any]:
    """How many requests of ``table`` wait in ``queue`` before (rank, id) = (``rank``,
    ``rid``), ``including`` that one if it waits. (rank, id) is compared as a row, not as
    "rank < x or (rank = x and id < y)": a row comparison is a range of the queue index
    (queue, rank, id), the OR is not (on PostgreSQL with 2,000 queued: 490 against
    1,365 us a count, measured)."""
    mine, theirs = sa.tuple_(table.c.rank, table.c.id), sa.tuple_(rank, rid)
    return sa.select(sa.func.count()).where(
        is_queued(table),
        table.c.queue == queue,
        mine <= theirs if including else mine < theirs,
    )


def fused_close(table: sa.Table, cleared: dict[str, Any], *, by_student: bool) -> Fusion:
    """``close_queued`` for many requests at once (PostgreSQL): the same update over arrays
    of its parameters, each row returned with its request's place in the arrays."""
    r = table
    types: dict[str, Any] = {
        "rid": r.c.id.type, "new_status": r.c.status.type, "when": r.c.closed_at.type,
        "reason": r.c.close_reason.type,
    }
    if by_student:
        types["student"] = r.c.student.type
    each = each_of(types, "each")
    where = [r.c.id == each.c.rid, is_queued(r)]
    if by_student:
        where.append(r.c.student == each.c.student)
    stmt = (
        r.update()
        .where(*where)
        .values(
            status=each.c.new_status, closed_at=each.c.when, close_reason=each.c.reason,
            **cleared,
        )
        .returning(each.c.i, r.c.student, r.c.queue)
    )
    return Fusion(stmt, collecting(types))


#: The columns a queued request is inserted with (``Broker.request_help``'s row).
QUEUED_COLUMNS = (
    "id", "student", "school_id", "school_kind", "grade", "groups", "language", "subject",
    "requested_at", "is_test", "status", "vendor", "queue", "overflow",
    "first_choice_unmet", "queued_at", "rank", "topic", "first_name",
)


def fused_enqueue(table: sa.Table) -> Fusion:
    """``enqueue`` for many students at once (PostgreSQL): their rows inserted by one
    statement over arrays, each inserted row returned with its unit's place in the arrays
    and its place in its queue as one-by-one inserts would have counted it: the requests
    queued ahead of it before the statement, plus those of this statement ahead of it
    that came before it in the arrays (the statement's own rows are not in its snapshot)."""
    r, keys = table, QUEUED_COLUMNS
    each = sa.select(each_of({k: r.c[k].type for k in keys}, "given")).cte("each")
    inserted = (
        postgresql.insert(r)
        .from_select(list(keys), sa.select(*(each.c[k] for k in keys)))
        .on_conflict_do_nothing(index_elements=[r.c.student], index_where=OPEN_REQUEST)
        .returning(r.c.id, r.c.queue, r.c.rank)
        .cte("inserted")
    )

    # each inserted row with its place in the arrays, once (a hash join), so the count of
    # the batch's rows ahead of a row scans this, not inserted x each again per row: that
    # nested loop made the count cubic in the batch (95 requests: 138 ms of a 163 ms
    # statement under load, auto_explain)
    placed = (
        sa.select(inserted.c.id, inserted.c.queue, inserted.c.rank, each.c.i)
        .select_from(inserted.join(each, each.c.id == inserted.c.id))
        .cte("placed")
    )
    queued_ahead = count_queued_ahead(
        r.alias("ahead"), placed.c.queue, placed.c.rank, placed.c.id
    ).scalar_subquery()
    mate = placed.alias("mate")
    batch_ahead = (
        sa.select(sa.func.count())
        .select_from(mate)
        .where(
            mate.c.queue == placed.c.queue, mate.c.i < placed.c.i,
            sa.tuple_(mate.c.rank, mate.c.id) < sa.tuple_(placed.c.rank, placed.c.id),
        )
        .scalar_subquery()
    )
    stmt = sa.select(placed.c.i, (queued_ahead + batch_ahead + 1).label("position"))
    return Fusion(
        stmt, collecting(keys), unused=frozenset({"ahead_queue", "ahead_rank", "ahead_id"})
    )


MESSAGE_COLUMNS = ["id", "session_id", "seq", "sender", "text", "at", "client_id"]


def message_binds(s: sa.Table, m: sa.Table) -> dict[str, Any]:
    """A message's values as bind parameters, named as ``add_message`` gives them."""
    return {
        "sid": sa.bindparam("sid", type_=s.c.id.type),
        "chars": sa.bindparam("chars", type_=s.c.chars_student.type),
        "now": sa.bindparam("now", type_=s.c.last_activity_at.type),
        "now2": sa.bindparam("now2", type_=s.c.first_response_at.type),
        "delta": sa.bindparam("delta", type_=sa.Float()),
        "cid": sa.bindparam("cid", type_=m.c.client_id.type),
        "sender": sa.bindparam("sender", type_=m.c.sender.type),
        "text": sa.bindparam("text", type_=m.c.text.type),
        "at": sa.bindparam("at", type_=m.c.at.type),
    }


def count_message(s: sa.Table, m: sa.Table, sender: str, given: dict[str, Any]) -> sa.Update:
    """Count a ``sender``'s message on its session's row: the next ``seq``, the sender's
    counters, the last activity (and a tutor's first response). Only an open session, and
    not for a resend of a message its client already got numbered (same ``client_id``;
    ``m.client_id = NULL`` is never true, so a message without one passes)."""
    resent = sa.exists().where(m.c.session_id == given["sid"], m.c.client_id == given["cid"])
    values: dict[str, Any] = {
        "seq": s.c.seq + 1,
        f"messages_{sender}": s.c[f"messages_{sender}"] + 1,
        f"chars_{sender}": s.c[f"chars_{sender}"] + given["chars"],
        "last_activity_at": given["now"],
    }
    if sender == "tutor":
        values["first_response_at"] = sa.func.coalesce(s.c.first_response_at, given["now2"])
        values["first_response_s"] = sa.func.coalesce(s.c.first_response_s, given["delta"])
    return (
        s.update()
        .where(s.c.id == given["sid"], s.c.ended_at.is_(None), ~resent)
        .values(**values)
    )


def buffered_message(session_id: Any, seq: Any, given: dict[str, Any]) -> sa.Select[Any]:
    """The buffered row (:data:`MESSAGE_COLUMNS`) of a message its session counted."""
    return sa.select(
        session_id.concat(".").concat(sa.cast(seq, sa.String())),
        session_id,
        seq,
        given["sender"],
        given["text"],
        given["at"],
        given["cid"],
    )


def fused_messages(s: sa.Table, m: sa.Table, sender: str) -> Fusion:
    """``add_message`` for many sessions at once (PostgreSQL): each counted on its session
    row and buffered, by one statement over arrays; a row per message written, with its
    place in the arrays and its ``seq``."""
    names = ["sid", "chars", "now", "cid", "sender", "text", "at"]
    if sender == "tutor":
        names += ["now2", "delta"]
    binds = message_binds(s, m)
    each = sa.select(each_of({n: binds[n].type for n in names}, "given")).cte("each")
    counted = (
        count_message(s, m, sender, dict(each.c.items()))
        .returning(s.c.id, s.c.seq, each.c.i)
        .cte("counted")
    )
    inserted = (
        m.insert()
        .from_select(
            MESSAGE_COLUMNS,
            buffered_message(counted.c.id, counted.c.seq, dict(each.c.items())).select_from(
                counted.join(each, each.c.i == counted.c.i)
            ),
        )
        .cte("inserted")
    )
    # Each counted message is buffered by ``inserted`` or the statement fails whole, so
    # the counted rows are the answer; ``inserted`` still runs (add_cte: PostgreSQL runs
    # every data-modifying WITH to completion). Joining the two again was a nested loop
    # over both, quadratic in the batch (auto_explain: ~1 ms of 5 for 52 messages).
    stmt = sa.select(counted.c.i, counted.c.seq).add_cte(inserted)
    return Fusion(stmt, collecting(names))
