"""Group commit, on every backend: shared transactions, each caller durable before it
returns, one bad write failing only its own caller, and values stored exactly as
SQLAlchemy stores them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

import broker.commit.postgres
from broker import metrics
from broker.commit import (
    AsyncpgCommitter,
    EngineCommitter,
    GroupCommitter,
    SqliteCommitter,
    Step,
    committer_for,
)
from broker.commit.postgres import APPLICATION_NAME, asyncpg_dsn
from broker.commit.prepared import PrepareError, prepare
from broker.db.engine import create_engine
from broker.db.models import Base
from tests.broker.committing import on_lanes, one_lane, units_sent
from tests.broker.conftest import prepare_database
from tests.tcp_link import Link

SCHOOLS = sa.table(
    "schools",
    sa.column("id"),
    sa.column("name"),
    sa.column("region"),
    sa.column("low_grade"),
    sa.column("high_grade"),
    sa.column("kind"),
)
REQUESTS = Base.metadata.tables["help_requests"]


async def school_ids(engine: AsyncEngine) -> set[str]:
    """The ids of the schools these tests wrote (``g<i>``), as committed."""
    async with engine.connect() as conn:
        return set(await conn.scalars(sa.text("select id from schools where id like 'g%'")))


def school(i: int | str) -> dict[str, object]:
    return {
        "id": f"g{i}",
        "name": "G",
        "region": "East",
        "low_grade": 0,
        "high_grade": 5,
        "kind": "elementary",
    }


@pytest.fixture(params=["engine", "native"])
async def setup(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[sa.ext.asyncio.AsyncEngine, GroupCommitter]]:
    """An engine on a migrated database and a committer: the portable SQLAlchemy one, or
    the one :func:`committer_for` picks for that database."""
    await prepare_database(database_url)
    engine = create_engine(database_url)
    writer = EngineCommitter(engine) if request.param == "engine" else committer_for(engine)
    try:
        yield engine, writer
    finally:
        await writer.close()
        await engine.dispose()


def test_each_database_gets_its_native_backend(sqlite_url: str) -> None:
    assert isinstance(committer_for(create_engine(sqlite_url)), SqliteCommitter)
    assert isinstance(committer_for(create_engine("sqlite+aiosqlite://")), EngineCommitter)
    pg = committer_for(create_engine("postgres://hh:secret@db.example:5432/hh"))
    assert isinstance(pg, AsyncpgCommitter)
    assert pg.dsn == "postgresql://hh:secret@db.example:5432/hh"


async def test_concurrent_writes_share_transactions_and_are_all_durable(setup) -> None:  # type: ignore[no-untyped-def]
    engine, writer = setup
    transactions = units_sent(writer)
    results = await asyncio.gather(
        *(writer.write([(SCHOOLS.insert(), school(i))]) for i in range(100))
    )
    assert results == [[1]] * 100
    assert sum(transactions) == 100
    assert len(transactions) < 100  # batched: far fewer transactions than writes
    async with engine.connect() as conn:
        n = await conn.scalar(sa.text("select count(*) from schools where id like 'g%'"))
    assert n == 100


async def test_a_failing_unit_fails_only_its_caller(setup) -> None:  # type: ignore[no-untyped-def]
    engine, writer = setup
    await writer.write([(SCHOOLS.insert(), school("dup"))])
    outcomes = await asyncio.gather(
        writer.write([(SCHOOLS.insert(), school("a"))]),
        writer.write([(SCHOOLS.insert(), school("b")), (SCHOOLS.insert(), school("dup"))]),
        writer.write([(SCHOOLS.insert(), school("c"))]),
        return_exceptions=True,
    )
    assert outcomes[0] == [1] and outcomes[2] == [1]
    assert isinstance(outcomes[1], IntegrityError)
    # the failed unit left nothing behind (not gb)
    assert await school_ids(engine) == {"gdup", "ga", "gc"}
    assert await writer.write([(SCHOOLS.insert(), school("after"))]) == [1]  # still working


def _rename(old: str, new: str) -> Step:
    """A guarded step: rename school ``g<old>`` (exactly one row must change)."""
    stmt = (
        SCHOOLS.update()
        .where(SCHOOLS.c.id == sa.bindparam("old"))
        .values(name=sa.bindparam("new"))
    )
    return Step(stmt, {"old": f"g{old}", "new": new}, expect=1)


async def test_a_failed_first_guard_writes_nothing_and_the_batch_commits(setup) -> None:  # type: ignore[no-untyped-def]
    engine, writer = setup
    outcomes = await asyncio.gather(
        writer.write([(SCHOOLS.insert(), school("x"))]),
        writer.write([_rename("missing", "never"), (SCHOOLS.insert(), school("y"))]),
        writer.write([(SCHOOLS.insert(), school("z"))]),
    )
    assert outcomes[0].ok and outcomes[2].ok
    assert outcomes[1].failed == 0 and outcomes[1] == [0]  # stopped at the guard
    assert await school_ids(engine) == {"gx", "gz"}


async def test_a_later_guard_undoes_the_units_earlier_writes(setup) -> None:  # type: ignore[no-untyped-def]
    engine, writer = setup
    await writer.write([(SCHOOLS.insert(), school("keep"))])
    outcomes = await asyncio.gather(
        writer.write([
            (SCHOOLS.insert(), school("undone")),
            _rename("keep", "renamed-then-undone"),
            _rename("missing", "never"),
        ]),
        writer.write([_rename("keep", "second")]),
    )
    assert outcomes[0].failed == 2 and list(outcomes[0]) == [1, 1, 0]
    assert outcomes[1].ok
    async with engine.connect() as conn:
        rows = dict((await conn.execute(sa.text(
            "select id, name from schools where id like 'g%'"))).all())
    assert rows == {"gkeep": "second"}  # no gundone, and the undone rename left no trace


async def test_returning_steps_give_their_rows(setup) -> None:  # type: ignore[no-untyped-def]
    _, writer = setup
    await writer.write([(SCHOOLS.insert(), school("r"))])
    bump = (
        SCHOOLS.update()
        .where(SCHOOLS.c.id == sa.bindparam("sid"))
        .values(low_grade=SCHOOLS.c.low_grade + 1)
        .returning(SCHOOLS.c.low_grade)
    )
    first = await writer.write([Step(bump, {"sid": "gr"}, expect=1, returning=True)])
    second = await writer.write([Step(bump, {"sid": "gr"}, expect=1, returning=True)])
    assert first.rows(0) == [(1,)] and second.rows(0) == [(2,)]
    missing = await writer.write([Step(bump, {"sid": "nope"}, expect=1, returning=True)])
    assert missing.failed == 0 and missing.rows(0) == []


async def test_rowcounts_defaults_and_types_round_trip(setup) -> None:  # type: ignore[no-untyped-def]
    """Column defaults, booleans and UTC datetimes are stored as SQLAlchemy stores them,
    and an UPDATE reports how many rows it changed."""
    engine, writer = setup
    when = dt.datetime(2026, 11, 23, 13, 5, 7, 123456, tzinfo=dt.UTC)
    row = {
        "id": "r1",
        "student": "p1",
        "language": "en",
        "subject": "math",
        "status": "queued",
        "requested_at": when,
        "is_test": True,
    }
    close = (
        REQUESTS.update()
        .where(REQUESTS.c.id == sa.bindparam("rid"), REQUESTS.c.status == "queued")
        .values(status="cancelled", closed_at=sa.bindparam("when", type_=REQUESTS.c.closed_at.type))
    )
    assert await writer.write([(REQUESTS.insert(), row)]) == [1]
    later = when + dt.timedelta(seconds=90)
    assert await writer.write([(close, {"rid": "r1", "when": later})]) == [1]
    assert await writer.write([(close, {"rid": "r1", "when": later})]) == [0]
    async with engine.connect() as conn:
        got = (await conn.execute(sa.select(REQUESTS))).mappings().one()
    assert got["requested_at"] == when and got["closed_at"] == later
    assert got["is_test"] is True and got["overflow"] is False
    assert got["groups"] == "" and got["priority"] == 0 and got["status"] == "cancelled"


async def test_postgres_writer_survives_losing_its_connection(postgres_url: str) -> None:
    """A terminated connection (a restarted database) costs no write: the failed batch is
    retried on a fresh connection."""
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    writer = committer_for(engine)
    assert isinstance(writer, AsyncpgCommitter)
    try:
        assert await writer.write([(SCHOOLS.insert(), school("before"))]) == [1]
        async with engine.begin() as conn:
            killed = await conn.scalar(
                sa.text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where application_name = :name and datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            )
        assert killed >= 1  # the lanes that had connected
        assert await writer.write([(SCHOOLS.insert(), school("after"))]) == [1]
        assert await school_ids(engine) == {"gbefore", "gafter"}
    finally:
        await writer.close()
        await engine.dispose()


async def test_postgres_lanes_commit_side_by_side_and_keep_each_callers_order(
    postgres_url: str,
) -> None:
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    writer = on_lanes(engine, 2)  # several lanes' guarantees; the default is one
    assert isinstance(writer, AsyncpgCommitter) and writer.lanes > 1

    async def caller(c: int) -> list[int]:
        outcomes = []
        for i in range(20):  # each write waits for the last: one caller's order
            unit = [(SCHOOLS.insert(), school(f"{c}-{i}"))]
            outcomes.append(len(await writer.write(unit, key=f"caller-{c}")))
        return outcomes

    try:
        await asyncio.gather(*(caller(c) for c in range(10)))
        async with engine.connect() as conn:
            n = await conn.scalar(sa.text("select count(*) from schools where id like 'g%'"))
            lanes = await conn.scalar(
                sa.text("select count(*) from pg_stat_activity where application_name = :n "
                        "and datname = current_database()"),  # not other tests' writers
                {"n": APPLICATION_NAME},
            )
        assert n == 200 and 1 < lanes <= writer.lanes
    finally:
        await writer.close()
        await engine.dispose()


async def test_postgres_lanes_take_shared_rows_in_one_order(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Units that lock a row of their own (their key's) and then a row every lane shares
    (as an accept locks its request, then its tutor) never deadlock across lanes: each
    batch takes the shared rows in ``order``. Without the order, two lanes' batches would
    take them in opposite orders, and PostgreSQL breaks such a cycle only after a second.

    A batch gives up a lock wait after BATCH_LOCK_WAIT_MS whatever its cause (on a loaded
    machine another lane's batch may simply be slow), so here the limit is longer than
    PostgreSQL's deadlock check: a cycle shows as "deadlock detected", a wait does not."""
    monkeypatch.setattr(
        broker.commit.postgres, "BEGIN_BATCH", "BEGIN; SET LOCAL lock_timeout = 10000"
    )
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    writer = on_lanes(engine, 2)  # several lanes' guarantees; the default is one
    assert isinstance(writer, AsyncpgCommitter) and writer.lanes > 1
    bump = sa.text("update schools set low_grade = low_grade + 1 where id = :id")
    shared = ["gshared-a", "gshared-b", "gshared-c"]
    try:
        await writer.write([(SCHOOLS.insert(), school(f"own{k}")) for k in range(16)])
        await writer.write([(SCHOOLS.insert(), school(s[1:])) for s in shared])

        async def unit(i: int) -> None:
            own, row = f"gown{i % 16}", shared[(i * 7) % 3]
            await writer.write(
                [Step(bump, {"id": own}, expect=1), Step(bump, {"id": row}, expect=1)],
                key=own,
                order=row,
            )

        with caplog.at_level("INFO", logger="broker.commit"):
            async with asyncio.timeout(60):  # without the order: cycles, a second each
                await asyncio.gather(*(unit(i) for i in range(600)))
        assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
        assert not [r for r in caplog.records if "failed" in r.getMessage()]
        async with engine.connect() as conn:
            total = await conn.scalar(
                sa.text("select sum(low_grade) from schools where id like 'gshared-%'")
            )
        assert total == 600
    finally:
        await writer.close()
        await engine.dispose()


