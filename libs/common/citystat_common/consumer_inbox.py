"""What a consumer writes for an event (citystat_common.consumer): the handler's effect and the inbox
row (consumer, event id) in one transaction, so a redelivered event finds its row and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from citystat_common.batched import BatchHandler
from citystat_common.db import PlumbingTables, utcnow
from citystat_common.events import Envelope, Payload
from citystat_common.uow import UnitOfWork

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]


@dataclass(frozen=True)
class Inbox:
    uow_factory: Callable[[], UnitOfWork]
    tables: PlumbingTables
    group_id: str

    async def apply(self, envelope: Envelope, payload: Payload, handler: Handler) -> str:
        """The event applied and recorded in the inbox in one transaction: processed, or duplicate."""
        inbox = self.tables.inbox
        async with self.uow_factory() as uow:
            seen = await uow.session.execute(
                sa.select(inbox.c.event_id).where(inbox.c.consumer == self.group_id, inbox.c.event_id == envelope.id)
            )
            if seen.first() is not None:
                return "duplicate"
            await handler(uow, envelope, payload)
            await uow.session.execute(
                sa.insert(inbox).values(
                    consumer=self.group_id, event_id=envelope.id, event_type=envelope.type, processed_at=utcnow()
                )
            )
            try:
                await uow.commit()
            except IntegrityError:
                # Another replica recorded this event first; its effect stands, ours is rolled back.
                await uow.rollback()
                return "duplicate"
        return "processed"

    async def apply_batch(self, items: list[tuple[Envelope, Any]], handler: BatchHandler) -> set[str]:
        """The batch's new events applied and recorded in the inbox in one transaction; their ids."""
        inbox = self.tables.inbox
        async with self.uow_factory() as uow:
            ids = [e.id for e, _ in items]
            done = set((await uow.session.execute(
                sa.select(inbox.c.event_id).where(inbox.c.consumer == self.group_id, inbox.c.event_id.in_(ids))
            )).scalars())
            new = [(e, p) for e, p in items if e.id not in done]
            if not new:
                return set()
            await handler(uow, new)
            now = utcnow()
            await uow.session.execute(sa.insert(inbox), [
                {"consumer": self.group_id, "event_id": e.id, "event_type": e.type, "processed_at": now} for e, _ in new
            ])
            try:
                await uow.commit()
            except IntegrityError:
                # Another replica recorded some of these first: apply one by one, each against the inbox.
                await uow.rollback()
                raise
        return {e.id for e, _ in new}
