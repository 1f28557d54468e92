"""The scheduler's follow-ups that are not escalations: warn a person whose acknowledgement is
about to expire, and the owner of an action that falls due. Each is written once (a marker on
the ticket or action, and the notification's unique key)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from escalation import notices
from escalation.deps import Deps
from escalation.models import Action, PersonCopy, Ticket, TimelineEntry
from escalation.ticket_people import assignee_of, level_role

OPEN_ACTIONS = ("planned", "in_progress")


async def acknowledger(uow: UnitOfWork, t: Ticket) -> dict[str, Any] | None:
    """Who acknowledged the ticket last (a person), else its assignee."""
    entry = (await uow.session.execute(
        sa.select(TimelineEntry).where(TimelineEntry.ticket_id == t.id, TimelineEntry.kind == "acknowledged")
        .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(1)
    )).scalar_one_or_none()
    author = entry.author if entry is not None else None
    if author and author.get("kind") == "person":
        return {"person_id": author.get("person_id"), "name": author.get("name"), "email": author.get("email")}
    return assignee_of(t)


async def warn_expiring_acknowledgements(uow: UnitOfWork, deps: Deps, *, now: datetime) -> int:
    lead = timedelta(hours=deps.settings.ack_warning_hours * deps.settings.delay_scale)
    rows = (await uow.session.execute(
        sa.select(Ticket).where(Ticket.status == "acknowledged", Ticket.ack_expires_at.is_not(None),
                                Ticket.ack_expires_at > now, Ticket.ack_expires_at <= now + lead)
        .order_by(Ticket.ack_expires_at).limit(100)
    )).scalars().all()
    sent = 0
    for t in rows:
        if t.ack_warned_for == t.ack_expires_at:
            continue
        t.ack_warned_for = t.ack_expires_at
        who = await acknowledger(uow, t)
        await notices.notify(
            uow, deps, t=t, kind="ack_expiring", level=t.level, person=who, role=level_role(t), now=now,
            text=f"You acknowledged this ticket; without progress the acknowledgement expires at "
                 f"{notices.city_time(deps, t.ack_expires_at)} and the ticket goes back to open and escalates. "
                 "Start work on it, or note what is happening.",
            key=f"ack_expiring:{t.id}:{t.ack_expires_at.isoformat() if t.ack_expires_at else ''}",
        )
        sent += 1
    return sent


async def remind_due_actions(uow: UnitOfWork, deps: Deps, *, now: datetime) -> int:
    today = now.astimezone(deps.calendar.tz).date()
    rows = (await uow.session.execute(
        sa.select(Action).where(Action.status.in_(OPEN_ACTIONS), Action.owner_person_id.is_not(None),
                                Action.due_date.is_not(None), Action.due_date <= today)
        .order_by(Action.due_date, Action.id).limit(100)
    )).scalars().all()
    sent = 0
    for a in rows:
        if a.due_notified_for == a.due_date:
            continue
        a.due_notified_for = a.due_date
        t = await uow.session.get(Ticket, a.ticket_id)
        owner = await uow.session.get(PersonCopy, a.owner_person_id)
        if t is None or owner is None:
            continue
        person = {"person_id": owner.person_id, "name": owner.name, "title": owner.title}
        await notices.notify(
            uow, deps, t=t, kind="action_due", level=t.level, person=person, role=None, now=now,
            text=f"Your action \u201c{a.description}\u201d is due {a.due_date.isoformat() if a.due_date else ''}. "
                 "Mark it done on the ticket, or give it a new date.",
            key=f"action_due:{a.id}:{a.due_date.isoformat() if a.due_date else ''}",
        )
        sent += 1
    return sent


async def run(uow: UnitOfWork, deps: Deps, *, now: datetime) -> int:
    return await warn_expiring_acknowledgements(uow, deps, now=now) + await remind_due_actions(uow, deps, now=now)
