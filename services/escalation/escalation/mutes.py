"""Mutes: escalation of a ticket, or of a whole department's tickets, held until a time, with a reason."""

from __future__ import annotations

from datetime import datetime

from citystat_common.errors import Conflict
from citystat_common.uow import UnitOfWork
from escalation import references, schemas, store
from escalation.authors import Author
from escalation.deps import Deps
from escalation.lifecycle import next_status
from escalation.limits import check_mute_until
from escalation.models import Mute, Ticket
from escalation.timeline import note


async def mute_ticket(uow: UnitOfWork, *, ticket_id: str, actor: Author, data: schemas.MuteIn, now: datetime) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    next_status(t.status, "mute")
    check_mute_until(data.until, now)
    t.muted_until, t.mute_reason, t.updated_at = data.until, data.reason, now
    uow.session.add(Mute(ticket_id=t.id, until=data.until, reason=data.reason, created_by=actor.label[:100],
                         author=actor.as_dict(), created_at=now))
    note(uow, t, actor=actor, kind="muted", now=now, text=f"Escalation muted until {data.until.isoformat()}: {data.reason}",
         until=data.until.isoformat())
    return t


async def unmute_ticket(uow: UnitOfWork, *, ticket_id: str, actor: Author, now: datetime) -> Ticket:
    t = await store.get_ticket(uow, ticket_id, lock=True)
    if t.muted_until is None:
        raise Conflict("the ticket is not muted", field="muted_until")
    t.muted_until, t.mute_reason, t.updated_at = None, None, now
    await store.cancel_ticket_mutes(uow, t.id, now)
    note(uow, t, actor=actor, kind="unmuted", now=now, text="Escalation unmuted")
    return t


async def mute_department(
    uow: UnitOfWork, deps: Deps, *, actor: Author, data: schemas.DepartmentMuteIn, now: datetime
) -> Mute:
    check_mute_until(data.until, now)
    await references.known_department(uow, deps, code=data.department_code)
    m = Mute(department_code=data.department_code, until=data.until, reason=data.reason, created_by=actor.label[:100],
             author=actor.as_dict(), created_at=now)
    uow.session.add(m)
    await uow.flush()
    return m


async def cancel_mute(uow: UnitOfWork, *, mute_id: int, now: datetime) -> Mute:
    m = await store.get_mute(uow, mute_id)
    if m.cancelled_at is not None:
        raise Conflict(f"mute {mute_id} was already cancelled at {m.cancelled_at.isoformat()}", field="mute_id")
    m.cancelled_at = now
    if m.ticket_id:
        t = await store.get_ticket(uow, m.ticket_id)
        t.muted_until, t.mute_reason = None, None
    return m


async def muted_until(uow: UnitOfWork, t: Ticket, now: datetime) -> tuple[datetime, str] | None:
    """Until when, and why, the ticket's escalation is held (its own mute, else its department's)."""
    if t.muted_until and t.muted_until > now:
        return t.muted_until, t.mute_reason or ""
    m = await store.department_mute(uow, t.department_code, now)
    return (m.until, f"{t.department_code} muted: {m.reason}") if m else None
