"""The caller's own directory entry: ``GET /me`` and ``PUT /me/notify``.

A person is who their sign-in says (``principal.email``, from a bearer token or a page session);
the directory person with that email is theirs. Setting one's own notification preference needs no
directory:write: only that it is them. A machine key is nobody, so it has no /me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from citystat_common.auth import OptionalPrincipal, Principal
from citystat_common.web import ReadUoW, UoW
from directory import people, schemas
from directory.api import person_read
from directory.deps import Deps, DirectoryDeps
from directory.models import Person
from directory.params import clean_parameters

router = APIRouter(dependencies=[Depends(clean_parameters)], tags=["me"])


async def _person_caller(principal: OptionalPrincipal) -> Principal:
    if principal is None:
        raise HTTPException(401, "sign in, or send a bearer token from the city's identity provider",
                            headers={"WWW-Authenticate": "Bearer"})
    if not principal.is_person:
        raise HTTPException(403, f"the API key {principal.name!r} is not a person: /me needs a person's sign-in")
    return principal


async def _me_read(uow: UoW, deps: Deps, *, person: Person) -> schemas.MeRead:
    # Their own email and phone: shown to them whatever their scopes.
    base = person_read(person, None, personal=True)
    return schemas.MeRead(**base.model_dump(), holds=await people.roles_held(uow, person, now=deps.now()))


# A dependency, so a caller who is nobody gets 401/403 before their body is read (not a 422).
PersonCaller = Annotated[Principal, Depends(_person_caller)]


@router.get("/me", response_model=schemas.MeRead, summary="Your own directory entry")
async def get_me(uow: ReadUoW, deps: DirectoryDeps, *, caller: PersonCaller) -> schemas.MeRead:
    return await _me_read(uow, deps, person=await people.get_me(uow, email=caller.email))


@router.put("/me/notify", response_model=schemas.MeRead, summary="Choose how escalation reaches you")
async def set_my_notify(caller: PersonCaller, data: schemas.NotifyUpdate, uow: UoW,
                        deps: DirectoryDeps) -> schemas.MeRead:
    person = await people.get_me(uow, email=caller.email)
    await people.set_notify(uow, deps, actor=caller.actor(), person=person, notify=data.notify)
    result = await _me_read(uow, deps, person=person)
    await uow.commit()
    return result
