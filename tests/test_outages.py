"""broker.outages.kind_of: which failures are a dependency outage (one paced log line)
and which are not (logged in full). Each case is how the error reaches a handler: the
writer and the hot reads wrap asyncpg's errors in SQLAlchemy's ``DBAPIError``."""

from __future__ import annotations

import asyncpg.exceptions as pg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from broker.outages import kind_of


def wrapped(error: Exception) -> DBAPIError:
    return DBAPIError("select 1", (), error)


CASES = [
    # PostgreSQL stopping or starting: found by a SIGTERM during an outage, where the
    # message ("the database system is shutting down") named no word the text check knew
    (wrapped(pg.CannotConnectNowError("the database system is shutting down")), "database"),
    (wrapped(pg.AdminShutdownError("terminating connection due to administrator command")),
     "database"),
    (wrapped(pg.CrashShutdownError("terminating connection because of crash")), "database"),
    (wrapped(pg.ConnectionDoesNotExistError("connection was closed in the middle")), "database"),
    (wrapped(pg.TooManyConnectionsError("sorry, too many clients already")), "database"),
    # the server out of a resource, or taking no writes (a failover under way)
    (wrapped(pg.DiskFullError('could not extend file "base/16384/16385"')), "database"),
    (wrapped(pg.OutOfMemoryError("out of memory")), "database"),
    (wrapped(pg.ReadOnlySQLTransactionError(
        "cannot execute INSERT in a read-only transaction")), "database"),
    (wrapped(ConnectionRefusedError(111, "Connection refused")), "database"),
    (OperationalError("select", {}, ConnectionRefusedError(111, "refused")), "database"),
    # a statement on a connection the server had just ended, as asyncpg reports it
    (pg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
     "database"),
    (wrapped(pg.InternalClientError("cannot switch to state 12; another operation (2) is in "
                                    "progress")), "database"),
    # asyncpg, unwrapped, when PostgreSQL stops while SQLAlchemy sets a new connection up
    (pg.InterfaceError("connection is closed"), "database"),
    (RedisConnectionError("Connection refused"), "redis"),
    (ConnectionResetError(104, "reset"), "service"),
    # uvloop's word for a write to a connection Redis had just closed (the fault suite)
    (RuntimeError("unable to perform operation on <TCPTransport closed=True reading=False "
                  "0x55d8e88ce0b0>; the handler is closed"), "service"),
    (RuntimeError("Event loop is closed"), None),
    # not outages: the statement or the data is wrong, and that is a bug to see in full
    (wrapped(pg.UniqueViolationError("duplicate key value")), None),
    (wrapped(pg.UndefinedColumnError("column x does not exist")), None),
    (IntegrityError("insert", {}, Exception("UNIQUE constraint failed")), None),
    (pg.InternalClientError("unexpected codec"), None),
    (pg.InterfaceError("cannot call Connection.fetch(): connection has been released back "
                       "to the pool"), None),
    (KeyError("a bug"), None),
    (ValueError("bad"), None),
]


@pytest.mark.parametrize(("error", "kind"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_kind_of(error: Exception, kind: str | None) -> None:
    assert kind_of(error) == kind
