"""Knowing a dependency outage when one happens, and saying so once.

While PostgreSQL or Redis cannot be reached, every event that needs it fails the same way;
a traceback per failure (hundreds a second) would bury everything else in the log. An
outage is logged as one line per kind at most every :data:`REPORT_EVERY_S`, with the count
of failures not reported since, and never with a traceback. Anything else unexpected is
still logged in full: :meth:`OutageLog.failure` does both, for every place that meets one.
"""

from __future__ import annotations

import logging

from asyncpg.exceptions import InterfaceError as PgInterfaceError
from asyncpg.exceptions import InternalClientError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from broker.log_pace import LogPace

REPORT_EVERY_S = 10.0

_UNAVAILABLE = (
    OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError,
    ConnectionError, TimeoutError, OSError,
)


# SQLSTATEs of a connection the server ended or cannot serve, whatever the statement:
# class 08 (connection exception) and a shutdown or start-up under way (57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now: "the database system is
# shutting down"). broker/db/reader.py runs a read again on a new connection after one.
ENDED_STATES = ("08", "57P01", "57P02", "57P03")
# ... and, for an outage, also the server out of a resource (class 53: its disk full,
# out of memory, no connection slot left), and a server that takes no writes (25006
# read_only_sql_transaction: a standby, or a primary being demoted in a failover). Each
# fails every write the same way for as long as it lasts: one paced line, not a
# traceback per event, with the server's own words in the line.
_UNAVAILABLE_STATES = (*ENDED_STATES, "53", "25006")


def summary(exc: BaseException) -> str:
    """The first line of ``exc``'s message, at most 200 characters (a log line's worth)."""
    text = str(exc)
    if not text and isinstance(exc, TimeoutError):  # asyncio.timeout's: no message of its own
        return "no answer in time"
    return text.splitlines()[0][:200] if text else ""


def kind_of(exc: BaseException) -> str | None:
    """``"database"``, ``"redis"`` or ``None`` when ``exc`` is not a dependency outage."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "redis"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "database"
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES):
        return "database"
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, InternalClientError) and "cannot switch to state" in str(cause):
        # asyncpg, a statement sent on a connection the server had ended (a restart, an
        # administrator's pg_terminate_backend) before the client read that it had:
        # "cannot switch to state 15; another operation (2) is in progress". Our writer
        # and readers never share a connection between two statements at once.
        return "database"
    if isinstance(cause, PgInterfaceError) and "connection is closed" in str(cause):
        # asyncpg, unwrapped: a connection PostgreSQL closed while SQLAlchemy was still
        # setting it up (its type codecs, on connect), as a stopping server does (the
        # fault suite's PostgreSQL stopped during churn, seed 16, in the worker)
        return "database"
    if isinstance(exc, RuntimeError) and "handler is closed" in str(exc):
        # uvloop, writing to a connection the other side just closed (Redis restarting):
        # "unable to perform operation on <TCPTransport closed=True ...>; the handler is
        # closed", raised where asyncio's own loop would raise ConnectionResetError
        return "service"
    if isinstance(exc, _UNAVAILABLE):
        return "database" if isinstance(exc, DBAPIError) else "service"
    if isinstance(exc, DBAPIError):
        text = str(exc.orig or exc).lower()
        if any(w in text for w in ("connect", "closed", "terminat", "shutdown", "timeout")):
            return "database"
    return None


class OutageLog:
    """One line per outage kind, at most every ``every_s`` seconds."""

    def __init__(self, logger: logging.Logger, every_s: float = REPORT_EVERY_S) -> None:
        self.logger = logger
        self.every_s = every_s
        self._paces: dict[str, LogPace] = {}

    def report(self, kind: str, what: str, exc: BaseException) -> None:
        pace = self._paces.get(kind)
        if pace is None:
            pace = self._paces[kind] = LogPace(self.every_s)
        if pace.due():
            self.logger.warning(
                "%s unavailable: %s failed (%s: %s); %d more such failures since the last report",
                kind, what, type(exc).__name__, summary(exc), pace.skipped,
            )

    def failure(
        self, what: str, exc: BaseException, then: str = "", level: int = logging.ERROR
    ) -> None:
        """Log that ``what`` failed with ``exc``: a dependency outage as :meth:`report` does
        (one line per kind every ``every_s``: a loop that runs twice a second, or every
        event, would otherwise log a traceback each time for as long as it lasts); anything
        else as ``"<what> failed<then>"`` at ``level``, with its traceback."""
        kind = kind_of(exc)
        if kind is not None:
            self.report(kind, what, exc)
        else:
            self.logger.log(level, "%s failed%s", what, then, exc_info=exc)
