"""Escalation REST API: thin routers over ``service``; the router owns the commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Header, Path, Query, Request, Response

from citystat_common.errors import Invalid
from citystat_common.idempotency import check_key, remember, replayed, request_fingerprint
from citystat_common.pagination import Page, Paging
from citystat_common.uow import UnitOfWork
from citystat_common.web import Context, UoW
from escalation import access, references, schemas, service
from escalation.access import Caller
from escalation.authors import Author
from escalation.models import OPEN_STATUSES, Action, Escalation, Ticket, TicketLink, TimelineEntry

router = APIRouter()
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe creation")]
# Row ids are 32-bit integers on PostgreSQL: a larger one is the caller's 422, not the driver's 500.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def _now(ctx: Context) -> datetime:
    return ctx.extras["clock"]()


def _deps(ctx: Context) -> service.Deps:
    return ctx.extras["deps"]


async def _create(
    uow: UnitOfWork, request: Request, key: str | None, scope: str, build: Callable[[], Awaitable[Any]]
) -> Response:
    """Run a creation once per Idempotency-Key, storing the response with the change."""
    key = check_key(key)
    fingerprint = request_fingerprint(await request.body())
    if (previous := await replayed(uow, key=key, scope=scope, fingerprint=fingerprint)) is not None:
        return previous
    model = await build()
    body = orjson.dumps(model.model_dump(mode="json"))
    await remember(uow, key=key, scope=scope, fingerprint=fingerprint, status_code=201, body=body,
                   media_type="application/json")
    await uow.commit()
    return Response(body, status_code=201, media_type="application/json")


async def ticket_detail(uow: UnitOfWork, t: Ticket, now: datetime) -> schemas.TicketDetail:
    s = uow.session
    timeline = (await s.execute(
        sa.select(TimelineEntry).where(TimelineEntry.ticket_id == t.id).order_by(TimelineEntry.at, TimelineEntry.id)
    )).scalars().all()
    actions = (await s.execute(sa.select(Action).where(Action.ticket_id == t.id).order_by(Action.id))).scalars().all()
    escalations = (await s.execute(
        sa.select(Escalation).where(Escalation.ticket_id == t.id).order_by(Escalation.to_level)
    )).scalars().all()
    links = (await s.execute(
        sa.select(TicketLink).where(sa.or_(TicketLink.ticket_id == t.id, TicketLink.other_id == t.id))
        .order_by(TicketLink.id)
    )).scalars().all()
    base = service.ticket_read(t, now).model_dump()
    return schemas.TicketDetail(
        **base,
        chain=[schemas.ChainLinkOut(level=c["level"], role=c["role"],
                                    person=schemas.PersonOut(**c["person"]) if c.get("person") else None)
               for c in (t.chain or [])],
        timeline=[schemas.TimelineRead.model_validate(e) for e in timeline],
        actions=[schemas.ActionRead.model_validate(a) for a in actions],
        escalations=[schemas.EscalationRead.model_validate(e) for e in escalations],
        links=[schemas.LinkRead(other_ticket_id=lk.other_id if lk.ticket_id == t.id else lk.ticket_id, kind=lk.kind,
                                direction="outgoing" if lk.ticket_id == t.id else "incoming") for lk in links],
    )


# --- tickets ---------------------------------------------------------------------------------


def tickets_stmt(
    *, status: Sequence[str] | None, department: str | None, cluster: str | None, severity: list[int] | None,
    level: list[int] | None, assignee: str | None, source: str | None, indicator_id: str | None,
    project_id: str | None, open_only: bool = False,
) -> sa.Select:  # type: ignore[type-arg]
    stmt = sa.select(Ticket).order_by(Ticket.opened_at.desc(), Ticket.id)
    if open_only:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    if status:
        stmt = stmt.where(Ticket.status.in_(status))
    if department:
        stmt = stmt.where(Ticket.department_code == department.upper())
    if cluster:
        stmt = stmt.where(Ticket.cluster_code == cluster.upper())
    if severity:
        stmt = stmt.where(Ticket.severity.in_(severity))
    if level:
        stmt = stmt.where(Ticket.level.in_(level))
    if assignee:
        stmt = stmt.where(sa.or_(Ticket.assignee_id == assignee,
                                 sa.func.lower(Ticket.assignee_name).like(f"%{assignee.lower()}%")))
    if source:
        stmt = stmt.where(Ticket.source == source)
    if indicator_id:
        stmt = stmt.where(Ticket.indicator_id == indicator_id)
    if project_id:
        stmt = stmt.where(Ticket.project_id == project_id)
    return stmt


@router.get("/tickets", response_model=Page[schemas.TicketRead], tags=["tickets"])
async def list_tickets(
    uow: UoW, ctx: Context, paging: Paging,
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
    stmt = tickets_stmt(status=status, department=department, cluster=cluster, severity=severity, level=level,
                        assignee=assignee, source=source, indicator_id=indicator_id, project_id=project_id,
                        open_only=open)
    total = (await uow.session.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    items = (await uow.session.execute(stmt.offset(paging.offset).limit(paging.page_size))).scalars().all()
    now = _now(ctx)
    return Page(items=[service.ticket_read(t, now) for t in items], total=total, page=paging.page,
                page_size=paging.page_size)


@router.post("/tickets", status_code=201, response_model=schemas.TicketDetail, tags=["tickets"],
             summary="Open a manual flag (no threshold needed), routed like a breach")
async def create_ticket(data: schemas.ManualFlag, uow: UoW, ctx: Context, who: Caller, request: Request,
                        key: IdemKey = None) -> Response:
    async def build() -> schemas.TicketDetail:
        now, deps = _now(ctx), _deps(ctx)
        severity = data.severity or ctx.settings.manual_default_severity  # type: ignore[attr-defined]
        await references.known_department(uow, deps, data.department_code)
        author = await access.may_act_for_department(uow, who, data.department_code, "open a flag")
        indicator_id, indicator_code = await references.check_flag_indicator(
            uow, department_code=data.department_code, indicator_id=data.indicator_id,
            indicator_code=data.indicator_code)
        t = await service.open_ticket(
            uow, deps, now=now, actor=author, department_code=data.department_code, title=data.title,
            source="manual", severity=severity, function_tag=data.function_tag, reason=data.reason,
            description=data.description, indicator_id=indicator_id, indicator_code=indicator_code,
        )
        await uow.flush()
        return await ticket_detail(uow, t, now)

    return await _create(uow, request, key, "tickets", build)


@router.get("/tickets/{ticket_id}", response_model=schemas.TicketDetail, tags=["tickets"])
async def get_ticket(ticket_id: str, uow: UoW, ctx: Context) -> schemas.TicketDetail:
    return await ticket_detail(uow, await service.get_ticket(uow, ticket_id), _now(ctx))


async def _author(uow: UnitOfWork, who: Caller, ticket_id: str, verb: str) -> Author:
    return await access.may_act(uow, who, await service.get_ticket(uow, ticket_id), verb)


async def _done(uow: UnitOfWork, t: Ticket, ctx: Context) -> schemas.TicketDetail:
    await uow.flush()
    result = await ticket_detail(uow, t, _now(ctx))
    await uow.commit()
    return result


@router.post("/tickets/{ticket_id}/acknowledge", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def acknowledge(ticket_id: str, uow: UoW, ctx: Context, who: Caller,
                      data: schemas.Comment | None = None) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "acknowledge")
    t = await service.acknowledge(uow, _deps(ctx), ticket_id=ticket_id, actor=author, now=_now(ctx),
                                  text=data.note if data else None)
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/start", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Mark in progress (acknowledges first if needed)")
async def start(ticket_id: str, uow: UoW, ctx: Context, who: Caller,
                data: schemas.Comment | None = None) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "start work on")
    t = await service.start_work(uow, _deps(ctx), ticket_id=ticket_id, actor=author, now=_now(ctx),
                                 text=data.note if data else None)
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/resolve", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def resolve(ticket_id: str, data: schemas.Resolve, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "resolve")
    t = await service.get_ticket(uow, ticket_id, lock=True)
    await service.resolve(uow, _deps(ctx), ticket=t, actor=author, reason=data.reason, now=_now(ctx), text=data.note,
                          duplicate_of=data.duplicate_of)
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/close", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def close(ticket_id: str, uow: UoW, ctx: Context, who: Caller,
                data: schemas.Comment | None = None) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "close")
    t = await service.close(uow, ticket_id=ticket_id, actor=author, now=_now(ctx), text=data.note if data else None)
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/reopen", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def reopen(ticket_id: str, data: schemas.Note, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "reopen")
    t = await service.reopen(uow, _deps(ctx), ticket_id=ticket_id, actor=author, now=_now(ctx), text=data.text)
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/severity", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Change the severity, with a written reason (kept in the timeline)")
async def change_severity(ticket_id: str, data: schemas.SeverityChange, uow: UoW, ctx: Context,
                          who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "change the severity of")
    t = await service.change_severity(uow, _deps(ctx), ticket_id=ticket_id, actor=author, severity=data.severity,
                                      reason=data.reason, now=_now(ctx))
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=schemas.TimelineRead, tags=["ticket actions"])
async def add_note(ticket_id: str, data: schemas.Note, uow: UoW, ctx: Context, who: Caller) -> schemas.TimelineRead:
    author = await _author(uow, who, ticket_id, "add a note to")
    entry = await service.add_note(uow, ticket_id=ticket_id, actor=author, text=data.text, now=_now(ctx))
    result = schemas.TimelineRead.model_validate(entry)
    await uow.commit()
    return result


@router.post("/tickets/{ticket_id}/assign", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def assign(ticket_id: str, data: schemas.Assign, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "reassign")
    t = await service.assign(uow, _deps(ctx), ticket_id=ticket_id, actor=author, data=data, now=_now(ctx))
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/mute", response_model=schemas.TicketDetail, tags=["ticket actions"],
             summary="Snooze escalation of this ticket until a time, with a reason")
async def mute(ticket_id: str, data: schemas.MuteIn, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "mute")
    t = await service.mute_ticket(uow, ticket_id=ticket_id, actor=author, data=data, now=_now(ctx))
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/unmute", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def unmute(ticket_id: str, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "unmute")
    t = await service.unmute_ticket(uow, ticket_id=ticket_id, actor=author, now=_now(ctx))
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/links", response_model=schemas.TicketDetail, tags=["ticket actions"])
async def link(ticket_id: str, data: schemas.LinkIn, uow: UoW, ctx: Context, who: Caller) -> schemas.TicketDetail:
    author = await _author(uow, who, ticket_id, "link")
    t = await service.add_link(uow, ticket_id=ticket_id, actor=author, data=data, now=_now(ctx))
    return await _done(uow, t, ctx)


@router.post("/tickets/{ticket_id}/actions", status_code=201, response_model=schemas.ActionRead, tags=["action log"])
async def add_action(ticket_id: str, data: schemas.ActionIn, uow: UoW, ctx: Context, who: Caller) -> schemas.ActionRead:
    author = await _author(uow, who, ticket_id, "log an action on")
    a = await service.add_action(uow, _deps(ctx), ticket_id=ticket_id, actor=author, data=data, now=_now(ctx))
    result = schemas.ActionRead.model_validate(a)
    await uow.commit()
    return result


@router.get("/tickets/{ticket_id}/actions", response_model=list[schemas.ActionRead], tags=["action log"])
async def list_actions(ticket_id: str, uow: UoW) -> list[schemas.ActionRead]:
    t = await service.get_ticket(uow, ticket_id)
    rows = (await uow.session.execute(sa.select(Action).where(Action.ticket_id == t.id).order_by(Action.id))).scalars()
    return [schemas.ActionRead.model_validate(a) for a in rows]


@router.patch("/tickets/{ticket_id}/actions/{action_id}", response_model=schemas.ActionRead, tags=["action log"])
async def update_action(ticket_id: str, action_id: RowId, data: schemas.ActionUpdate, uow: UoW, ctx: Context,
                        who: Caller) -> schemas.ActionRead:
    author = await _author(uow, who, ticket_id, "update an action of")
    a = await service.update_action(uow, ticket_id=ticket_id, action_id=action_id, actor=author, data=data,
                                    now=_now(ctx))
    await uow.flush()
    result = schemas.ActionRead.model_validate(a)
    await uow.commit()
    return result


@router.post("/tickets/{ticket_id}/promote", status_code=201, response_model=schemas.ProjectRead, tags=["projects"],
             summary="Every flag can become a project: owner, goal, due date, milestones")
async def promote(ticket_id: str, data: schemas.Promote, uow: UoW, ctx: Context, who: Caller) -> schemas.ProjectRead:
    author = await _author(uow, who, ticket_id, "promote")
    now = _now(ctx)
    p = await service.promote(uow, ticket_id=ticket_id, actor=author, data=data, now=now)
    result = await service.project_read(uow, p, now.astimezone(_deps(ctx).calendar.tz).date())
    await uow.commit()
    return result
