"""The action log: what the department does about a ticket, by whom and by when."""

from __future__ import annotations

from datetime import datetime

from citystat_common.errors import Invalid, NotFound
from citystat_common.uow import UnitOfWork
from escalation import references, schemas, store, ticket_feed
from escalation.authors import Author
from escalation.deps import Deps
from escalation.limits import check_due
from escalation.models import Action
from escalation.timeline import note


async def _action_owner(uow: UnitOfWork, deps: Deps | None, *, data: schemas.ActionIn) -> tuple[str, str | None]:
    """The owner by name, or a directory person (their name from the copy: mail reaches them when it falls due)."""
    if data.owner_person_id:
        if deps is None:
            raise Invalid("an owner person needs the directory", field="owner_person_id")
        p = await references.known_person(uow, deps, person_id=data.owner_person_id, field="owner_person_id")
        return p.name, p.person_id
    if not data.owner:
        raise Invalid("name the owner, or give owner_person_id", field="owner")
    return data.owner, None


async def add_action(uow: UnitOfWork, deps: Deps | None = None, *, ticket_id: str, actor: Author, data: schemas.ActionIn, now: datetime) -> Action:
    t = await store.get_ticket(uow, ticket_id, lock=True)  # locked: this ticket's snapshots are versioned in order
    check_due(data.due_date, now.date())
    owner, owner_id = await _action_owner(uow, deps, data=data)
    a = Action(ticket_id=t.id, description=data.description, owner=owner, owner_person_id=owner_id,
               due_date=data.due_date, status=data.status, created_by=actor.label[:100], author=actor.as_dict(),
               created_at=now, updated_at=now)
    uow.session.add(a)
    await uow.flush()
    note(uow, t, actor=actor, kind="action_added", now=now,
         text=f"Action: {data.description} (owner {owner}" + (f", due {data.due_date}" if data.due_date else "") + ")",
         action_id=a.id)
    await ticket_feed.publish(uow, t, now=now)
    return a


async def update_action(
    uow: UnitOfWork, *, ticket_id: str, action_id: int, actor: Author, data: schemas.ActionUpdate, now: datetime
) -> Action:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    a = await uow.session.get(Action, action_id)
    if a is None or a.ticket_id != t.id:
        raise NotFound(f"no action {action_id} on ticket {ticket_id}", field="action_id")
    check_due(data.due_date, now.date())
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if getattr(a, k) != v}
    for k, v in changes.items():
        setattr(a, k, v)
    if changes:
        a.updated_at = now
        note(uow, t, actor=actor, kind="action_updated", now=now,
             text=f"Action {a.id} updated: " + ", ".join(f"{k} = {v}" for k, v in changes.items()),
             action_id=a.id, changes={k: str(v) for k, v in changes.items()})
        await ticket_feed.publish(uow, t, now=now)
    return a
