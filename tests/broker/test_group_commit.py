"""Group commit: shared transactions, each caller durable before it returns, and one bad
write failing only its own caller."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from broker.db.engine import create_engine
from broker.group_commit import GroupCommitter
from tests.broker.conftest import prepare_database

SCHOOLS = sa.table(
    "schools",
    sa.column("id"),
    sa.column("name"),
    sa.column("region"),
    sa.column("low_grade"),
    sa.column("high_grade"),
    sa.column("kind"),
)


def school(i: int | str) -> dict[str, object]:
    return {
        "id": f"g{i}",
        "name": "G",
        "region": "East",
        "low_grade": 0,
        "high_grade": 5,
        "kind": "elementary",
    }


async def test_concurrent_writes_share_transactions_and_are_all_durable(database_url: str) -> None:
    await prepare_database(database_url)
    engine = create_engine(database_url)
    commits = 0

    def count(_: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine.sync_engine, "commit", count)
    writer = GroupCommitter(engine)
    try:
        results = await asyncio.gather(
            *(writer.write([(SCHOOLS.insert(), school(i))]) for i in range(100))
        )
        assert results == [[1]] * 100
        assert commits < 100  # batched: far fewer transactions than writes
        async with engine.connect() as conn:
            n = await conn.scalar(sa.text("select count(*) from schools where id like 'g%'"))
        assert n == 100
    finally:
        await writer.close()
        await engine.dispose()


async def test_a_failing_unit_fails_only_its_caller(database_url: str) -> None:
    await prepare_database(database_url)
    engine = create_engine(database_url)
    writer = GroupCommitter(engine)
    try:
        await writer.write([(SCHOOLS.insert(), school("dup"))])
        outcomes = await asyncio.gather(
            writer.write([(SCHOOLS.insert(), school("a"))]),
            writer.write([(SCHOOLS.insert(), school("b")), (SCHOOLS.insert(), school("dup"))]),
            writer.write([(SCHOOLS.insert(), school("c"))]),
            return_exceptions=True,
        )
        assert outcomes[0] == [1] and outcomes[2] == [1]
        assert isinstance(outcomes[1], IntegrityError)
        async with engine.connect() as conn:
            ids = set(await conn.scalars(sa.text("select id from schools where id like 'g%'")))
        assert ids == {"gdup", "ga", "gc"}  # the failed unit left nothing behind (not gb)
    finally:
        await writer.close()
        await engine.dispose()


@pytest.mark.parametrize("n", [0, 3])
async def test_close_finishes_pending_writes(sqlite_url: str, n: int) -> None:
    await prepare_database(sqlite_url)
    engine = create_engine(sqlite_url)
    writer = GroupCommitter(engine)
    pending = [
        asyncio.ensure_future(writer.write([(SCHOOLS.insert(), school(f"c{i}"))])) for i in range(n)
    ]
    await asyncio.sleep(0)
    await writer.close()
    assert [await p for p in pending] == [[1]] * n
    await engine.dispose()
