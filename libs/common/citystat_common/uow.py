"""Unit of work: owns the transaction and the events of one business operation.

Service functions take a ``UnitOfWork``, change rows through ``uow.session`` and call
``uow.emit(...)``; they never commit. The caller (a router, a consumer handler, a
scheduler) calls ``commit()``, which writes the collected events to the outbox in the
same transaction as the state change: either both are stored or neither is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from citystat_common.db import PlumbingTables, utcnow
from citystat_common.events import Envelope, Payload, make_event
from citystat_common.logging import current_correlation_id

# Wakes the outbox relay at once on PostgreSQL (delivered at commit, folded to one per transaction).
_CHANNEL = "citystat_outbox"  # outbox.NOTIFY_CHANNEL
_NOTIFY_RELAY = text(f"SELECT pg_notify('{_CHANNEL}', '')")
_NOTIFY_INLINE_MAX = 50  # up to this many events: one INSERT ... VALUES (...), (...) with the NOTIFY


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], tables: PlumbingTables):
        self._sessions = sessions
        self.tables = tables
        self.events: list[Envelope] = []
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside 'async with'")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessions()
        self.events = []
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.session.rollback()  # a no-op after commit; undoes anything left uncommitted
        finally:
            await self.session.close()
            self._session = None

    def emit(self, payload: Payload, *, subject: str) -> Envelope:
        envelope = make_event(payload, subject=str(subject), correlation_id=current_correlation_id())
        self.events.append(envelope)
        return envelope

    async def flush(self) -> None:
        await self.session.flush()

    async def commit(self) -> None:
        if self.events:
            now = utcnow()
            rows = [_outbox_row(e, now) for e in self.events]
            if self.session.get_bind().dialect.name != "postgresql":
                await self.session.execute(insert(self.tables.outbox), rows)
            elif len(rows) <= _NOTIFY_INLINE_MAX:
                # One round trip: the rows and the relay's wake-up in one statement.
                ins = insert(self.tables.outbox).values(rows).returning(self.tables.outbox.c.id).cte("ins")
                await self.session.execute(select(func.pg_notify(_CHANNEL, "")).select_from(ins).limit(1))
            else:
                await self.session.execute(insert(self.tables.outbox), rows)
                await self.session.execute(_NOTIFY_RELAY)
        await self.session.commit()
        self.events = []

    async def rollback(self) -> None:
        await self.session.rollback()
        self.events = []


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
