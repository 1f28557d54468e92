"""The SQL of the escalation domain, apart from its rules: loading and locking tickets, claiming
due ones, and the lookups the rules ask about (mutes, links, policies, a project's parts). Dialect
branches (row locks on PostgreSQL) live here and only here."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from citystat_common.errors import Invalid, NotFound
from citystat_common.uow import UnitOfWork
from escalation.models import (
    OPEN_STATUSES,
    Action,
    Milestone,
    Mute,
    Policy,
    Project,
    Ticket,
    TicketLink,
    TimelineEntry,
)

# --- tickets ---------------------------------------------------------------------------------


async def get_ticket(uow: UnitOfWork, ticket_id: str, *, lock: bool = False) -> Ticket:
    stmt = sa.select(Ticket).where(Ticket.id == ticket_id)
    if lock and uow.dialect == "postgresql":
        stmt = stmt.with_for_update()
    t = (await uow.session.execute(stmt)).scalar_one_or_none()
    if t is None:
        raise NotFound(f"no ticket {ticket_id}", field="ticket_id")
    return t


async def referenced_ticket(uow: UnitOfWork, ticket_id: str, *, field: str) -> Ticket:
    """A ticket named in a body: unknown is the caller's 422 (naming the field), not a 404 of the URL."""
    t = (await uow.session.execute(sa.select(Ticket).where(Ticket.id == ticket_id))).scalar_one_or_none()
    if t is None:
        raise Invalid(f"no ticket {ticket_id}", field=field)
    return t


async def ever_acknowledged(uow: UnitOfWork, ticket_id: str) -> bool:
    return (await uow.session.execute(
        sa.select(TimelineEntry.id).where(TimelineEntry.ticket_id == ticket_id, TimelineEntry.kind == "acknowledged")
        .limit(1)
    )).first() is not None


async def ticket_open_for_episode(uow: UnitOfWork, episode_id: str) -> str | None:
    row = (await uow.session.execute(sa.select(Ticket.id).where(Ticket.open_episode == episode_id))).first()
    return row[0] if row else None


def due_stmt(now: datetime, batch: int) -> sa.Select[Ticket]:
    return (
        sa.select(Ticket)
        .where(
            Ticket.status.in_(OPEN_STATUSES),
            sa.or_(
                Ticket.next_escalation_at <= now,
                sa.and_(Ticket.status == "acknowledged", Ticket.ack_expires_at <= now),
            ),
        )
        .order_by(Ticket.next_escalation_at, Ticket.id)
        .limit(batch)
    )


async def claim_due(uow: UnitOfWork, *, now: datetime, batch: int) -> list[Ticket]:
    """Due tickets, locked FOR UPDATE SKIP LOCKED on PostgreSQL (two schedulers share the work);
    SQLite's BEGIN IMMEDIATE serializes writers."""
    stmt = due_stmt(now, batch)
    if uow.dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    return list((await uow.session.execute(stmt)).scalars().all())


# --- mutes and links -------------------------------------------------------------------------


async def department_mute(uow: UnitOfWork, department_code: str, now: datetime) -> Mute | None:
    """The department's mute that lasts longest, if one is in force."""
    return (await uow.session.execute(
        sa.select(Mute).where(Mute.department_code == department_code, Mute.cancelled_at.is_(None), Mute.until > now)
        .order_by(Mute.until.desc()).limit(1)
    )).scalar_one_or_none()


async def cancel_ticket_mutes(uow: UnitOfWork, ticket_id: str, now: datetime) -> None:
    await uow.session.execute(
        sa.update(Mute).where(Mute.ticket_id == ticket_id, Mute.cancelled_at.is_(None)).values(cancelled_at=now)
    )


async def get_mute(uow: UnitOfWork, mute_id: int) -> Mute:
    m = await uow.session.get(Mute, mute_id)
    if m is None:
        raise NotFound(f"no mute {mute_id}", field="mute_id")
    return m


async def link_exists(uow: UnitOfWork, ticket_id: str, other_id: str, kind: str) -> bool:
    return (await uow.session.execute(sa.select(TicketLink.id).where(
        TicketLink.ticket_id == ticket_id, TicketLink.other_id == other_id, TicketLink.kind == kind))).first() is not None


# --- policies --------------------------------------------------------------------------------


async def default_policy_row(uow: UnitOfWork) -> Policy | None:
    return (await uow.session.execute(sa.select(Policy).where(Policy.is_default.is_(True)))).scalars().first()


async def policy_named(uow: UnitOfWork, name: str) -> Policy | None:
    return (await uow.session.execute(sa.select(Policy).where(Policy.name == name))).scalar_one_or_none()


async def existing_policy(uow: UnitOfWork, name: str) -> Policy:
    return (await uow.session.execute(sa.select(Policy).where(Policy.name == name))).scalar_one()


async def policies(uow: UnitOfWork, *, except_name: str | None = None) -> list[Policy]:
    stmt = sa.select(Policy).order_by(Policy.name)
    if except_name is not None:
        stmt = stmt.where(Policy.name != except_name)
    return list((await uow.session.execute(stmt)).scalars().all())


async def clear_default_except(uow: UnitOfWork, name: str) -> None:
    await uow.session.execute(sa.update(Policy).where(Policy.name != name).values(is_default=False))


# --- projects --------------------------------------------------------------------------------


async def get_project(uow: UnitOfWork, project_id: str) -> Project:
    p = await uow.session.get(Project, project_id)
    if p is None:
        raise NotFound(f"no project {project_id}", field="project_id")
    return p


async def project_parts(uow: UnitOfWork, project_id: str) -> tuple[list[Milestone], list[Ticket], list[Action]]:
    """A project's milestones (by due date), tickets (oldest first) and their actions."""
    milestones = (await uow.session.execute(
        sa.select(Milestone).where(Milestone.project_id == project_id)
        .order_by(Milestone.due_date.is_(None), Milestone.due_date, Milestone.id)
    )).scalars().all()
    tickets = (await uow.session.execute(
        sa.select(Ticket).where(Ticket.project_id == project_id).order_by(Ticket.opened_at)
    )).scalars().all()
    ids = [t.id for t in tickets]
    actions = (await uow.session.execute(sa.select(Action).where(Action.ticket_id.in_(ids)))).scalars().all() if ids else []
    return list(milestones), list(tickets), list(actions)
