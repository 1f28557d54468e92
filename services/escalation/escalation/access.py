"""The permission rule (escalation.permissions) applied to a caller: a machine key needs the
``escalation:write`` scope; a person is checked against the ticket's department's senior team,
its assignee and chain. Refusals are 403s that say who may."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from citystat_common.auth import Principal, optional_principal
from citystat_common.errors import DomainError
from citystat_common.uow import UnitOfWork
from escalation import permissions
from escalation.authors import Author, author_of
from escalation.models import SeniorTeamCopy, Ticket
from escalation.ticket_people import assignee_of

WRITE_SCOPE = "escalation:write"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


async def _caller(request: Request) -> Principal:
    principal = await optional_principal(request)
    if principal is None:
        raise HTTPException(401, "an X-API-Key header, a bearer token or signing in is required",
                            headers={"WWW-Authenticate": "ApiKey"})
    if not principal.is_person and not principal.has(WRITE_SCOPE):
        raise HTTPException(403, f"this API key lacks the {WRITE_SCOPE!r} scope")
    return principal


# Keys: scope-checked here. People: checked per ticket or department by the functions below.
Caller = Annotated[Principal, Depends(_caller)]


def asker(principal: Principal, author: Author) -> permissions.Asker:
    return permissions.Asker(email=principal.email, person_id=author.person_id, groups=principal.roles,
                             admin=principal.has("admin"))


async def team_of(uow: UnitOfWork, department_code: str) -> permissions.Team | None:
    row = await uow.session.get(SeniorTeamCopy, department_code)
    if row is None:
        return None
    return permissions.Team(department_code=department_code, roles=row.roles or {}, deputy_mayor=row.deputy_mayor,
                            managing_director=row.managing_director)


async def ticket_decision(uow: UnitOfWork, principal: Principal, author: Author, t: Ticket,
                          verb: str) -> permissions.Decision:
    if not principal.is_person:
        return permissions.Decision(principal.has(WRITE_SCOPE), f"this API key lacks the {WRITE_SCOPE!r} scope")
    holder = assignee_of(t)
    if holder is not None and t.assignee_id:
        from escalation.models import PersonCopy

        copy = await uow.session.get(PersonCopy, t.assignee_id)
        holder = {**holder, "email": copy.email if copy else None}
    return permissions.on_ticket(asker(principal, author), department_code=t.department_code, assignee=holder,
                                 chain=t.chain or [], team=await team_of(uow, t.department_code), verb=verb)


async def may_act(uow: UnitOfWork, principal: Principal, t: Ticket, verb: str) -> Author:
    """The author of the change, once the caller may ``verb`` the ticket; else a 403 naming who may."""
    author = await author_of(uow, principal)
    decision = await ticket_decision(uow, principal, author, t, verb)
    if not decision:
        raise Forbidden(decision.because)
    return author


async def may_act_for_department(uow: UnitOfWork, principal: Principal, department_code: str, verb: str) -> Author:
    author = await author_of(uow, principal)
    if principal.is_person:
        decision = permissions.for_department(asker(principal, author), department_code=department_code,
                                              team=await team_of(uow, department_code), verb=verb)
        if not decision:
            raise Forbidden(decision.because)
    return author


async def office_only(uow: UnitOfWork, principal: Principal, verb: str) -> Author:
    author = await author_of(uow, principal)
    if principal.is_person:
        decision = permissions.office_only(asker(principal, author), verb=verb)
        if not decision:
            raise Forbidden(decision.because)
    return author
