"""People in the loop: who made a change (as recorded), who may judge an indicator, and who may
read the pages.

Every write records ``principal.actor().label``: a person's name, or ``key <name>`` for a machine
key, so the history says who overrode a red and nobody mistakes a shared key for a person. The
judgement records (overrides and the status history) keep the email and the channel too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from citystat_common.auth import Actor, Principal
from citystat_common.signin import SessionPerson, current_person, require_person
from indicators.deps import get_deps

BY_MAX = 100  # the width of the *_by columns


def recorded(actor: Actor) -> str:
    """What a ``*_by`` column holds for this actor."""
    return actor.label[:BY_MAX]


def by(principal: Principal) -> str:
    return recorded(principal.actor())


def may_judge(principal: Principal | None, department_code: str) -> str | None:
    """None when ``principal`` may set or clear an override on an indicator of ``department_code``,
    else the reason in words. A person limited to departments (their provider groups) judges only
    their own departments' indicators."""
    if principal is None:
        return "sign in to change an indicator's status"
    if not principal.has("indicators:write"):
        return ("only the performance office and the departments' stat partners may change an "
                "indicator's status")
    if principal.departments and department_code not in principal.departments and not principal.has("admin"):
        return f"you may change the status of your own department's indicators only, not {department_code}'s"
    return None


async def page_viewer(request: Request) -> SessionPerson | None:
    """The person reading a page: sign-in is required when the city's pages sign in
    (``settings.pages_sign_in``); without it (tests, a bare local run) pages are open."""
    if get_deps(request).settings.pages_sign_in:
        return require_person(request)
    return current_person(request)


PageViewer = Annotated[SessionPerson | None, Depends(page_viewer)]
