"""The ticket snapshot on ``escalation.tickets`` (``escalation.ticket.updated``): the ticket's whole
state after a change of status, holder, level or action log, for the services that show "who is on
it" (the indicators dashboard) without reading escalation's tables.

Emitted through the unit of work, so it is stored in the outbox with the change or not at all. One
snapshot per ticket per transaction (a later call replaces the earlier one in place: the last state
wins and the event list keeps its length, which the scheduler's savepoints count on). ``version`` is
the ticket's latest timeline entry: every change published here writes one, and ids only grow.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from citystat_common.events import PersonRef, TicketUpdated
from citystat_common.uow import UnitOfWork
from escalation.models import OPEN_STATUSES, Action, PersonCopy, Ticket, TimelineEntry
from escalation.ticket_people import level_role

EVENT_TYPE = "escalation.ticket.updated"



async def snapshot(uow: UnitOfWork, t: Ticket, *, now: datetime) -> TicketUpdated:
    await uow.flush()  # the timeline entry and action of this change get their ids
    last = (sa.select(Action.description).where(Action.ticket_id == t.id)
            .order_by(Action.updated_at.desc(), Action.id.desc()).limit(1))
    # one round trip for the four reads (it runs on every change of every ticket)
    version, last_text, last_at, email = (await uow.session.execute(sa.select(
        sa.select(sa.func.max(TimelineEntry.id)).where(TimelineEntry.ticket_id == t.id).scalar_subquery(),
        last.scalar_subquery(),
        last.with_only_columns(Action.updated_at).scalar_subquery(),
        sa.select(PersonCopy.email).where(PersonCopy.person_id == t.assignee_id).scalar_subquery(),
    ))).one()
    holder = None
    if t.assignee_id:
        holder = PersonRef(person_id=t.assignee_id, name=t.assignee_name or t.assignee_id, title=t.assignee_title,
                           email=email)
    return TicketUpdated(
        ticket_id=t.id, department_code=t.department_code, indicator_id=t.indicator_id,
        source=t.source,  # type: ignore[arg-type]
        title=t.title, status=t.status,  # type: ignore[arg-type]
        level=t.level, level_role=level_role(t), holder=holder, holder_role=t.assignee_role,
        last_action=last_text, last_action_at=last_at,
        opened_at=t.opened_at, changed_at=now, version=version or 0,
    )


async def publish(uow: UnitOfWork, t: Ticket, *, now: datetime) -> None:
    """Emit the ticket's snapshot (replacing one already emitted for it in this transaction)."""
    uow.emit(await snapshot(uow, t, now=now), subject=t.id)
    for i, earlier in enumerate(uow.events[:-1]):
        if earlier.type == EVENT_TYPE and earlier.subject == t.id:
            uow.events[i] = uow.events.pop()
            return


async def republish_open(uow: UnitOfWork, *, now: datetime, after: str | None, limit: int) -> list[str]:
    """Snapshots of up to ``limit`` open tickets (by id, after ``after``): for tickets last changed
    before snapshots existed, or a consumer's copy rebuilt. Harmless to repeat: the version is the
    same until the ticket changes, and a consumer keeps the highest."""
    stmt = sa.select(Ticket).where(Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id).limit(limit)
    if after:
        stmt = stmt.where(Ticket.id > after)
    tickets = list((await uow.session.execute(stmt)).scalars())
    for t in tickets:
        await publish(uow, t, now=now)
    return [t.id for t in tickets]
