"""Escalation REST API, the rest of it: projects, mutes, policies, the local copy of the
directory and reports. Thin routers over ``service``; the router owns the commit."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from citystat_common.errors import Invalid, NotFound
from citystat_common.pagination import Page, Paging, page_of, paginate
from citystat_common.web import ReadUoW, UoW
from escalation import access, mutes, policies, queries, reports, schemas, store, ticket_feed
from escalation.access import Caller
from escalation.api import RowId
from escalation.deps import EscalationDeps
from escalation.limits import check_due
from escalation.models import Milestone, Mute

router = APIRouter()
SNAPSHOT_BATCH = 500
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


# --- projects --------------------------------------------------------------------------------


@router.get("/projects", response_model=Page[schemas.ProjectRead], tags=["projects"])
async def list_projects(
    uow: ReadUoW, deps: EscalationDeps, *, paging: Paging,
    status: Literal["active", "on_hold", "done", "cancelled"] | None = None,
    department: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[schemas.ProjectRead]:
    stmt = queries.projects_stmt(status=status, department=department)
    rows, total = await paginate(uow.session, stmt, paging)
    today = deps.local_date(deps.now())
    return page_of([await queries.project_read(uow, p, today) for p in rows], total, paging)


@router.get("/projects/{project_id}", response_model=schemas.ProjectRead, tags=["projects"])
async def get_project(project_id: str, uow: ReadUoW, deps: EscalationDeps) -> schemas.ProjectRead:
    today = deps.local_date(deps.now())
    return await queries.project_read(uow, await store.get_project(uow, project_id), today)


@router.patch("/projects/{project_id}", response_model=schemas.ProjectRead, tags=["projects"])
async def update_project(project_id: str, data: schemas.ProjectUpdate, uow: UoW, deps: EscalationDeps,
                         who: Caller) -> schemas.ProjectRead:
    p = await store.get_project(uow, project_id)
    await access.may_act_for_department(uow, who, p.department_code, "change projects")
    now = deps.now()
    check_due(data.due_date, now.date())
    for k, v in data.model_dump(exclude_unset=True).items():
        setattr(p, k, v)
    p.updated_at = now
    await uow.flush()
    result = await queries.project_read(uow, p, deps.local_date(now))
    await uow.commit()
    return result


@router.post("/projects/{project_id}/milestones", status_code=201, response_model=schemas.ProjectRead, tags=["projects"])
async def add_milestone(project_id: str, data: schemas.MilestoneIn, uow: UoW, deps: EscalationDeps,
                        who: Caller) -> schemas.ProjectRead:
    p = await store.get_project(uow, project_id)
    await access.may_act_for_department(uow, who, p.department_code, "change projects")
    check_due(data.due_date, deps.now().date())
    uow.session.add(Milestone(project_id=p.id, title=data.title, due_date=data.due_date))
    await uow.flush()
    result = await queries.project_read(uow, p, deps.local_date(deps.now()))
    await uow.commit()
    return result


@router.patch("/projects/{project_id}/milestones/{milestone_id}", response_model=schemas.ProjectRead, tags=["projects"])
async def update_milestone(project_id: str, milestone_id: RowId, data: schemas.MilestoneUpdate, uow: UoW, deps: EscalationDeps,
                           who: Caller) -> schemas.ProjectRead:
    p = await store.get_project(uow, project_id)
    await access.may_act_for_department(uow, who, p.department_code, "change projects")
    m = await uow.session.get(Milestone, milestone_id)
    if m is None or m.project_id != p.id:
        raise NotFound(f"no milestone {milestone_id} in project {project_id}", field="milestone_id")
    now = deps.now()
    check_due(data.due_date, now.date())
    for k, v in data.model_dump(exclude_unset=True).items():
        setattr(m, k, v)
    if data.done is not None:
        m.done_at = now if data.done else None
    await uow.flush()
    result = await queries.project_read(uow, p, deps.local_date(now))
    await uow.commit()
    return result


# --- mutes, policies, local directory copy ---------------------------------------------------


@router.post("/mutes", status_code=201, response_model=schemas.MuteRead, tags=["snooze"],
             summary="Silence escalation of a department's tickets until a time")
async def mute_department(data: schemas.DepartmentMuteIn, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.MuteRead:
    author = await access.may_act_for_department(uow, who, data.department_code, "mute escalations")
    m = await mutes.mute_department(uow, deps, actor=author, data=data, now=deps.now())
    result = schemas.MuteRead.model_validate(m)
    await uow.commit()
    return result


@router.get("/mutes", response_model=list[schemas.MuteRead], tags=["snooze"])
async def list_mutes(uow: ReadUoW, deps: EscalationDeps, *, active: bool = True) -> list[schemas.MuteRead]:
    rows = await queries.mutes(uow, active_at=deps.now() if active else None)
    return [schemas.MuteRead.model_validate(m) for m in rows]


@router.delete("/mutes/{mute_id}", response_model=schemas.MuteRead, tags=["snooze"])
async def cancel_mute(mute_id: RowId, uow: UoW, deps: EscalationDeps, who: Caller) -> schemas.MuteRead:
    held = await uow.session.get(Mute, mute_id)
    if held is not None and held.ticket_id:
        await access.may_act(uow, who, await store.get_ticket(uow, held.ticket_id), "unmute")
    elif held is not None and held.department_code:
        await access.may_act_for_department(uow, who, held.department_code, "cancel mutes")
    m = await mutes.cancel_mute(uow, mute_id=mute_id, now=deps.now())
    await uow.flush()
    result = schemas.MuteRead.model_validate(m)
    await uow.commit()
    return result


@router.get("/policies", response_model=list[schemas.PolicyRead], tags=["policies"])
async def list_policies(uow: ReadUoW) -> list[schemas.PolicyRead]:
    return [schemas.PolicyRead.model_validate(p) for p in await store.policies(uow)]


@router.get("/policies/{name}", response_model=schemas.PolicyRead, tags=["policies"])
async def get_policy(name: str, uow: ReadUoW) -> schemas.PolicyRead:
    return schemas.PolicyRead.model_validate(await queries.policy(uow, name))


@router.put("/policies/{name}", response_model=schemas.PolicyRead, tags=["policies"],
            summary="Create or replace a policy (idempotent); new tickets and due times use it")
async def put_policy(name: str, data: schemas.PolicyIn, uow: UoW, deps: EscalationDeps, who: Caller,
                     response: Response) -> schemas.PolicyRead:
    if not name or len(name) > 100:
        raise Invalid("policy name is 1-100 characters", field="name")
    await access.office_only(uow, who, verb="change escalation policies")
    p, created = await policies.put_policy(uow, deps, name=name, data=data)
    result = schemas.PolicyRead.model_validate(p)
    await uow.commit()
    response.status_code = 201 if created else 200
    return result


@router.post("/ticket-snapshots", tags=["tickets"],
             summary="Publish the snapshot (escalation.ticket.updated) of every open ticket again")
async def republish_snapshots(uow: UoW, deps: EscalationDeps, *, who: Caller) -> dict[str, int]:
    """For tickets last changed before snapshots were published, or a consumer's copy rebuilt;
    harmless to repeat. Committed per batch, so a long run never holds one huge transaction."""
    await access.office_only(uow, who, verb="publish ticket snapshots")
    published, after = 0, None
    while True:
        ids = await ticket_feed.republish_open(uow, now=deps.now(), after=after, limit=SNAPSHOT_BATCH)
        await uow.commit()
        published += len(ids)
        if len(ids) < SNAPSHOT_BATCH:
            return {"published": published}
        after = ids[-1]


@router.get("/routing-copy", tags=["routing"], summary="The local copy of the senior teams (from directory.changes)")
async def routing_copy(uow: ReadUoW) -> list[dict[str, Any]]:
    return await queries.routing_copy(uow)


# --- reports ---------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], fmt: str, name: str) -> Any:
    if fmt == "csv":
        return PlainTextResponse(reports.to_csv(rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return rows


@router.get("/reports/open-tickets", tags=["reports"], summary="Open tickets by department, cluster, level and age")
async def report_open(
    uow: ReadUoW, deps: EscalationDeps, *, format: Format = "json",
    group_by: Annotated[list[Literal["department", "cluster", "level", "age"]] | None,
                        Query(description="repeatable; default all four")] = None,
) -> Any:
    rows = await reports.open_tickets(uow, now=deps.now(), group_by=list(group_by or reports.GROUPS))
    return _table(rows, format, "open-tickets")


@router.get("/reports/response-times", tags=["reports"],
            summary="Time to acknowledge and to resolve per department (hours)")
async def report_response(uow: ReadUoW, format: Format = "json") -> Any:
    return _table(await reports.response_times(uow), format, "response-times")


@router.get("/reports/escalations", tags=["reports"], summary="Escalations per month and department")
async def report_escalations(uow: ReadUoW, format: Format = "json") -> Any:
    return _table(await reports.escalations_per_month(uow), format, "escalations")
