"""A request's lifecycle as staff change it: open -> acknowledged -> in_progress -> closed, reopen,
transfer, note, and merging duplicates. Each step checks that the caller may act on the request's
department (intake311.permissions), records who did it (their Actor, intake311.actors) in the
request's history, and emits the request's event. No commit: the router owns it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from citystat_common.auth import Actor, Principal
from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import RequestClosed, RequestUpdated, ServiceRequestData
from citystat_common.uow import UnitOfWork
from intake311 import permissions
from intake311.deps import Deps
from intake311.models import Service, ServiceRequest
from intake311.service import (
    commitment_text,
    duplicate_text,
    emit,
    get_department,
    load_request,
    no_commitment_text,
    note,
)

ACTIONS = ("acknowledge", "start", "close", "reopen", "transfer", "note")


async def change(
    uow: UnitOfWork, deps: Deps, *, rid: int, action: str, who: Principal, text: str | None = None,
    reason: str | None = None, department_code: str | None = None, public: bool = True,
) -> ServiceRequest:
    """One lifecycle step on request ``rid`` by ``who`` (403 when it is not theirs to act on)."""
    req, service = await load_request(uow, rid, for_update=True)
    permissions.check(who, req.department_code)
    actor = who.actor()
    now = utcnow()
    previous_dept = None
    cls: type[ServiceRequestData] = RequestUpdated
    if action == "acknowledge":
        if req.detailed_status != "open":
            raise Conflict(f"only an open request can be acknowledged; this one is {req.detailed_status}", field="status")
        req.detailed_status = "acknowledged"
        kind, default = "acknowledged", "Your request has been received by the department."
    elif action == "start":
        if req.detailed_status not in ("open", "acknowledged"):
            raise Conflict(f"work cannot start on a request that is {req.detailed_status}", field="status")
        req.detailed_status = "in_progress"
        kind, default = "in_progress", "Work is in progress."
    elif action == "close":
        if req.status == "closed":
            raise Conflict("the request is already closed", field="status")
        closure_reasons = deps.settings.closure_reasons
        if reason is None or reason not in closure_reasons:
            raise Invalid(f"reason must be one of {', '.join(closure_reasons)}", field="reason")
        _close(req, reason, now)
        cls = RequestClosed
        kind, default = "closed", f"Closed: {reason.replace('_', ' ')}."
    elif action == "reopen":
        if req.status != "closed":
            raise Conflict("only a closed request can be reopened", field="status")
        req.status, req.detailed_status = "open", "open"
        req.closed_datetime, req.closure_reason = None, None
        req.first_contact_resolution = False
        kind, default = "reopened", "The request has been reopened."
    elif action == "transfer":
        if req.status == "closed":
            raise Conflict("a closed request cannot be transferred; reopen it first", field="status")
        if not department_code:
            raise Invalid("department_code is required", field="department_code")
        dept = await get_department(uow, department_code)
        if dept is None or not dept.active:
            raise Invalid(f"unknown or inactive department {department_code!r}", field="department_code")
        if dept.code == req.department_code:
            raise Conflict(f"the request is already with {dept.code}", field="department_code")
        previous_dept, req.department_code = req.department_code, dept.code
        kind, default = "transferred", f"Transferred to {dept.name}."
        req.service_notice = transfer_notice(req, dept.name, deps.tz)
    elif action == "note":
        if not text:
            raise Invalid("text is required", field="text")
        kind, default = "note", None
    else:
        raise Invalid(f"unknown action {action!r}", field="action")
    req.updated_datetime = now
    note(uow, req, kind=kind, actor=actor, text=text or default, at=now, public=public)
    emit(uow, cls, req, service.service_name, kind, previous_dept)
    if action == "close" and reason != "duplicate":
        await _close_duplicates_of(uow, req, service, actor, now)
    return req


def transfer_notice(req: ServiceRequest, agency: str, tz: ZoneInfo) -> str:
    """The notice after a transfer: the new department's name in the promise (the service's own notice
    is dropped: it speaks for the department that had it)."""
    notices = [f"Transferred to {agency}."]
    notices.append(commitment_text(req.expected_datetime, agency, tz) if req.expected_datetime
                   else no_commitment_text(agency))
    if req.duplicate_of is not None:
        notices.append(duplicate_text(req.duplicate_of))
    return " ".join(notices)


def _close(req: ServiceRequest, reason: str, now: datetime) -> None:
    req.status, req.detailed_status = "closed", "closed"
    req.closure_reason, req.closed_datetime = reason, now


async def _close_duplicates_of(uow: UnitOfWork, original: ServiceRequest, service: Service, actor: Actor,
                               now: datetime) -> None:
    # the duplicates close with their original, whichever department they were reported to
    dups = (
        await uow.session.execute(
            sa.select(ServiceRequest).where(ServiceRequest.duplicate_of == original.id, ServiceRequest.status == "open")
        )
    ).scalars().all()
    for dup in dups:
        _close(dup, "duplicate", now)
        dup.updated_datetime = now
        note(uow, dup, kind="closed", actor=actor, text=f"Closed with request {original.id}: {original.closure_reason}.",
             at=now)
        emit(uow, RequestClosed, dup, service.service_name, "closed")


async def link(uow: UnitOfWork, *, rid: int, into: int | None, who: Principal, text: str | None = None) -> ServiceRequest:
    """Merge ``rid`` into ``into`` (a duplicate, closed as such), or unlink it (``into`` None): an act
    on ``rid``, so on its department's behalf."""
    req, service = await load_request(uow, rid, for_update=True)
    permissions.check(who, req.department_code)
    actor = who.actor()
    now = utcnow()
    if into is None:
        if req.duplicate_of is None:
            raise Conflict("the request is not linked to another", field="duplicate_of")
        previous = req.duplicate_of
        req.duplicate_of = None
        if req.status == "closed" and req.closure_reason == "duplicate":
            req.status, req.detailed_status, req.closed_datetime, req.closure_reason = "open", "open", None, None
        req.updated_datetime = now
        note(uow, req, kind="unlinked", actor=actor, text=text or f"No longer a duplicate of request {previous}.", at=now)
        emit(uow, RequestUpdated, req, service.service_name, "unlinked")
        return req
    if into == req.id:
        raise Invalid("a request cannot duplicate itself", field="into")
    try:
        target, _ = await load_request(uow, into)
    except NotFound as exc:  # the body names it: a bad field, not a missing resource at this path
        raise Invalid(f"no service request {into} to merge into", field="into") from exc
    root = target.duplicate_of or target.id  # merge into the original, never into a chain
    if root == req.id:
        raise Conflict(f"request {into} is itself a duplicate of this request", field="into")
    req.duplicate_of = root
    req.updated_datetime = now
    cls: type[ServiceRequestData] = RequestUpdated
    if req.status != "closed":
        _close(req, "duplicate", now)
        cls = RequestClosed
    note(uow, req, kind="merged", actor=actor, text=text or f"Merged into request {root}.", at=now)
    emit(uow, cls, req, service.service_name, "merged")
    # Requests that pointed at this one now point at the original.
    await uow.session.execute(
        sa.update(ServiceRequest).where(ServiceRequest.duplicate_of == req.id).values(duplicate_of=root)
    )
    return req
