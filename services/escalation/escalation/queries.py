"""What the API and the pages read: tickets (one, a filtered list, with their timeline), projects
with their health roll-up, mutes, policies, the local copy of the senior teams. Reads only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.errors import NotFound
from citystat_common.filters import where_given
from citystat_common.uow import UnitOfWork
from escalation import schemas, store
from escalation.models import (
    OPEN_STATUSES,
    Action,
    Escalation,
    Mute,
    Policy,
    Project,
    SeniorTeamCopy,
    Ticket,
    TicketLink,
    TimelineEntry,
)
from escalation.ticket_people import assignee_of, level_role

# --- tickets ---------------------------------------------------------------------------------


def ticket_read(t: Ticket, now: datetime) -> schemas.TicketRead:
    end = t.resolved_at or t.closed_at or now
    a = assignee_of(t)
    return schemas.TicketRead(
        id=t.id, department_code=t.department_code, department_name=t.department_name, cluster_code=t.cluster_code,
        indicator_id=t.indicator_id, indicator_code=t.indicator_code, episode_id=t.episode_id, title=t.title,
        description=t.description, reason=t.reason, severity=t.severity, status=t.status, source=t.source,
        function_tag=t.function_tag, critical=t.critical, magnitude=t.magnitude, basis=t.basis, value=t.value,
        target=t.target, period=t.period, breach_count=t.breach_count,
        assignee=schemas.PersonOut(**a) if a else None, assignee_role=t.assignee_role,
        routing_source=t.routing_source, routing_note=t.routing_note, level=t.level, level_role=level_role(t),
        next_escalation_at=t.next_escalation_at, ack_expires_at=t.ack_expires_at, muted_until=t.muted_until,
        mute_reason=t.mute_reason, review_pending=t.review_pending, resolution_reason=t.resolution_reason,
        project_id=t.project_id, opened_by=t.opened_by, opened_at=t.opened_at, acknowledged_at=t.acknowledged_at,
        in_progress_at=t.in_progress_at, resolved_at=t.resolved_at, closed_at=t.closed_at,
        age_hours=round(max(0.0, (end - t.opened_at).total_seconds() / 3600), 2),
    )


async def ticket_actions(uow: UnitOfWork, ticket_id: str) -> list[Action]:
    return list((await uow.session.execute(
        sa.select(Action).where(Action.ticket_id == ticket_id).order_by(Action.id)
    )).scalars().all())


async def ticket_detail(uow: UnitOfWork, t: Ticket, now: datetime) -> schemas.TicketDetail:
    s = uow.session
    timeline = (await s.execute(
        sa.select(TimelineEntry).where(TimelineEntry.ticket_id == t.id).order_by(TimelineEntry.at, TimelineEntry.id)
    )).scalars().all()
    actions = await ticket_actions(uow, t.id)
    escalations = (await s.execute(
        sa.select(Escalation).where(Escalation.ticket_id == t.id).order_by(Escalation.to_level)
    )).scalars().all()
    links = (await s.execute(
        sa.select(TicketLink).where(sa.or_(TicketLink.ticket_id == t.id, TicketLink.other_id == t.id))
        .order_by(TicketLink.id)
    )).scalars().all()
    base = ticket_read(t, now).model_dump()
    return schemas.TicketDetail(
        **base,
        chain=[schemas.ChainLinkOut(level=c["level"], role=c["role"],
                                    person=schemas.PersonOut(**c["person"]) if c.get("person") else None)
               for c in (t.chain or [])],
        timeline=[schemas.TimelineRead.model_validate(e) for e in timeline],
        actions=[schemas.ActionRead.model_validate(a) for a in actions],
        escalations=[schemas.EscalationRead.model_validate(e) for e in escalations],
        links=[schemas.LinkRead(other_ticket_id=lk.other_id if lk.ticket_id == t.id else lk.ticket_id, kind=lk.kind,
                                direction="outgoing" if lk.ticket_id == t.id else "incoming") for lk in links],
    )


def tickets_stmt(
    *, status: Sequence[str] | None, department: str | None, cluster: str | None, severity: list[int] | None,
    level: list[int] | None, assignee: str | None, source: str | None, indicator_id: str | None,
    project_id: str | None, open_only: bool = False,
) -> sa.Select[Ticket]:
    stmt = sa.select(Ticket).order_by(Ticket.opened_at.desc(), Ticket.id)
    if open_only:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    if status:
        stmt = stmt.where(Ticket.status.in_(status))
    if department:
        stmt = stmt.where(Ticket.department_code == department.upper())
    if cluster:
        stmt = stmt.where(Ticket.cluster_code == cluster.upper())
    if severity:
        stmt = stmt.where(Ticket.severity.in_(severity))
    if level:
        stmt = stmt.where(Ticket.level.in_(level))
    if assignee:
        stmt = stmt.where(sa.or_(Ticket.assignee_id == assignee,
                                 sa.func.lower(Ticket.assignee_name).like(f"%{assignee.lower()}%")))
    return where_given(stmt, (Ticket.source, source), (Ticket.indicator_id, indicator_id),
                       (Ticket.project_id, project_id))


# --- projects --------------------------------------------------------------------------------


def projects_stmt(*, status: str | None, department: str | None) -> sa.Select[Project]:
    stmt = sa.select(Project).order_by(Project.created_at.desc(), Project.id)
    if status:
        stmt = stmt.where(Project.status == status)
    if department:
        stmt = stmt.where(Project.department_code == department.upper())
    return stmt


async def project_read(uow: UnitOfWork, p: Project, today: date) -> schemas.ProjectRead:
    milestones, tickets, actions = await store.project_parts(uow, p.id)
    ids = [t.id for t in tickets]
    by_status: dict[str, int] = {}
    for t in tickets:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    late_milestones = sum(1 for m in milestones if not m.done and m.due_date and m.due_date < today)
    late_actions = sum(1 for a in actions if a.status not in ("done", "cancelled") and a.due_date and a.due_date < today)
    open_tickets = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
    if p.status != "active":
        health = p.status
    elif p.due_date and p.due_date < today:
        health = "overdue"
    elif late_milestones or late_actions or any(t.level >= 2 for t in tickets if t.status in OPEN_STATUSES):
        health = "at_risk"
    else:
        health = "on_track"
    rollup = {
        "health": health, "tickets": by_status, "open_tickets": open_tickets,
        "milestones_done": sum(1 for m in milestones if m.done), "milestones_total": len(milestones),
        "late_milestones": late_milestones, "actions_open": sum(1 for a in actions if a.status not in ("done", "cancelled")),
        "late_actions": late_actions,
    }
    return schemas.ProjectRead(
        id=p.id, title=p.title, department_code=p.department_code, owner=p.owner, goal=p.goal, due_date=p.due_date,
        status=p.status, created_by=p.created_by, author=p.author, created_at=p.created_at,
        milestones=[schemas.MilestoneRead.model_validate(m) for m in milestones], tickets=ids, rollup=rollup,
    )


# --- mutes, policies, the local copy ---------------------------------------------------------


async def mutes(uow: UnitOfWork, *, active_at: datetime | None) -> list[Mute]:
    """The latest 500 mutes; with ``active_at``, only those in force then."""
    stmt = sa.select(Mute).order_by(Mute.id.desc()).limit(500)
    if active_at is not None:
        stmt = stmt.where(Mute.cancelled_at.is_(None), Mute.until > active_at)
    return list((await uow.session.execute(stmt)).scalars().all())


async def policy(uow: UnitOfWork, name: str) -> Policy:
    p = await store.policy_named(uow, name)
    if p is None:
        raise NotFound(f"no policy {name!r}", field="name")
    return p


async def routing_copy(uow: UnitOfWork) -> list[dict[str, Any]]:
    rows = (await uow.session.execute(sa.select(SeniorTeamCopy).order_by(SeniorTeamCopy.department_code))).scalars()
    return [{"department": r.department_code, "name": r.department_name, "cluster": r.cluster_code,
             "roles": r.roles, "deputy_mayor": r.deputy_mayor, "managing_director": r.managing_director,
             "updated_at": r.updated_at} for r in rows]
