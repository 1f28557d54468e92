"""Who is looking at the pages: the signed-in person (when the service has page sign-in; without
it the pages stay read-only and open, as for tests and API-only deployments), their directory
person, and what they may do with a ticket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from citystat_common.auth import Principal, optional_principal
from citystat_common.signin import SessionPerson, current_person, require_person
from citystat_common.uow import UnitOfWork
from escalation import access, permissions
from escalation.authors import Author, author_of
from escalation.deps import Deps
from escalation.models import Ticket
from escalation.routing import current_chain


async def page_person(request: Request) -> SessionPerson | None:
    deps: Deps = request.app.state.deps
    if deps.settings.pages_sign_in:
        return require_person(request)  # to the city's sign-in, then back here
    return current_person(request)


Viewer = Annotated[SessionPerson | None, Depends(page_person)]


async def viewer_principal(request: Request, person: SessionPerson | None) -> Principal | None:
    return await optional_principal(request) if person is not None else None


async def decision(uow: UnitOfWork, principal: Principal | None, t: Ticket, verb: str = "act on") -> permissions.Decision:
    if principal is None:
        return permissions.Decision(False, "sign in to act on tickets")
    author = await author_of(uow, principal)
    return await access.ticket_decision(uow, principal, author, t, verb)


async def is_mine(uow: UnitOfWork, who: permissions.Asker, t: Ticket) -> bool:
    """Assigned to the person, or routed to a role they hold: the holder of the ticket's current level."""
    if t.assignee_id and who.person_id == t.assignee_id:
        return True
    chain = await current_chain(uow, t.department_code, t.chain or [])
    holder: Any = next((c.get("person") for c in chain if c["level"] == t.level), None)
    return permissions.is_holder(holder, who)


async def asker_of(uow: UnitOfWork, principal: Principal) -> tuple[permissions.Asker, Author]:
    author = await author_of(uow, principal)
    return access.asker(principal, author), author
