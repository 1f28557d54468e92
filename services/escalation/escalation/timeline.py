"""The ticket's timeline: what happened, who did it, in the city's words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citystat_common.events import IndicatorStatusData
from citystat_common.uow import UnitOfWork
from escalation.authors import Author
from escalation.models import Ticket, TimelineEntry


def note(uow: UnitOfWork, ticket: Ticket, *, actor: Author, kind: str, text: str, now: datetime, **data: Any) -> None:
    uow.session.add(TimelineEntry(ticket_id=ticket.id, at=now, actor=actor.label[:100], kind=kind, text=text, data=data,
                                  author=actor.as_dict()))


def describe_miss(b: IndicatorStatusData | None) -> str:
    """The miss in a sentence: "value 12, target 10, 20% worse vs target, period 2026-11"."""
    if b is None:
        return ""
    parts = [f"value {b.value:g}" if b.value is not None else "no value"]
    if b.target is not None:
        parts.append(f"target {b.target:g}")
    if b.magnitude is not None:
        parts.append(f"{b.magnitude:.0%} worse vs {b.basis}")
    parts.append(f"period {b.period}")
    return ", ".join(parts)
