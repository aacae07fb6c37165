"""A request's place in its queue, counted in the transaction that inserts it (on PostgreSQL
by the inserting statement itself, one round trip; on SQLite by a second statement), on
both: the same place a read of the queue gives afterwards, ties in rank broken by id,
closed requests not counted, and nothing inserted (no place) for a student who already has
an open request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broker.errors import Conflict
from tests.broker.conftest import prepare_database
from tests.broker.unit import Rig, broker_rig, student


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    await prepare_database(database_url)
    async with broker_rig(database_url) as made:
        yield made


async def place_now(rig: Rig, request_id: str) -> int:
    row = await rig.request_row(request_id)
    return await rig.broker.store.position(str(row["queue"]), float(row["rank"]), request_id)


async def test_the_place_counted_on_insert_is_the_place_read_afterwards(rig: Rig) -> None:
    who = [student(f"s-{n}") for n in range(5)]
    places, ids = [], []
    for n, person in enumerate(who):
        await rig.connect(person)
        ack = await rig.broker.request_help(person, "math", "en")
        places.append(ack["position"])
        ids.append(str(ack["id"]))
        if n == 1:
            rig.clock.advance(1)  # s-0 and s-1 share a rank (asked at one instant), as do 2-4
    # each counted the requests already queued ahead of it by (rank, id); ids made at one
    # instant are not ordered by when they were made, so a later one may go ahead
    rows = [await rig.request_row(i) for i in ids]
    keys = [(float(r["rank"]), str(r["id"])) for r in rows]
    assert places == [1 + sum(k < key for k in keys[:n]) for n, key in enumerate(keys)]
    assert [await place_now(rig, i) for i in ids] == [1 + sorted(keys).index(k) for k in keys]

    await rig.broker.cancel(who[1], ids[1])  # closed: no longer ahead of anyone
    late = student("s-late")
    await rig.connect(late)
    ack = await rig.broker.request_help(late, "math", "en")
    assert ack["position"] == 5 == await place_now(rig, str(ack["id"]))
    left = sorted(keys[:1] + keys[2:])
    assert [await place_now(rig, i) for i in ids[2:]] == [1 + left.index(k) for k in keys[2:]]

    # a student with an open request: nothing inserted, no place counted (the insert's
    # guard, on PostgreSQL the very statement that counts)
    with pytest.raises(Conflict):
        await rig.broker.request_help(who[0], "math", "en")
    _, total = await rig.broker.store.queue(str(rows[0]["queue"]))
    assert total == 5

