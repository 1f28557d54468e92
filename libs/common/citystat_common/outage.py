"""Which failures are the infrastructure being away (database, broker), as opposed to a bug or
bad content. One classification for every caller: the problem handlers (503 + Retry-After instead
of 500), the Open311 error documents, and the consumer (pause and retry instead of dead-lettering).

An error reaches us in many shapes: raw from asyncpg at connect (SQLAlchemy lets a non-DBAPI error
through), translated into the asyncpg dialect's adapted ``Error`` and wrapped in a generic
``sqlalchemy.exc.DBAPIError`` (a 57P03 "the database system is starting up" at connect is neither
an OperationalError nor flagged ``connection_invalidated``), or buried in ``__cause__`` /
``__context__`` of whatever the domain code raised. So the whole chain is walked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import sqlalchemy.exc as sa_exc

# SQLSTATE classes and codes that mean "the server is not there for us now", not "your SQL is wrong":
# 08 connection exception, 53 insufficient resources (too many clients, disk full, out of memory),
# 57P0x operator intervention (admin shutdown, crash shutdown, cannot connect now, database dropped,
# idle session timeout), 3D000 the database does not exist (being dropped or recreated).
_DOWN_SQLSTATE_PREFIXES = ("08", "53", "57P")
_DOWN_SQLSTATES = {"3D000"}

# Text of the same conditions, for errors that carry no SQLSTATE (a driver that lost the socket,
# SQLite's file that cannot be opened). Lower case.
_DOWN_MESSAGES = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "connection was closed in the middle of operation",
    "connection is closed",
    "connection reset",
    "connection refused",
    "could not connect to server",
    "unable to open database file",
    "disk i/o error",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        orig = getattr(e, "orig", None)  # sqlalchemy DBAPIError -> the driver's error
        if isinstance(orig, BaseException):
            todo.append(orig)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)


# SQLite result codes of a file that is not there for us (as opposed to "no such table" or a syntax
# error, which sqlite3 also raises as OperationalError): cannot open, I/O error, disk full.
_DOWN_SQLITE_CODES = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL")


def _one_is_database_down(e: BaseException) -> bool:
    if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):  # pool: no connection to be had
        return True
    sqlstate = getattr(e, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate in _DOWN_SQLSTATES or sqlstate.startswith(_DOWN_SQLSTATE_PREFIXES)):
        return True
    if isinstance(e, sqlite3.Error):
        return str(getattr(e, "sqlite_errorname", "")).startswith(_DOWN_SQLITE_CODES)
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
        return True  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    if isinstance(e, sa_exc.InvalidRequestError):
        return False  # "This Connection is closed": our own misuse of a connection, a bug
    if type(e).__module__.startswith(("asyncpg", "sqlalchemy")):
        text = str(e).lower()
        return any(m in text for m in _DOWN_MESSAGES)
    return False


def is_database_down(exc: BaseException) -> bool:
    """True when ``exc`` (or anything it was raised from) says the database is unreachable,
    starting up, shutting down, or dropped the connection: the request may be retried."""
    return any(_one_is_database_down(e) for e in _chain(exc))


def is_broker_down(exc: BaseException) -> bool:
    """True when the Kafka broker could not be reached or did not answer in time."""
    from aiokafka import errors as kafka_errors

    broker_errors = (
        kafka_errors.KafkaConnectionError,
        kafka_errors.NodeNotReadyError,
        kafka_errors.RequestTimedOutError,
        kafka_errors.KafkaTimeoutError,
        kafka_errors.NotLeaderForPartitionError,
        kafka_errors.LeaderNotAvailableError,
        kafka_errors.UnknownTopicOrPartitionError,
        kafka_errors.CoordinatorNotAvailableError,
        kafka_errors.NotCoordinatorError,
    )
    return any(isinstance(e, broker_errors) for e in _chain(exc))


def is_infrastructure_down(exc: BaseException) -> bool:
    """The database or the broker is away: nothing is wrong with the work itself; retry later."""
    return is_database_down(exc) or is_broker_down(exc)
