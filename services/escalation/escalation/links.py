"""Links between tickets ("duplicates", "related"...), each noted on the timeline once."""

from __future__ import annotations

from datetime import datetime

from citystat_common.errors import Invalid
from citystat_common.uow import UnitOfWork
from escalation import schemas, store
from escalation.authors import Author
from escalation.models import Ticket, TicketLink
from escalation.timeline import note


async def link(uow: UnitOfWork, t: Ticket, *, other_id: str, kind: str, actor: Author, now: datetime) -> None:
    if await store.link_exists(uow, t.id, other_id, kind):
        return
    uow.session.add(TicketLink(ticket_id=t.id, other_id=other_id, kind=kind, created_by=actor.label[:100], created_at=now))
    note(uow, t, actor=actor, kind="linked", now=now, text=f"Linked: {kind} {other_id}", other=other_id, link=kind)


async def add_link(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.LinkIn, now: datetime) -> Ticket:
    t = await store.get_ticket(uow, ticket_id)
    if data.other_ticket_id == t.id:
        raise Invalid("a ticket cannot link to itself", field="other_ticket_id")
    await store.referenced_ticket(uow, data.other_ticket_id, field="other_ticket_id")
    await link(uow, t, other_id=data.other_ticket_id, kind=data.kind, actor=actor, now=now)
    return t
