"""Who made a change: a person (name, email, how they signed in, and the directory's person id when
escalation's copy of the directory knows their email), a machine key ("key ops"), or the system
itself (the scheduler, the indicators service). Every timeline entry, action, mute and project
keeps the author's details beside the label that older rows already had."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from citystat_common.auth import Principal
from citystat_common.uow import UnitOfWork
from escalation.models import PersonCopy


@dataclass(frozen=True)
class Author:
    kind: Literal["person", "key", "system"]
    name: str
    email: str | None = None
    via: str | None = None  # key, bearer, session; "indicators" for an override reported by indicators
    person_id: str | None = None

    @property
    def label(self) -> str:
        return f"key {self.name}" if self.kind == "key" else self.name

    def __str__(self) -> str:
        return self.label

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "label": self.label, "email": self.email, "via": self.via,
                "person_id": self.person_id}


SYSTEM = Author(kind="system", name="escalation")
INDICATORS = Author(kind="system", name="indicators")


async def person_by_email(uow: UnitOfWork, email: str | None) -> PersonCopy | None:
    if not email:
        return None
    return (await uow.session.execute(
        sa.select(PersonCopy).where(sa.func.lower(PersonCopy.email) == email.lower()).limit(1)
    )).scalar_one_or_none()


async def author_of(uow: UnitOfWork, principal: Principal) -> Author:
    """The principal as an author; a person is matched to the directory's person by email."""
    actor = principal.actor()
    if actor.kind != "person":
        return Author(kind="key", name=actor.name, via=actor.via)
    p = await person_by_email(uow, actor.email)
    return Author(kind="person", name=actor.name, email=actor.email, via=actor.via,
                  person_id=p.person_id if p else None)


async def override_author(uow: UnitOfWork, name: str | None) -> Author:
    """An override's author as the indicators service names them; a single active person of that
    name in the copy of the directory gives the person id."""
    if not name:
        return Author(kind="person", name="staff", via="indicators")
    rows = (await uow.session.execute(
        sa.select(PersonCopy).where(PersonCopy.name == name, PersonCopy.active.is_(True)).limit(2)
    )).scalars().all()
    p = rows[0] if len(rows) == 1 else None
    return Author(kind="person", name=name, via="indicators", person_id=p.person_id if p else None,
                  email=p.email if p else None)
