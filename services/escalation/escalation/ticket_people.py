"""Who a ticket is with: its assignee, the role of its current level, the holder of a level in a chain."""

from __future__ import annotations

from typing import Any

from citystat_common.events import PersonRef
from escalation.models import LEVEL_ROLES, Ticket


def person_ref(d: dict[str, Any] | None) -> PersonRef | None:
    return PersonRef(person_id=d["person_id"], name=d["name"], title=d.get("title")) if d else None


def assignee_of(t: Ticket) -> dict[str, Any] | None:
    return {"person_id": t.assignee_id, "name": t.assignee_name, "title": t.assignee_title} if t.assignee_id else None


def level_role(t: Ticket) -> str | None:
    if t.level == 0:
        link = next((c for c in t.chain or [] if c["level"] == 0), None)
        return link["role"] if link else t.assignee_role
    return LEVEL_ROLES.get(t.level)


def holder(chain: list[dict[str, Any]], level: int) -> dict[str, Any] | None:
    link = next((c for c in chain if c["level"] == level), None)
    return link.get("person") if link else None
