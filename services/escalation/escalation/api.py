"""Escalation REST API: thin routers over ``service``; the router owns the commit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, Header, Path, Query, Request, Response

from citystat_common.errors import Invalid
from citystat_common.idempotency import create_once
from citystat_common.longpoll import etag_of_model
from citystat_common.pagination import Page, Paging, page_of, paginate
from citystat_common.uow import UnitOfWork
from citystat_common.web import LongPollHeaders, ReadUoW, UoW
from escalation import access, actions, links, mutes, projects, queries, references, schemas, store, tickets
from escalation.access import Caller
from escalation.authors import Author
from escalation.deps import Deps, EscalationDeps
from escalation.models import Ticket

router = APIRouter()
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe creation")]
# Row ids are 32-bit integers on PostgreSQL: a larger one is the caller's 422, not the driver's 500.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]


class CommentedAction(Protocol):
    """``tickets.acknowledge`` and ``tickets.start_work``: a staff action with an optional comment."""

    async def __call__(self, uow: UnitOfWork, deps: Deps, *, ticket_id: str, actor: Author, now: datetime,
                       text: str | None = None) -> Ticket: ...


# --- tickets ---------------------------------------------------------------------------------


@router.get("/tickets", response_model=Page[schemas.TicketRead], tags=["tickets"],
            responses={304: {"description": "unchanged since If-None-Match (after waiting, with Prefer: wait)"}},
            summary="Tickets, newest first; with If-None-Match and Prefer: wait, a long poll for changes")
async def list_tickets(
    uow: ReadUoW, deps: EscalationDeps, poll: LongPollHeaders, *, paging: Paging,
    status: Annotated[list[schemas.Status] | None, Query(description="repeatable")] = None,
    department: Annotated[str | None, Query(max_length=40)] = None,
    cluster: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[list[int] | None, Query(description="1..4, repeatable")] = None,
    level: Annotated[list[int] | None, Query(description="0..3, repeatable")] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="person id or part of the name")] = None,
    source: Literal["threshold", "manual"] | None = None,
    indicator_id: Annotated[str | None, Query(max_length=100)] = None,
    project_id: Annotated[str | None, Query(max_length=36)] = None,
    open: Annotated[bool, Query(description="only open, acknowledged and in-progress tickets")] = False,
) -> Page[schemas.TicketRead]:
    if severity and any(not 1 <= s <= 4 for s in severity):
        raise Invalid("severity is 1..4", field="severity")
    if level and any(not 0 <= lv <= 3 for lv in level):
        raise Invalid("level is 0..3", field="level")
    stmt = queries.tickets_stmt(status=status, department=department, cluster=cluster, severity=severity, level=level,
                        assignee=assignee, source=source, indicator_id=indicator_id, project_id=project_id,
                        open_only=open)

    async def read() -> tuple[Page[schemas.TicketRead], str]:
        items, total = await paginate(uow.session, stmt, paging)
        now = deps.now()
        page = page_of([queries.ticket_read(t, now) for t in items], total, paging)
        return page, etag_of_model(page, exclude={"items": {"__all__": {"age_hours"}}})

    page, tag, changed = await poll.read(uow, read)
    if not changed:
        return poll.not_modified(tag)  # type: ignore[return-value]
    # serialized here, not again by FastAPI's response model (the page is built from the model)
    return Response(page.model_dump_json(), media_type="application/json", headers={"ETag": tag})  # type: ignore[return-value]


@router.post("/tickets", status_code=201, response_model=schemas.TicketDetail, tags=["tickets"],
             summary="Open a manual flag (no threshold needed), routed like a breach")
async def create_ticket(data: schemas.ManualFlag, uow: UoW, deps: EscalationDeps, who: Caller, request: Request,
                        key: IdemKey = None) -> Response:
    async def build() -> schemas.TicketDetail:
        now = deps.now()
        severity = data.severity or deps.settings.manual_default_severity
        await references.known_department(uow, deps, code=data.department_code)
        author = await access.may_act_for_department(uow, who, data.department_code, "open a flag")
        indicator_id, indicator_code = await references.check_flag_indicator(
            uow, department_code=data.department_code, indicator_id=data.indicator_id,
            indicator_code=data.indicator_code)
        t = await tickets.open_ticket(
            uow, deps, now=now, actor=author, department_code=data.department_code, title=data.title,
            source="manual", severity=severity, function_tag=data.function_tag, reason=data.reason,
            description=data.description, indicator_id=indicator_id, indicator_code=indicator_code,
        )
        await uow.flush()
        return await queries.ticket_detail(uow, t, now)

    return await create_once(uow, request, key=key, scope="tickets", build=build)


@router.get("/tickets/{ticket_id}", response_model=schemas.TicketDetail, tags=["tickets"])
async def get_ticket(ticket_id: str, uow: ReadUoW, deps: EscalationDeps) -> schemas.TicketDetail:
    return await queries.ticket_detail(uow, await store.get_ticket(uow, ticket_id), deps.now())


async def _author(uow: UnitOfWork, who: Caller, ticket_id: str, verb: str) -> Author:
    return await access.may_act(uow, who, await store.get_ticket(uow, ticket_id), verb)


async def _done(uow: UnitOfWork, deps: EscalationDeps, *, t: Ticket) -> schemas.TicketDetail:
    await uow.flush()
    result = await queries.ticket_detail(uow, t, deps.now())
    await uow.commit()
    return result


async def _with_comment(uow: UnitOfWork, deps: EscalationDeps, *, who: Caller, ticket_id: str, verb: str,
                        act: CommentedAction, data: schemas.Comment | None) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, verb)
    t = await act(uow, deps, ticket_id=ticket_id, actor=author, now=deps.now(), text=data.note if data else None)
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/acknowledge", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def acknowledge(ticket_id: str, uow: UoW, deps: EscalationDeps, who: Caller,
                      data: schemas.Comment | None = None) -> schemas.TicketDetail:
    return await _with_comment(uow, deps, who=who, ticket_id=ticket_id, verb="acknowledge", act=tickets.acknowledge, data=data)


@router.post("/tickets/{ticket_id}/start", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Mark in progress (acknowledges first if needed)")
async def start(ticket_id: str, uow: UoW, deps: EscalationDeps, who: Caller,
                data: schemas.Comment | None = None) -> schemas.TicketDetail:
    return await _with_comment(uow, deps, who=who, ticket_id=ticket_id, verb="start work on", act=tickets.start_work, data=data)


@router.post("/tickets/{ticket_id}/resolve", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def resolve(ticket_id: str, data: schemas.Resolve, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "resolve")
    t = await store.get_ticket(uow, ticket_id, lock=True)
    await tickets.resolve(uow, deps, ticket=t, actor=author, reason=data.reason, now=deps.now(), text=data.note,
                          duplicate_of=data.duplicate_of)
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/close", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def close(ticket_id: str, uow: UoW, deps: EscalationDeps, who: Caller,
                data: schemas.Comment | None = None) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "close")
    t = await tickets.close(uow, ticket_id=ticket_id, actor=author, now=deps.now(), text=data.note if data else None)
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/reopen", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def reopen(ticket_id: str, data: schemas.Note, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "reopen")
    t = await tickets.reopen(uow, deps, ticket_id=ticket_id, actor=author, now=deps.now(), text=data.text)
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/severity", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Change the severity, with a written reason (kept in the timeline)")
async def change_severity(ticket_id: str, data: schemas.SeverityChange, uow: UoW, deps: EscalationDeps,
                          who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "change the severity of")
    t = await tickets.change_severity(uow, deps, ticket_id=ticket_id, actor=author, severity=data.severity,
                                      reason=data.reason, now=deps.now())
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=schemas.TimelineRead, tags=["ticket actions"])
async def add_note(ticket_id: str, data: schemas.Note, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TimelineRead:
    author = await _author(uow, who, ticket_id, "add a note to")
    entry = await tickets.add_note(uow, ticket_id=ticket_id, actor=author, text=data.text, now=deps.now())
    result = schemas.TimelineRead.model_validate(entry)
    await uow.commit()
    return result


@router.post("/tickets/{ticket_id}/assign", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def assign(ticket_id: str, data: schemas.Assign, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "reassign")
    t = await tickets.assign(uow, deps, ticket_id=ticket_id, actor=author, data=data, now=deps.now())
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/mute", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Snooze escalation of this ticket until a time, with a reason")
async def mute(ticket_id: str, data: schemas.MuteIn, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "mute")
    t = await mutes.mute_ticket(uow, ticket_id=ticket_id, actor=author, data=data, now=deps.now())
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/unmute", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def unmute(ticket_id: str, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "unmute")
    t = await mutes.unmute_ticket(uow, ticket_id=ticket_id, actor=author, now=deps.now())
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/links", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def link(ticket_id: str, data: schemas.LinkIn, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "link")
    t = await links.add_link(uow, ticket_id=ticket_id, actor=author, data=data, now=deps.now())
    return await _done(uow, deps, t=t)


@router.post("/tickets/{ticket_id}/actions", status_code=201, response_model=schemas.ActionRead, tags=["action log"])
async def add_action(ticket_id: str, data: schemas.ActionIn, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.ActionRead:
    author = await _author(uow, who, ticket_id, "log an action on")
    a = await actions.add_action(uow, deps, ticket_id=ticket_id, actor=author, data=data, now=deps.now())
    result = schemas.ActionRead.model_validate(a)
    await uow.commit()
    return result


@router.get("/tickets/{ticket_id}/actions", response_model=list[schemas.ActionRead], tags=["action log"])
async def list_actions(ticket_id: str, uow: ReadUoW) -> list[schemas.ActionRead]:
    t = await store.get_ticket(uow, ticket_id)
    return [schemas.ActionRead.model_validate(a) for a in await queries.ticket_actions(uow, t.id)]


@router.patch("/tickets/{ticket_id}/actions/{action_id}", response_model=schemas.ActionRead, tags=["action log"])
async def update_action(ticket_id: str, action_id: RowId, data: schemas.ActionUpdate, uow: UoW, deps: EscalationDeps,
                        who: Caller) -> schemas.ActionRead:
    author = await _author(uow, who, ticket_id, "update an action of")
    a = await actions.update_action(uow, ticket_id=ticket_id, action_id=action_id, actor=author, data=data,
                                    now=deps.now())
    await uow.flush()
    result = schemas.ActionRead.model_validate(a)
    await uow.commit()
    return result


@router.post("/tickets/{ticket_id}/promote", status_code=201, response_model=schemas.ProjectRead, tags=["projects"],
             summary="Every flag can become a project: owner, goal, due date, milestones")
async def promote(ticket_id: str, data: schemas.Promote, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.ProjectRead:
    author = await _author(uow, who, ticket_id, "promote")
    now = deps.now()
    p = await projects.promote(uow, ticket_id=ticket_id, actor=author, data=data, now=now)
    result = await queries.project_read(uow, p, deps.local_date(now))
    await uow.commit()
    return result
