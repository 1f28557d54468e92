"""Unit of work: owns the transaction and the events of one business operation.

Service functions take a ``UnitOfWork``, change rows through ``uow.session`` and call
``uow.emit(...)``; they never commit. The caller (a router, a consumer handler, a
scheduler) calls ``commit()``, which writes the collected events to the outbox in the
same transaction as the state change: either both are stored or neither is.
"""

from __future__ import annotations

import functools
import weakref
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import DateTime, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from citystat_common.db import (
    OUTBOX_NOTIFY_CHANNEL,
    READ_ONLY_OPTION,
    PlumbingTables,
    UTCDateTime,
    dialect_insert,
    sqlite_insert_rows,
    utcnow,
)
from citystat_common.events import Envelope, Payload, make_event
from citystat_common.logging import current_correlation_id

M = TypeVar("M")


class UnitOfWork:
    """``single_statement=True``, PostgreSQL: the unit's reads run in autocommit, and everything it
    writes goes through ``insert()`` and ``emit()``, which are held back and written at ``commit()``
    by ONE statement (every table's rows and the outbox's, as data-modifying CTEs). A single
    statement is atomic by itself, so it needs no BEGIN and no COMMIT round trip: for the 311
    intake's group commit that is two round trips per batch (duplicate candidates, then the write)
    instead of six. SQLite: an ordinary transaction, but the held rows are written at ``commit()``
    straight through the driver, a hop per table (``db.sqlite_insert_rows``). Do not change ORM
    objects in such a unit.

    ``read_only=True``: for a request that only reads. On PostgreSQL its statements run in
    autocommit: no BEGIN and no ROLLBACK, two round trips fewer per request. Nothing is lost by it:
    at READ COMMITTED each statement of a transaction sees its own snapshot anyway. On SQLite its
    transaction is a deferred BEGIN, not BEGIN IMMEDIATE: it does not wait for writers. It never
    flushes, and every write method of the unit (``insert``, ``put``, ``add_if_absent``, ``emit``,
    ``flush``, ``commit``) refuses: in autocommit a write would be stored at once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tables: PlumbingTables, *,
                 single_statement: bool = False, read_only: bool = False):
        self._sessions = sessions
        self.tables = tables
        self.single_statement = single_statement
        self.read_only = read_only
        self.events: list[Envelope] = []
        self._held: list[tuple[Table, list[dict[str, Any]]]] = []
        self._session: AsyncSession | None = None
        self._deferring = False
        self.dialect = ""  # the database's dialect name ("postgresql", "sqlite"), known inside 'async with'

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside 'async with'")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        if self.read_only:
            # bound to the engine with the read options: the connection is taken at the first read,
            # inside the route, so a database that is down fails there as for any other route
            self._session = self._sessions(bind=_read_engine(self._sessions.kw["bind"]), autoflush=False)
        else:
            self._session = self._sessions()
        self.events = []
        self._held = []
        self.dialect = self._session.get_bind().dialect.name
        self._deferring = self.single_statement and self.dialect in ("postgresql", "sqlite")
        if self._deferring and self.dialect == "postgresql":
            await self._session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.session.rollback()  # a no-op after commit; undoes anything left uncommitted
        finally:
            await self.session.close()
            self._session = None

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot write")

    def emit(self, payload: Payload, *, subject: str, correlation_id: str | None = None) -> Envelope:
        """``correlation_id``: the request's own, when one transaction carries several requests."""
        self._writable()
        envelope = make_event(payload, subject=str(subject), correlation_id=correlation_id or current_correlation_id())
        self.events.append(envelope)
        return envelope

    async def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows (dicts with the same keys, every column they need: a single-statement unit
        applies no column defaults); in a single-statement unit they are written at commit."""
        self._writable()
        if not rows:
            return
        if self._deferring:
            self._held.append((table, rows))
        else:
            await self.session.execute(insert(table), rows)

    async def add_if_absent(self, model: type[M], values: dict[str, Any]) -> M:
        """The ``model`` row with these values' primary key: inserted unless another writer got
        there first (INSERT ... ON CONFLICT DO NOTHING; on PostgreSQL it waits for that writer's
        commit), then read back. For local copies that a consumer and an on-demand lookup both
        fill: with a plain add, whichever commits second fails on the key."""
        self._writable()
        table: Any = model.__table__  # type: ignore[attr-defined]
        stmt = dialect_insert(table, self.dialect).values(**values)
        await self.session.execute(stmt.on_conflict_do_nothing())
        key = tuple(values[c.name] for c in table.primary_key)
        row = await self.session.get(model, key if len(key) > 1 else key[0])
        if row is None:  # only if the values' key differs from what was stored
            raise LookupError(f"{table.name} {key} was not stored")
        return row

    async def put(self, model: type[M], values: dict[str, Any]) -> None:
        """The ``model`` row with these values, inserted or, when its key exists, updated to them:
        one INSERT ... ON CONFLICT DO UPDATE (a read, an insert and a read again before). A copy
        of the row already loaded in this session is brought in step."""
        self._writable()
        table: Any = model.__table__  # type: ignore[attr-defined]
        keys = [c.name for c in table.primary_key]
        changes = {k: v for k, v in values.items() if k not in keys}
        stmt = dialect_insert(table, self.dialect).values(**values)
        await self.session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes))
        key = tuple(values[k] for k in keys)
        loaded = self.session.identity_map.get(self.session.sync_session.identity_key(model, key))
        if loaded is not None:
            for k, v in changes.items():
                set_committed_value(loaded, k, v)

    async def flush(self) -> None:
        self._writable()
        await self.session.flush()

    async def commit(self) -> None:
        self._writable()
        now = utcnow()
        outbox = [_outbox_row(e, now) for e in self.events]
        if self._deferring:
            held, self._held = self._held, []
            if (held or outbox) and self.dialect == "sqlite":
                await sqlite_insert_rows(self.session, [*held, (self.tables.outbox, outbox)])
            elif held or outbox:
                await self.session.execute(*_one_statement([*held, (self.tables.outbox, outbox)], self))
        elif outbox and self.dialect == "postgresql":
            # the events and the relay's wake-up in one statement (one round trip, prepared once)
            await self.session.execute(*_one_statement([(self.tables.outbox, outbox)], self))
        elif outbox:
            await self.session.execute(insert(self.tables.outbox), outbox)
        await self.session.commit()
        self.events = []

    async def rollback(self) -> None:
        await self.session.rollback()
        self.events = []
        self._held = []


_read_engines: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def _read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine (same pool) whose connections a read-only unit uses: autocommit on PostgreSQL,
    a deferred BEGIN on SQLite (``db.READ_ONLY_OPTION``, read by the engine's begin hook)."""
    read = _read_engines.get(engine)
    if read is None:
        options = ({"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql"
                   else {READ_ONLY_OPTION: True})
        read = _read_engines[engine] = engine.execution_options(**options)
    return read


def _one_statement(parts: list[tuple[Table, list[dict[str, Any]]]], uow: UnitOfWork) -> tuple[Any, dict[str, Any]]:
    """PostgreSQL: the rows of several tables in one statement, an INSERT ... SELECT FROM
    json_populate_recordset per table, as CTEs; when the outbox gets rows, the statement also
    wakes the relay. Each table's rows travel as one JSON text (orjson): bound as arrays, a column
    each, asyncpg's per-element encoding (an ABC isinstance check per value) and SQLAlchemy's
    per-value bind processing were ~9% of the intake api's CPU. The server parses every value with
    its column's input function, so types and lengths are checked as by any insert. Datetimes must
    be timezone-aware, as everywhere here: a naive one is refused, as ``UTCDateTime`` refuses it
    (PostgreSQL would otherwise read it in the session's time zone)."""
    parts = [(t, rows) for t, rows in parts if rows]
    for table, rows in parts:
        # the table's time columns only, not a callback per value from orjson (~10x the cost)
        for name in _time_columns(table):
            for row in rows:
                value = row.get(name)
                if value is not None and value.tzinfo is None:
                    raise ValueError(f"naive datetime given to the UTC column {table.name}.{name}")
    signature = tuple((t.name, tuple(rows[0])) for t, rows in parts)
    stmt = _statement_for(signature, uow.tables.outbox)
    params = {f"t{i}": orjson.dumps(rows, default=_json_value).decode() for i, (_, rows) in enumerate(parts)}
    return stmt, params


@functools.lru_cache(maxsize=64)
def _time_columns(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if isinstance(c.type, UTCDateTime | DateTime) and c.type.timezone)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):  # bytea's input format
        return "\\x" + value.hex()
    raise TypeError(f"{type(value).__name__} cannot be written by a single-statement unit")


@functools.lru_cache(maxsize=32)
def _statement_for(signature: tuple[tuple[str, tuple[str, ...]], ...], outbox: Table) -> Any:
    ctes = []
    notify_from = None
    for i, (name, cols) in enumerate(signature):
        col_list = ", ".join(f'"{c}"' for c in cols)
        ctes.append(f'w{i} AS (INSERT INTO "{name}" ({col_list}) SELECT {col_list} '
                    f'FROM json_populate_recordset(NULL::"{name}", CAST(:t{i} AS JSON)) RETURNING 1)')
        if name == outbox.name:
            notify_from = f"w{i}"
    final = f"SELECT pg_notify('{OUTBOX_NOTIFY_CHANNEL}', '') FROM {notify_from} LIMIT 1" if notify_from else "SELECT 1"
    return text("WITH " + ",\n".join(ctes) + "\n" + final)


def _outbox_row(event: Envelope, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "topic": event.topic,
        "key": event.subject,
        "event_type": event.type,
        "payload": event.to_bytes(),
        "created_at": now,
        "attempts": 0,
    }
