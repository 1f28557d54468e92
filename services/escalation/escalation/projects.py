"""Projects: a ticket (and others linked with it) promoted to owned work with a goal, a due date
and milestones. What a project reads as (its health roll-up) is in ``queries``."""

from __future__ import annotations

from datetime import datetime

from citystat_common.errors import Conflict
from citystat_common.events import TicketPromoted
from citystat_common.uow import UnitOfWork
from escalation import schemas, store
from escalation.authors import Author
from escalation.limits import check_due
from escalation.models import Milestone, Project
from escalation.timeline import note


async def promote(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.Promote, now: datetime) -> Project:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    if t.project_id:
        raise Conflict(f"ticket already belongs to project {t.project_id}", field="project_id")
    check_due(data.due_date, now.date())
    for i, m in enumerate(data.milestones):
        check_due(m.due_date, now.date(), field=f"milestones.{i}.due_date")
    p = Project(title=data.title or t.title, department_code=t.department_code, owner=data.owner, goal=data.goal,
                due_date=data.due_date, status="active", created_by=actor.label[:100], author=actor.as_dict(),
                created_at=now, updated_at=now)
    uow.session.add(p)
    await uow.flush()
    for m in data.milestones:
        uow.session.add(Milestone(project_id=p.id, title=m.title, due_date=m.due_date))
    linked = [t]
    for i, tid in enumerate(data.link_tickets):
        if tid == t.id or any(x.id == tid for x in linked):
            continue
        other = await store.referenced_ticket(uow, tid, field=f"link_tickets.{i}")
        if other.project_id:
            raise Conflict(f"ticket {tid} already belongs to project {other.project_id}", field=f"link_tickets.{i}")
        linked.append(other)
    for other in linked:
        other.project_id = p.id
        note(uow, other, actor=actor, kind="promoted", now=now,
             text=f"Promoted to project '{p.title}' (owner {p.owner}" + (f", due {p.due_date}" if p.due_date else "") + ")",
             project_id=p.id)
        uow.emit(TicketPromoted(ticket_id=other.id, department_code=other.department_code, project_id=p.id,
                                owner=p.owner, due_date=p.due_date), subject=other.id)
    await uow.flush()
    return p
