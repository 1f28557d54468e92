"""Directory REST API: thin routers over ``service``; the router owns the commit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response

from citystat_common.auth import OptionalPrincipal, Principal, can_see_personal_data, require_scope
from citystat_common.bounds import PlausibleDatetime
from citystat_common.errors import Invalid
from citystat_common.filters import where_given
from citystat_common.idempotency import create_once
from citystat_common.pagination import Page, Paging, page_of, paginate
from citystat_common.web import ReadUoW, UoW
from directory import actors, import_file, importer, people, schemas, service
from directory.deps import Deps, DirectoryDeps
from directory.models import AuditEntry, Cluster, Department, Person, RoleAssignment
from directory.params import clean_parameters

router = APIRouter(dependencies=[Depends(clean_parameters)])
Writer = Annotated[Principal, require_scope("directory:write")]
Staff = Annotated[Principal, require_scope("staff")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe creation")]


def department_read(d: Department) -> schemas.DepartmentRead:
    return schemas.DepartmentRead(
        id=d.id, code=d.code, name=d.name, cluster=d.cluster.code if d.cluster else None,
        cluster_name=d.cluster.name if d.cluster else None, active=d.active, created_at=d.created_at,
        updated_at=d.updated_at,
    )


def person_read(p: Person, principal: Principal | None, *, personal: bool | None = None) -> schemas.PersonRead:
    personal = can_see_personal_data(principal) if personal is None else personal
    return schemas.PersonRead(
        id=p.id, name=p.name, title=p.title, active=p.active,
        email=p.email if personal else None, phone=p.phone if personal else None,
        department=p.department.code if p.department else None, notify=p.notify,  # type: ignore[arg-type]
    )


def assignment_read(
    a: RoleAssignment, dept_code: str | None = None, cluster_code: str | None = None, *, personal: bool = True
) -> schemas.AssignmentRead:
    by = actors.assignment_actor(a)
    if by is not None and not personal:
        by.email = None  # the history is public; a recorder's email is for staff
    return schemas.AssignmentRead(
        id=a.id, role=a.role, department=dept_code, cluster=cluster_code,
        person=schemas.PersonBrief.model_validate(a.person), starts_at=a.starts_at, ends_at=a.ends_at,
        reason=a.reason, created_by=a.created_by, created_by_actor=by,
    )


def upcoming_read(items: list[RoleAssignment]) -> list[schemas.Upcoming]:
    return [
        schemas.Upcoming(role=a.role, person=schemas.PersonBrief.model_validate(a.person), starts_at=a.starts_at)
        for a in items
    ]


def _aware(at: datetime | None, deps: Deps) -> datetime:
    if at is not None and at.tzinfo is None:
        raise Invalid("at must carry a timezone, e.g. 2026-11-24T10:00:00Z", field="at")
    return at or deps.now()


At = Annotated[PlausibleDatetime | None, Query(description="as of this time (with a timezone); default now")]


# --- clusters ----------------------------------------------------------------------------


async def _cluster_read(uow: UoW, cluster: Cluster, now: datetime) -> schemas.ClusterRead:
    deputy = await service.holder(uow, "deputy_mayor", cluster_id=cluster.id, at=now)
    later = await service.upcoming(uow, after=now, cluster_id=cluster.id, role="deputy_mayor")
    return schemas.ClusterRead(
        code=cluster.code, name=cluster.name,
        deputy_mayor=schemas.PersonBrief.model_validate(deputy.person) if deputy else None,
        upcoming=upcoming_read(later),
        departments=await service.cluster_departments(uow, cluster),
    )


@router.get("/clusters", response_model=list[schemas.ClusterRead], tags=["clusters"])
async def list_clusters(uow: ReadUoW, deps: DirectoryDeps) -> list[schemas.ClusterRead]:
    clusters = (await uow.session.execute(sa.select(Cluster).order_by(Cluster.code))).scalars().all()
    return [await _cluster_read(uow, c, deps.now()) for c in clusters]


@router.post("/clusters", status_code=201, response_model=schemas.ClusterRead, tags=["clusters"])
async def create_cluster(data: schemas.ClusterCreate, uow: UoW, deps: DirectoryDeps, who: Writer, request: Request, key: IdemKey = None) -> Response:
    async def build() -> schemas.ClusterRead:
        cluster = await service.create_cluster(uow, deps, actor=who.actor(), data=data)
        return await _cluster_read(uow, cluster, deps.now())

    return await create_once(uow, request, key=key, scope="clusters", build=build)


@router.get("/clusters/{code}", response_model=schemas.ClusterRead, tags=["clusters"])
async def get_cluster(code: str, uow: ReadUoW, deps: DirectoryDeps) -> schemas.ClusterRead:
    return await _cluster_read(uow, await service.get_cluster(uow, code), deps.now())


@router.patch("/clusters/{code}", response_model=schemas.ClusterRead, tags=["clusters"])
async def update_cluster(code: str, data: schemas.ClusterUpdate, uow: UoW, deps: DirectoryDeps, who: Writer) -> schemas.ClusterRead:
    cluster = await service.update_cluster(uow, deps, actor=who.actor(), code=code, data=data)
    result = await _cluster_read(uow, cluster, deps.now())
    await uow.commit()
    return result


@router.put("/clusters/{code}/deputy-mayor", response_model=schemas.AssignmentRead, tags=["clusters"])
async def assign_deputy_mayor(code: str, data: schemas.AssignmentCreate, uow: UoW, deps: DirectoryDeps, who: Writer) -> schemas.AssignmentRead:
    cluster = await service.get_cluster(uow, code)
    a = await service.assign_role(
        uow, deps, actor=who.actor(), role="deputy_mayor", person_id=data.person_id, cluster=cluster,
        starts_at=data.starts_at, reason=data.reason,
    )
    result = assignment_read(a, cluster_code=cluster.code)
    await uow.commit()
    return result


@router.get("/managing-director", response_model=schemas.ManagingDirectorRead, tags=["clusters"])
async def get_managing_director(uow: ReadUoW, deps: DirectoryDeps) -> schemas.ManagingDirectorRead:
    now = deps.now()
    a = await service.holder(uow, "managing_director", at=now)
    return schemas.ManagingDirectorRead(
        role="managing_director", person=schemas.PersonBrief.model_validate(a.person) if a else None,
        since=a.starts_at if a else None,
        upcoming=upcoming_read(await service.upcoming(uow, after=now, role="managing_director")),
    )


@router.put("/managing-director", response_model=schemas.AssignmentRead, tags=["clusters"])
async def assign_managing_director(data: schemas.AssignmentCreate, uow: UoW, deps: DirectoryDeps, who: Writer) -> schemas.AssignmentRead:
    a = await service.assign_role(
        uow, deps, actor=who.actor(), role="managing_director", person_id=data.person_id, starts_at=data.starts_at, reason=data.reason
    )
    result = assignment_read(a)
    await uow.commit()
    return result


# --- departments -------------------------------------------------------------------------


@router.get("/departments", response_model=Page[schemas.DepartmentRead], tags=["departments"])
async def list_departments(
    uow: ReadUoW,
    paging: Paging,
    cluster: Annotated[str | None, Query(max_length=40)] = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="search in code and name")] = None,
) -> Page[schemas.DepartmentRead]:
    items, total = await paginate(uow.session, service.list_departments_stmt(cluster=cluster, active=active, q=q), paging)
    return page_of([department_read(d) for d in items], total, paging)


@router.post("/departments", status_code=201, response_model=schemas.DepartmentRead, tags=["departments"])
async def create_department(
    data: schemas.DepartmentCreate, uow: UoW, deps: DirectoryDeps, who: Writer, request: Request, key: IdemKey = None
) -> Response:
    async def build() -> schemas.DepartmentRead:
        return department_read(await service.create_department(uow, deps, actor=who.actor(), data=data))

    return await create_once(uow, request, key=key, scope="departments", build=build)


@router.get("/departments/{code}", response_model=schemas.DepartmentRead, tags=["departments"])
async def get_department(code: str, uow: ReadUoW) -> schemas.DepartmentRead:
    return department_read(await service.get_department(uow, code))


@router.patch("/departments/{code}", response_model=schemas.DepartmentRead, tags=["departments"])
async def update_department(code: str, data: schemas.DepartmentUpdate, uow: UoW, deps: DirectoryDeps, who: Writer) -> schemas.DepartmentRead:
    result = department_read(await service.update_department(uow, deps, actor=who.actor(), code=code, data=data))
    await uow.commit()
    return result


@router.delete("/departments/{code}", status_code=204, tags=["departments"], summary="Deactivate (history is kept)")
async def deactivate_department(code: str, uow: UoW, deps: DirectoryDeps, who: Writer) -> Response:
    await service.update_department(uow, deps, actor=who.actor(), code=code, data=schemas.DepartmentUpdate(active=False))
    await uow.commit()
    return Response(status_code=204)


@router.get("/departments/{code}/senior-team", response_model=schemas.SeniorTeamRead, tags=["senior team"])
async def get_senior_team(code: str, uow: ReadUoW, deps: DirectoryDeps, at: At = None) -> schemas.SeniorTeamRead:
    """Who holds each role at ``at``, and the assignments recorded to start after it."""
    when = _aware(at, deps)
    dept = await service.get_department(uow, code)
    team = await service.senior_team(uow, dept, when)
    return schemas.SeniorTeamRead(
        department=dept.code,
        at=when,
        members=[
            schemas.RoleHolder(
                role=role, person=schemas.PersonBrief.model_validate(a.person) if a else None,
                since=a.starts_at if a else None,
            )
            for role, a in team.items()
        ],
        upcoming=upcoming_read(await service.upcoming(uow, after=when, department_id=dept.id)),
    )


@router.put(
    "/departments/{code}/senior-team/{role}", response_model=schemas.AssignmentRead, tags=["senior team"],
    summary="Assign a role; the previous holder's assignment ends when this one starts",
)
async def assign_senior_role(
    code: str, role: schemas.SeniorRole, data: schemas.AssignmentCreate, uow: UoW, deps: DirectoryDeps, who: Writer
) -> schemas.AssignmentRead:
    dept = await service.get_department(uow, code)
    a = await service.assign_role(
        uow, deps, actor=who.actor(), role=role, person_id=data.person_id, department=dept, starts_at=data.starts_at,
        reason=data.reason,
    )
    result = assignment_read(a, dept_code=dept.code)
    await uow.commit()
    return result


@router.delete("/departments/{code}/senior-team/{role}", status_code=204, tags=["senior team"], summary="Leave a role vacant")
async def vacate_senior_role(
    code: str, role: schemas.SeniorRole, uow: UoW, deps: DirectoryDeps, who: Writer,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    dept = await service.get_department(uow, code)
    await service.vacate_role(uow, deps, actor=who.actor(), role=role, department=dept, reason=reason)
    await uow.commit()
    return Response(status_code=204)


@router.get("/assignments", response_model=Page[schemas.AssignmentRead], tags=["senior team"])
async def list_assignments(
    uow: ReadUoW, paging: Paging, principal: OptionalPrincipal,
    department: Annotated[str | None, Query(max_length=40)] = None,
    role: schemas.AnyRole | None = None,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
) -> Page[schemas.AssignmentRead]:
    stmt = (
        sa.select(RoleAssignment, Department.code, Cluster.code)
        .outerjoin(Department, RoleAssignment.department_id == Department.id)
        .outerjoin(Cluster, RoleAssignment.cluster_id == Cluster.id)
        .order_by(RoleAssignment.starts_at.desc(), RoleAssignment.id.desc())
    )
    stmt = where_given(stmt, (Department.code, department), (RoleAssignment.role, role),
                       (RoleAssignment.person_id, person_id))
    rows, total = await paginate(uow.session, stmt, paging)
    personal = can_see_personal_data(principal)
    return page_of([assignment_read(a, d, c, personal=personal) for a, d, c in rows], total, paging)


# --- people ------------------------------------------------------------------------------


@router.get("/people", response_model=Page[schemas.PersonRead], tags=["people"])
async def list_people(
    uow: ReadUoW, paging: Paging, principal: OptionalPrincipal,
    q: Annotated[str | None, Query(max_length=200, description="part of the name")] = None, active: bool | None = None,
    email: Annotated[str | None, Query(max_length=320, description="exactly this email, in any case (staff only)")] = None,
) -> Page[schemas.PersonRead]:
    if email is not None and not can_see_personal_data(principal):
        # An email is personal data: looking people up by it is for staff, as reading it is.
        raise HTTPException(403, "finding a person by email needs the 'staff' scope: emails are personal data")
    stmt = people.list_people_stmt(q=q, active=active, email=email)
    items, total = await paginate(uow.session, stmt, paging)
    return page_of([person_read(p, principal) for p in items], total, paging)


@router.post("/people", status_code=201, response_model=schemas.PersonRead, tags=["people"])
async def create_person(data: schemas.PersonCreate, uow: UoW, deps: DirectoryDeps, who: Writer, request: Request, key: IdemKey = None) -> Response:
    async def build() -> schemas.PersonRead:
        return person_read(await people.create_person(uow, deps, actor=who.actor(), data=data), who)

    return await create_once(uow, request, key=key, scope="people", build=build)


@router.get("/people/{person_id}", response_model=schemas.PersonRead, tags=["people"])
async def get_person(person_id: str, uow: ReadUoW, principal: OptionalPrincipal) -> schemas.PersonRead:
    return person_read(await service.get_person(uow, person_id), principal)


@router.patch("/people/{person_id}", response_model=schemas.PersonRead, tags=["people"])
async def update_person(person_id: str, data: schemas.PersonUpdate, uow: UoW, deps: DirectoryDeps, who: Writer) -> schemas.PersonRead:
    result = person_read(await people.update_person(uow, deps, actor=who.actor(), person_id=person_id, data=data), who)
    await uow.commit()
    return result


# --- routing -----------------------------------------------------------------------------


@router.get("/routing", response_model=schemas.RoutingRead, tags=["routing"])
async def routing(
    uow: ReadUoW, deps: DirectoryDeps,
    *, department: Annotated[str, Query(min_length=1, max_length=40, description="department code")],
    function: Annotated[schemas.Function, Query(description="the problem's function tag")],
    at: At = None,
) -> schemas.RoutingRead:
    """The person responsible for ``function`` in the department, and the escalation chain."""
    return await service.route(uow, department_code=department, function=function, at=_aware(at, deps))


# --- import and audit --------------------------------------------------------------------


@router.post(
    "/import", response_model=schemas.ImportReport, tags=["import"],
    summary="Import a whole directory, all or nothing; importing the same file again changes nothing",
    description=(
        "JSON: a list of rows, or {\"rows\": [...]}. CSV (text/csv) with the header "
        f"`{import_file.IMPORT_HEADER}`. Nothing is stored unless every row is valid; the report lists each "
        "bad row (and every row a contradiction involves, such as two names for one department code). "
        "People are matched by email, else by name."
    ),
    responses={422: {"model": schemas.ImportReport}},
)
async def import_directory(request: Request, uow: UoW, deps: DirectoryDeps, who: Writer) -> Response:
    rows_read, rows, errors = import_file.parse(await request.body(), request.headers.get("content-type"))
    if errors:
        report = importer.failed(schemas.ImportReport(ok=False, rows=rows_read, errors=errors))
        return Response(report.model_dump_json(), status_code=422, media_type="application/json")
    report = await importer.import_directory(uow, deps, actor=who.actor(), rows=rows, rows_read=rows_read)
    if not report.ok:
        await uow.rollback()
        return Response(report.model_dump_json(), status_code=422, media_type="application/json")
    await uow.commit()
    return Response(report.model_dump_json(), status_code=200, media_type="application/json")


@router.get("/audit", response_model=Page[schemas.AuditRead], tags=["audit"])
async def audit_log(
    uow: ReadUoW, paging: Paging, _: Staff,
    entity: Annotated[str | None, Query(max_length=40)] = None,
    entity_id: Annotated[str | None, Query(max_length=100)] = None,
    order: Literal["newest", "oldest"] = "newest",
    actor_email: Annotated[str | None, Query(max_length=320, description="changes made by the person with this email")] = None,
) -> Page[schemas.AuditRead]:
    stmt = sa.select(AuditEntry).order_by(AuditEntry.id.desc() if order == "newest" else AuditEntry.id)
    stmt = where_given(stmt, (AuditEntry.entity, entity), (AuditEntry.entity_id, entity_id))
    if actor_email:
        stmt = stmt.where(sa.func.lower(AuditEntry.actor_email) == actor_email.strip().lower())
    items, total = await paginate(uow.session, stmt, paging)
    return page_of([audit_read(a) for a in items], total, paging)


def audit_read(a: AuditEntry) -> schemas.AuditRead:
    return schemas.AuditRead(id=a.id, at=a.at, actor=a.actor, by=actors.audit_actor(a), action=a.action,
                             entity=a.entity, entity_id=a.entity_id, details=a.details)