@pytest.fixture
async def one_lane_postgres(
    postgres_url: str,
) -> AsyncIterator[tuple[AsyncEngine, AsyncpgCommitter]]:
    """An engine on a migrated PostgreSQL database and its native committer on one lane,
    so that writes made together share a batch."""
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    writer = one_lane(engine)
    assert isinstance(writer, AsyncpgCommitter)
    try:
        yield engine, writer
    finally:
        await writer.close()
        await engine.dispose()


async def test_postgres_batch_gives_up_a_lock_cycle_with_another_process(
    one_lane_postgres: tuple[AsyncEngine, AsyncpgCommitter], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes' transactions can wait for each other's rows (a unit's two rows
    here, a racing accept's request row there). A batch's transaction waits
    BATCH_LOCK_WAIT_MS, not PostgreSQL's deadlock_timeout (a second), then gives up its
    locks (the cycle is gone) and runs again, whole (not one by one); the lane keeps its
    connection, and every write happens once.

    The test must close the cycle before the batch gives up: a batch that gave up first
    runs again without a limit, and the test's row then makes a real deadlock. On a busy
    machine the test's probe and its statement can take longer than 200 ms (with a limit
    of 800 ms against PostgreSQL's 1 s deadlock check, CI once took longer than that), so
    here this database's deadlock check waits 30 s (a superuser's setting; the test pool
    resets it) and the batch's limit is 3 s, still well short of it."""
    monkeypatch.setattr(
        broker.commit.postgres, "BEGIN_BATCH", "BEGIN; SET LOCAL lock_timeout = 3000"
    )
    engine, writer = one_lane_postgres
    async with engine.connect() as admin:  # before any connection below is made
        database = await admin.scalar(sa.text("select current_database()"))
        await admin.execute(sa.text(f'ALTER DATABASE "{database}" SET deadlock_timeout = \'30s\''))
        await admin.commit()
    await engine.dispose()  # the pool's connections predate the setting
    given_up = metrics.REGISTRY.get_sample_value("hh_writer_lock_give_ups_total")
    assert given_up is not None
    bump = sa.text("update schools set low_grade = low_grade + 1 where id = :id")
    waiting = sa.text(
        "select count(*) from pg_stat_activity where application_name = :name "
        "and datname = current_database() and wait_event_type = 'Lock'"
    )
    await writer.write([(SCHOOLS.insert(), school(k)) for k in ("a", "b")])
    conn = writer._conns[0]
    assert await conn.fetchval("SHOW deadlock_timeout") == "30s"
    async with engine.connect() as other, engine.connect() as probe:  # the other process
        assert await other.scalar(sa.text("SHOW deadlock_timeout")) == "30s"
        await other.execute(bump, {"id": "gb"})
        with caplog.at_level("INFO", logger="broker.commit"):
            writes = [  # one unit: row a, then row b (held by the other process)
                asyncio.ensure_future(writer.write(
                    [Step(bump, {"id": "ga"}, expect=1), Step(bump, {"id": "gb"}, expect=1)]
                ))
            ]
            for _ in range(100):  # until the batch waits for row b (or gave up)
                if writes[0].done() or await probe.scalar(waiting, {"name": APPLICATION_NAME}):
                    break
                await asyncio.sleep(0.02)
            await other.execute(bump, {"id": "ga"})  # the cycle: a is the batch's
            await other.commit()
            assert [await asyncio.wait_for(w, 10) for w in writes] == [[1, 1]]
    said = [r.getMessage() for r in caplog.records]
    gave_up = [m for m in said if "gave up waiting for a row lock" in m]
    assert len(gave_up) == 1 and "lock timeout" in gave_up[0], said
    assert writer.lock_give_ups == 1
    assert metrics.REGISTRY.get_sample_value("hh_writer_lock_give_ups_total") == given_up + 1
    assert not [m for m in said if "failed" in m], said  # not retried one by one
    assert writer._conns[0] is conn
    async with engine.connect() as check:
        grades = dict(
            (await check.execute(sa.text(
                "select id, low_grade from schools where id in ('ga', 'gb')"
            ))).all()
        )
    assert grades == {"ga": 2, "gb": 2}


async def test_postgres_one_statement_is_sent_alone(
    one_lane_postgres: tuple[AsyncEngine, AsyncpgCommitter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit of one statement goes without BEGIN and COMMIT (one round trip, its own
    transaction, durable when it returns), also when its batch holds others like it; a
    unit of several statements goes in one transaction; a statement alone that fails
    leaves nothing to roll back and the connection works."""
    engine, writer = one_lane_postgres
    sent: list[str] = []
    for name in ("execute", "fetch"):
        real = getattr(asyncpg.Connection, name)

        async def spy(self, query, *args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
            sent.append(query.split()[0].upper())
            return await _real(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    assert await writer.write([(SCHOOLS.insert(), school("one"))]) == [1]
    assert sent == ["INSERT"]
    sent.clear()
    assert await writer.write(
        [(SCHOOLS.insert(), school("two")), (SCHOOLS.insert(), school("three"))]
    ) == [1, 1]
    assert sent == ["BEGIN;", "INSERT", "INSERT", "COMMIT"]
    sent.clear()
    assert await asyncio.gather(
        writer.write([(SCHOOLS.insert(), school("five"))]),
        writer.write([(SCHOOLS.insert(), school("six"))]),
    ) == [[1], [1]]
    assert sent == ["INSERT", "INSERT"]
    sent.clear()
    with pytest.raises(IntegrityError):
        await writer.write([(SCHOOLS.insert(), school("one"))])
    assert "ROLLBACK" not in sent
    conn = writer._conns[0]
    assert await writer.write([(SCHOOLS.insert(), school("four"))]) == [1]
    assert writer._conns[0] is conn
    assert await school_ids(engine) == {"gone", "gtwo", "gthree", "gfour", "gfive", "gsix"}


def test_prepare_refuses_a_missing_parameter(sqlite_url: str) -> None:
    prepared = prepare(
        REQUESTS.delete().where(REQUESTS.c.id == sa.bindparam("rid")),
        create_engine(sqlite_url).dialect,
    )
    with pytest.raises(PrepareError):
        prepared.args({})
    assert prepared.args({"rid": "x"}) == ("x",)


@pytest.mark.parametrize("n", [0, 3])
async def test_close_finishes_pending_writes(sqlite_url: str, n: int) -> None:
    await prepare_database(sqlite_url)
    engine = create_engine(sqlite_url)
    writer = committer_for(engine)
    pending = [
        asyncio.ensure_future(writer.write([(SCHOOLS.insert(), school(f"c{i}"))])) for i in range(n)
    ]
    await asyncio.sleep(0)
    await writer.close()
    assert [await p for p in pending] == [[1]] * n
    await engine.dispose()


async def test_sqlite_writer_reports_a_database_it_cannot_open(tmp_path: Path) -> None:
    """An unopenable file fails each write with an error (never a hang), and the writer
    keeps serving once the file can be opened."""
    missing = tmp_path / "not-yet" / "hh.db"
    engine = create_engine(f"sqlite+aiosqlite:///{missing}")
    writer = committer_for(engine)
    assert isinstance(writer, SqliteCommitter)
    try:
        with pytest.raises(sa.exc.DBAPIError):
            await asyncio.wait_for(writer.write([(SCHOOLS.insert(), school(1))]), 10)
        missing.parent.mkdir()
        await prepare_database(f"sqlite+aiosqlite:///{missing}")
        assert await asyncio.wait_for(writer.write([(SCHOOLS.insert(), school(2))]), 10) == [1]
    finally:
        await writer.close()
        await engine.dispose()


async def test_postgres_writer_reports_an_unreachable_database() -> None:
    from tests.broker.harness import free_port

    engine = create_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    writer = committer_for(engine)
    assert isinstance(writer, AsyncpgCommitter)
    try:
        with pytest.raises(sa.exc.DBAPIError):
            await asyncio.wait_for(writer.write([(SCHOOLS.insert(), school(1))]), 20)
    finally:
        await writer.close()
        await engine.dispose()


async def test_postgres_taking_no_writes_is_an_outage_logged_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that takes no writes (a standby, or a primary demoted in a failover: SQLSTATE
    25006) fails every batch alike: each caller gets the error with nothing written, the
    log has one paced line for the outage, not a warning per batch, and writes work again
    once it takes them."""
    import asyncpg

    from broker.commit import base
    from broker.outages import OutageLog, kind_of

    monkeypatch.setattr(base, "_outages", OutageLog(base.log))  # a fresh pace
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    writer = committer_for(engine)
    database = postgres_url.rsplit("/", 1)[1]
    # opened before the change, this session keeps taking writes (ALTER DATABASE applies to
    # new sessions), so it can turn it back
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))

    async def writes_taken(on: bool) -> None:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = '
                            + ("off" if on else "on"))
        await admin.execute(  # the writer's connections start again, under the new default
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where application_name = $1 and datname = current_database()", APPLICATION_NAME)

    try:
        assert await writer.write([(SCHOOLS.insert(), school("before"))]) == [1]
        await writes_taken(False)
        with caplog.at_level("INFO", logger="broker.commit"):
            for n in range(5):
                outcomes = await asyncio.gather(
                    *(writer.write([(SCHOOLS.insert(), school(f"ro{n}{i}"))]) for i in range(3)),
                    return_exceptions=True,
                )
                assert all(isinstance(o, Exception) and kind_of(o) == "database"
                           for o in outcomes), outcomes
        said = [r.getMessage() for r in caplog.records]
        assert len([m for m in said if "database unavailable: a batch of" in m]) == 1, said
        assert not [m for m in said if "retrying each alone" in m], said
        assert not [r for r in caplog.records if r.exc_info]
        await writes_taken(True)
        assert await writer.write([(SCHOOLS.insert(), school("after"))]) == [1]
        assert await school_ids(engine) == {"gbefore", "gafter"}
    finally:
        await admin.close()
        await writer.close()
        await engine.dispose()


async def test_postgres_units_of_one_statement_hold_no_lock_for_each_other(
    one_lane_postgres: tuple[AsyncEngine, AsyncpgCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of one-statement units commits each as it goes: while the batch waits for a
    row another process holds (b), the row its earlier unit wrote (a) is free, so the
    other process's write to it goes through and no cycle forms (before, the batch held a
    until its COMMIT, and the two waited for each other until one gave up); and a's caller
    is answered once a committed, not when the batch ends."""
    engine, writer = one_lane_postgres
    bump = sa.text("update schools set low_grade = low_grade + 1 where id = :id")
    await writer.write([(SCHOOLS.insert(), school(k)) for k in ("a", "b")])
    async with engine.connect() as other:
        await other.execute(bump, {"id": "gb"})
        with caplog.at_level("INFO", logger="broker.commit"):
            writes = [
                asyncio.ensure_future(writer.write([Step(bump, {"id": i}, expect=1)]))
                for i in ("ga", "gb")
            ]
            grade = sa.text("select low_grade from schools where id = 'ga'")
            async with engine.connect() as probe:
                for _ in range(500):  # a committed while b waits (answered with the batch)
                    if await probe.scalar(grade) == 1:
                        break
                    await probe.rollback()
                    await asyncio.sleep(0.01)
                assert await probe.scalar(grade) == 1
            assert await asyncio.wait_for(writes[0], 5) == [1]  # while b still waits
            assert not writes[1].done()
            async with asyncio.timeout(5):  # a held: this would wait for the batch
                await other.execute(bump, {"id": "ga"})
            await other.commit()
            assert [await asyncio.wait_for(w, 10) for w in writes] == [[1], [1]]
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    async with engine.connect() as check:
        grades = dict((await check.execute(sa.text(
            "select id, low_grade from schools where id in ('ga', 'gb')"
        ))).all())
    assert grades == {"ga": 2, "gb": 2}


async def test_postgres_a_statement_alone_gives_up_a_long_lock_wait_then_waits(
    one_lane_postgres: tuple[AsyncEngine, AsyncpgCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    """A statement alone waits BATCH_LOCK_WAIT_MS for a row lock (a fused statement can
    be half of a cycle too), then runs again without a limit: it is answered once the
    other transaction ends, and happens once."""
    engine, writer = one_lane_postgres
    bump = sa.text("update schools set low_grade = low_grade + 1 where id = :id")
    await writer.write([(SCHOOLS.insert(), school("a"))])
    async with engine.connect() as other:
        await other.execute(bump, {"id": "ga"})
        with caplog.at_level("INFO", logger="broker.commit"):
            write = asyncio.ensure_future(writer.write([Step(bump, {"id": "ga"}, expect=1)]))
            for _ in range(500):  # until it gave up once (a fake clock cannot hold a lock)
                if writer.lock_give_ups:
                    break
                await asyncio.sleep(0.01)
            assert writer.lock_give_ups == 1 and not write.done()
            await other.commit()
            assert await asyncio.wait_for(write, 10) == [1]
    assert [r for r in caplog.records if "gave up waiting" in r.getMessage()]
    async with engine.connect() as check:
        assert await check.scalar(
            sa.text("select low_grade from schools where id = 'ga'")
        ) == 2


async def test_postgres_a_batch_failing_part_way_answers_what_committed(
    one_lane_postgres: tuple[AsyncEngine, AsyncpgCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    """Units of one statement commit one by one: when one fails (a duplicate here), those
    before it already committed and are answered as such, not run again (a second insert
    would fail as a duplicate); it fails alone, and those after it run alone."""
    engine, writer = one_lane_postgres
    await writer.write([(SCHOOLS.insert(), school("dup"))])
    with caplog.at_level("WARNING", logger="broker.commit"):
        outcomes = await asyncio.gather(
            writer.write([(SCHOOLS.insert(), school("x"))]),
            writer.write([(SCHOOLS.insert(), school("dup"))]),
            writer.write([(SCHOOLS.insert(), school("y"))]),
            writer.write([(SCHOOLS.insert(), school("z"))]),
            return_exceptions=True,
        )
    assert outcomes[0] == [1] and outcomes[2] == [1] and outcomes[3] == [1]
    assert isinstance(outcomes[1], IntegrityError)
    assert await school_ids(engine) == {"gdup", "gx", "gy", "gz"}
    retried = [r.getMessage() for r in caplog.records if "retrying each alone" in r.getMessage()]
    assert retried and retried[0].startswith("a batch of 3 writes failed"), retried


async def test_postgres_a_write_whose_answer_was_lost_is_answered_by_its_retry(
    postgres_url: str,
) -> None:
    """The connection breaks after PostgreSQL committed a guarded write and before its
    answer came back, and PostgreSQL cannot be reached for a moment (one process cut off
    from it: the fault suite's ``test_one_process_cut_off_from_postgres``, seed 25, where a
    cancel so cut was answered ``internal`` though it had happened). The write's outcome is
    in doubt; its retry waits for the database and answers what is now true (the guard sees
    the first run's change), never an error that would say nothing changed."""
    await prepare_database(postgres_url)
    engine = create_engine(postgres_url)
    parts = sa.engine.make_url(postgres_url)
    link = await Link(parts.port or 5432).start()
    writer = AsyncpgCommitter(
        asyncpg_dsn(parts.set(host="127.0.0.1", port=link.port)), engine.dialect, lanes=1
    )
    try:
        await writer.write([(SCHOOLS.insert(), school("a"))])  # connected through the link
        link.delay_s = 0.5  # each way: the answer comes back 0.5 s after the commit

        async def renamed() -> bool:
            async with engine.connect() as conn:
                name = await conn.scalar(sa.text("select name from schools where id = 'ga'"))
            return bool(name == "first")

        once = Step(  # guarded by the name it changes: a second run changes nothing
            SCHOOLS.update()
            .where(SCHOOLS.c.id == "ga", SCHOOLS.c.name == "G")
            .values(name="first"),
            {},
            expect=1,
        )
        writing = asyncio.ensure_future(writer.write([once]))
        for _ in range(200):  # committed, its answer still in the link
            if await renamed():
                break
            await asyncio.sleep(0.01)
        assert not writing.done()
        await link.cut()  # the answer is lost; new connections are refused
        link.delay_s = 0.0
        await asyncio.sleep(0.5)
        assert not writing.done(), "answered while the database could not be asked"
        await link.restore()
        outcome = await asyncio.wait_for(writing, 5)
        assert outcome.failed == 0 and outcome == [0]  # the retry's guard: already renamed
        assert await renamed()

        async def writers() -> int:
            async with engine.connect() as conn:
                return int(await conn.scalar(
                    sa.text("select count(*) from pg_stat_activity where application_name = :n "
                            "and datname = current_database()"),
                    {"n": APPLICATION_NAME},
                ) or 0)

        for _ in range(200):  # the retry's connection is closed once it is done, not kept
            if await writers() == 0:
                break
            await asyncio.sleep(0.01)
        assert await writers() == 0
        assert await writer.write([(SCHOOLS.insert(), school("b"))]) == [1]  # the lane again
    finally:
        await writer.close()
        await engine.dispose()
        await link.close()
