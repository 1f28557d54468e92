"""Database plumbing: async engines for SQLite and PostgreSQL, naming conventions, plumbing tables.

Every service owns its database; each declares its own ``Base`` (see ``service_metadata``) so its metadata
is its own, and calls ``plumbing_tables(Base.metadata)`` for the outbox, inbox,
dead-letter, idempotency and worker-heartbeat tables it shares with the others.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both backends; SQLite stores them naive, we give UTC back."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def service_metadata() -> sa.MetaData:
    """A service's own MetaData, with the constraint names every migration relies on."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


# Each service's models declare, as a class that type checkers can follow:
#     class Base(DeclarativeBase):
#         metadata = service_metadata()
#         type_annotation_map = TYPE_ANNOTATION_MAP
TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UTCDateTime()}


# Every query here is a short OLTP query. PostgreSQL's JIT compiles a plan whose estimated cost
# passes jit_above_cost, and after an ANALYZE of a busy service_requests table the duplicate lookup
# of a 311 batch crossed it: 30-70 ms of compiling per execution for a 0.3 ms query, and the intake
# fell from ~2,000 to ~700 requests/s (docs/performance.md). Autovacuum ANALYZEs on its own in
# production, so this is not a benchmark artefact.
PG_SESSION_SETTINGS = {"jit": "off"}


def dialect_insert(table: Any, dialect_name: str) -> Any:
    """INSERT for ``table`` in the dialect's own flavour, which offers ON CONFLICT (PostgreSQL
    and SQLite, the two backends the services run on)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table)


READ_ONLY_OPTION = "citystat_read_only"  # a connection's execution option: the unit only reads


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # Let SQLAlchemy, not the driver, issue BEGIN: savepoints then work (the driver's
            # legacy mode would commit at RELEASE), and IMMEDIATE takes the write lock up front
            # so the api and worker processes wait on busy_timeout instead of failing with
            # "database is locked" when a reader tries to become a writer.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # straight to the driver: one hop to its thread (a cursor through SQLAlchemy's adapter is three);
            # a read-only unit's transaction is deferred: it never takes the write lock
            begin = "BEGIN" if conn.get_execution_options().get(READ_ONLY_OPTION) else "BEGIN IMMEDIATE"
            await_only(conn.connection.dbapi_connection.driver_connection.execute(begin))

        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pool_pre_ping: with asyncpg it costs three round trips (BEGIN; ';'; ROLLBACK) on every
        # checkout. asyncpg notices a closed socket by itself (database restart, cut connection),
        # so a checkout only has to look at that flag; a connection that breaks mid-request is
        # invalidated by SQLAlchemy's disconnect handling (the request gets a 503, the next one a
        # fresh connection).
        pool_timeout=5,
        # Fail fast when the database is unreachable: a 503 in seconds, never a hung request.
        connect_args={"timeout": 5, "command_timeout": 30, "server_settings": PG_SESSION_SETTINGS},
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def _closed_check(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise sa.exc.DisconnectionError("connection closed by the server")  # the pool retries with a new one

    return engine


# SQLite: every statement through SQLAlchemy's aiosqlite adapter is three or four hops to the
# driver's thread and back (cursor, execute, fetch, close), and each hop waits for the event loop to
# come round, behind the HTTP work queued on it. The 311 intake's batch made ~25 of them while it
# held SQLite's one write lock. These two run a statement of fixed text in one hop.
async def _sqlite_driver(session: AsyncSession) -> Any:
    """The session's aiosqlite connection, its transaction begun (BEGIN IMMEDIATE, see create_engine)."""
    conn = await session.connection()
    return (await conn.get_raw_connection()).driver_connection


async def sqlite_fetch_all(session: AsyncSession, stmt: sa.TextClause, params: dict[str, Any] | None = None) -> list[Any]:
    """SQLite: the rows of a ``text()`` read in the session's transaction, through the driver in one
    hop (``:name`` parameters as SQLite takes them; values as SQLite returns them, no result types)."""
    driver = await _sqlite_driver(session)
    with _as_sqlalchemy_error(stmt.text):
        return list(await driver.execute_fetchall(stmt.text, params or {}))


async def sqlite_insert_rows(session: AsyncSession, parts: Sequence[tuple[sa.Table, list[dict[str, Any]]]]) -> None:
    """SQLite: rows (dicts with the same keys, defaults not applied) into their tables, a hop per
    table, in the session's transaction; each value through its column type's bind processing, so
    they are stored exactly as a SQLAlchemy insert stores them (UTC text times, JSON text, 0/1)."""
    driver = await _sqlite_driver(session)
    dialect = session.get_bind().dialect
    for table, rows in parts:
        if not rows:
            continue
        sql, processors = _sqlite_insert(table, tuple(rows[0]), dialect)
        params = [tuple(p(row[c]) if p is not None else row[c] for c, p in processors) for row in rows]
        with _as_sqlalchemy_error(sql):
            await driver.executemany(sql, params)


@contextlib.contextmanager
def _as_sqlalchemy_error(sql: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (sa.exc.IntegrityError, OperationalError...),
    which is what callers catch (an Idempotency-Key race, a locked or missing database)."""
    import sqlite3

    try:
        yield
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc


async def sqlite_write(engine: AsyncEngine, stmt: sa.TextClause, params: dict[str, Any]) -> list[Any]:
    """SQLite: one statement of fixed text in a transaction of its own (the write lock for three
    hops: BEGIN IMMEDIATE, the statement, COMMIT); its rows, when it returns any."""
    async with engine.begin() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        with _as_sqlalchemy_error(stmt.text):
            return list(await driver.execute_fetchall(stmt.text, params))


def sqlite_time(at: datetime) -> str:
    """A time as UTCDateTime stores it on SQLite (SQLAlchemy's fixed-width text: compared as text,
    it compares as time), for statements that go straight to the driver."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@functools.lru_cache(maxsize=64)
def _sqlite_insert(table: sa.Table, columns: tuple[str, ...], dialect: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    return sql, tuple((c, table.c[c].type._cached_bind_processor(dialect)) for c in columns)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


# PostgreSQL: a commit that wrote outbox rows notifies this channel; the outbox relay listens.
OUTBOX_NOTIFY_CHANNEL = "citystat_outbox"


@dataclass(frozen=True)
class PlumbingTables:
    outbox: sa.Table
    inbox: sa.Table
    dead_letter: sa.Table
    idempotency: sa.Table
    heartbeat: sa.Table


def plumbing_tables(metadata: sa.MetaData) -> PlumbingTables:
    """The tables every service keeps beside its own, declared on the service's metadata."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        # A relay claims rows with a lease: its token, until a time; an expired lease frees them.
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Index("ix_outbox_pending", "sent_at", "id"),
        sa.Index("ix_outbox_created_at", "created_at"),
    )
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
    )
    dead_letter = sa.Table(
        "dead_letter",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(100), nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    idempotency = sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    heartbeat = sa.Table(
        "worker_heartbeat",
        metadata,
        sa.Column("component", sa.String(100), primary_key=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    return PlumbingTables(outbox, inbox, dead_letter, idempotency, heartbeat)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
