"""Who is on it: the local copy of escalation's tickets about indicators.

Fed by ``escalation.ticket.updated`` (the ticket's whole state after each change), replaced per
ticket; a snapshot older than the stored one (a lower ``version``: a redelivery, a replay) changes
nothing. Tickets opened by hand about no indicator are not kept. A resolved or closed ticket stays
as a row (so a late snapshot of its open days cannot revive it) and leaves the tile. The indicators
service never reads escalation's tables: this copy is all it knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from citystat_common.events import Envelope, TicketUpdated
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from indicators.models import TicketCopy

log = get_logger(__name__)
OPEN_STATUSES = ("open", "acknowledged", "in_progress")
STATUS_WORDS = {"open": "Open", "acknowledged": "Acknowledged", "in_progress": "In progress",
                "resolved": "Resolved", "closed": "Closed"}
CHUNK = 400


def _values(p: TicketUpdated) -> dict[str, Any]:
    return {
        "indicator_id": p.indicator_id, "department_code": p.department_code, "source": p.source,
        "title": p.title[:300], "status": p.status, "level": p.level, "level_role": p.level_role,
        "holder_name": p.holder.name[:300] if p.holder else None,
        "holder_email": p.holder.email if p.holder else None, "holder_role": p.holder_role,
        "last_action": p.last_action, "last_action_at": p.last_action_at, "opened_at": p.opened_at,
        "changed_at": p.changed_at, "version": p.version,
    }


async def apply_ticket(uow: UnitOfWork, p: TicketUpdated) -> bool:
    """Replace the copy of the ticket with the snapshot; False when ignored (no indicator, or stale)."""
    if p.indicator_id is None:
        return False  # a flag by hand about no indicator has no tile
    values = _values(p)
    row = await uow.session.get(TicketCopy, p.ticket_id)
    if row is None:
        # the same snapshot may be landing through another consumer at this moment: no key clash
        row = await uow.add_if_absent(TicketCopy, {"ticket_id": p.ticket_id, **values})
    if row.version > p.version:
        log.info("stale_ticket_snapshot_ignored", ticket=p.ticket_id, version=p.version, stored=row.version)
        return False
    for k, v in values.items():
        setattr(row, k, v)
    return True


async def open_tickets(uow: Any, indicator_ids: Sequence[str]) -> dict[str, TicketCopy]:
    """The open ticket of each indicator, in one query per 400 indicators (never one per tile).
    With more than one open: the threshold ticket before a flag by hand, then the oldest (as
    escalation picks the ticket that answers for an indicator)."""
    found: dict[str, TicketCopy] = {}
    for i in range(0, len(indicator_ids), CHUNK):
        rows = (await uow.session.execute(
            sa.select(TicketCopy)
            .where(TicketCopy.indicator_id.in_(indicator_ids[i: i + CHUNK]), TicketCopy.status.in_(OPEN_STATUSES))
            .order_by(sa.case((TicketCopy.source == "threshold", 0), else_=1), TicketCopy.opened_at,
                      TicketCopy.ticket_id)
        )).scalars()
        for row in rows:
            found.setdefault(row.indicator_id, row)
    return found


def ticket_url(escalation_url: str, ticket_id: str) -> str:
    """The ticket's page in the escalation service."""
    return f"{escalation_url.rstrip('/')}/board/tickets/{ticket_id}"


def ticket_words(t: TicketCopy) -> list[str]:
    """The ticket in the city's words, a phrase each: status, holder, level, last action."""
    role = (t.level_role or "").replace("_", " ")
    # the holder's own role when it is not the level's (a vacant role's fallback, a reassignment),
    # so "level 0 (customer service officer)" never reads as the holder's title
    stands_in = t.holder_role and t.holder_role != t.level_role
    holder = f"held by {t.holder_name}" + (f" ({t.holder_role.replace('_', ' ')})" if stands_in and t.holder_role else "")
    words = [f"Ticket {STATUS_WORDS.get(t.status, t.status).lower()}",
             (holder if t.holder_name else "nobody holds it yet"),
             f"level {t.level}" + (f" ({role})" if role else "")]
    if t.last_action:
        when = f" ({t.last_action_at.strftime('%Y-%m-%d')})" if t.last_action_at else ""
        words.append(f"last action: {t.last_action}{when}")
    else:
        words.append("no action logged yet")
    return words


async def on_ticket_updated(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
    """Consumer handler for ``escalation.ticket.updated`` (registered in indicators.handlers)."""
    assert isinstance(payload, TicketUpdated)
    await apply_ticket(uow, payload)
