"""Directory domain logic: ``f(uow, deps, *, ...)`` for what changes the directory (rows, the audit
log, events); lookups take the UnitOfWork alone. Nothing here commits (the caller does)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import (
    SENIOR_ROLES,
    DepartmentUpserted,
    PersonRef,
    SeniorTeamChanged,
)
from citystat_common.uow import UnitOfWork
from directory import schemas
from directory.actors import audit, record_creator
from directory.deps import Deps
from directory.models import Cluster, Department, Person, RoleAssignment

# --- lookups ---------------------------------------------------------------------------


async def get_cluster(uow: UnitOfWork, code: str) -> Cluster:
    cluster = (await uow.session.execute(sa.select(Cluster).where(Cluster.code == code.upper()))).scalar_one_or_none()
    if cluster is None:
        raise NotFound(f"no cluster with code {code!r}", field="cluster")
    return cluster


async def get_department(uow: UnitOfWork, code: str) -> Department:
    dept = (
        await uow.session.execute(sa.select(Department).where(Department.code == code))  # exactly: the city's code
    ).scalar_one_or_none()
    if dept is None:
        raise NotFound(f"no department with code {code!r}", field="department")
    return dept


async def get_person(uow: UnitOfWork, person_id: str) -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person with id {person_id!r}", field="person_id")
    return person


# A write that names something that does not exist is invalid input (422 naming the field);
# 404 stays for the resource in the path.


async def referenced_person(uow: UnitOfWork, person_id: str, *, field: str = "person_id") -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise Invalid(f"no person with id {person_id!r}", field=field)
    return person


async def referenced_cluster(uow: UnitOfWork, code: str, *, field: str = "cluster") -> Cluster:
    cluster = (await uow.session.execute(sa.select(Cluster).where(Cluster.code == code.upper()))).scalar_one_or_none()
    if cluster is None:
        raise Invalid(f"no cluster with code {code!r}", field=field)
    return cluster


# --- role holders ----------------------------------------------------------------------


def _scope_filter(role: str, *, department_id: str | None, cluster_id: str | None) -> sa.ColumnElement[bool]:
    return sa.and_(
        RoleAssignment.role == role,
        RoleAssignment.department_id.is_(None) if department_id is None else RoleAssignment.department_id == department_id,
        RoleAssignment.cluster_id.is_(None) if cluster_id is None else RoleAssignment.cluster_id == cluster_id,
    )


def active_at(at: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(RoleAssignment.starts_at <= at, sa.or_(RoleAssignment.ends_at.is_(None), RoleAssignment.ends_at > at))


async def holder(
    uow: UnitOfWork, role: str, *, department_id: str | None = None, cluster_id: str | None = None,
    at: datetime | None = None,
) -> RoleAssignment | None:
    at = at or utcnow()
    stmt = (
        sa.select(RoleAssignment)
        .where(_scope_filter(role, department_id=department_id, cluster_id=cluster_id), active_at(at))
        .order_by(RoleAssignment.starts_at.desc())
        .limit(1)
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def upcoming(
    uow: UnitOfWork, *, after: datetime, department_id: str | None = None, cluster_id: str | None = None,
    role: str | None = None,
) -> list[RoleAssignment]:
    """Assignments of a scope that start after ``after``, soonest first (scheduled changes)."""
    stmt = sa.select(RoleAssignment).where(RoleAssignment.starts_at > after).order_by(RoleAssignment.starts_at, RoleAssignment.id)
    if role is not None:
        stmt = stmt.where(_scope_filter(role, department_id=department_id, cluster_id=cluster_id))
    else:
        stmt = stmt.where(RoleAssignment.department_id == department_id)
    return list((await uow.session.execute(stmt)).scalars())


async def senior_team(uow: UnitOfWork, dept: Department, at: datetime | None = None) -> dict[str, RoleAssignment | None]:
    at = at or utcnow()
    stmt = sa.select(RoleAssignment).where(RoleAssignment.department_id == dept.id, active_at(at))
    team: dict[str, RoleAssignment | None] = dict.fromkeys(SENIOR_ROLES)
    for a in (await uow.session.execute(stmt)).scalars():
        team[a.role] = a
    return team


async def assign_role(
    uow: UnitOfWork,
    deps: Deps,
    *,
    actor: Actor,
    role: str,
    person_id: str,
    department: Department | None = None,
    cluster: Cluster | None = None,
    starts_at: datetime | None = None,
    reason: str | None = None,
    publish: bool = True,
) -> RoleAssignment:
    """Give ``role`` to a person from ``starts_at``; the current holder's assignment ends then.

    History is kept. An assignment may not start before the current one did: that would
    overlap a period already on record (correct it with a new assignment instead). One that
    starts later is scheduled: the team is unchanged until then, so its event is published by
    ``directory.schedule`` when it starts, not now."""
    person = await referenced_person(uow, person_id)
    if not person.active:
        raise Invalid(f"person {person_id!r} is inactive", field="person_id")
    now = deps.now()
    starts_at = starts_at or now
    if starts_at.tzinfo is None:
        raise Invalid("starts_at must carry a timezone", field="starts_at")
    dept_id = department.id if department else None
    cluster_id = cluster.id if cluster else None
    latest = (
        await uow.session.execute(
            sa.select(RoleAssignment)
            .where(_scope_filter(role, department_id=dept_id, cluster_id=cluster_id))
            .order_by(RoleAssignment.starts_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest is not None:
        if starts_at < latest.starts_at:
            raise Conflict(
                f"starts_at {starts_at.isoformat()} overlaps the assignment that starts {latest.starts_at.isoformat()}",
                field="starts_at",
            )
        if latest.ends_at is None or latest.ends_at > starts_at:
            if latest.person_id == person.id and latest.ends_at is None:
                return latest  # already holds it: assigning again changes nothing
            latest.ends_at = starts_at
    scheduled = starts_at > now
    assignment = RoleAssignment(
        role=role, department_id=dept_id, cluster_id=cluster_id, person_id=person.id, starts_at=starts_at,
        reason=reason, pending_effect=scheduled,
    )
    record_creator(assignment, actor)
    # Set, not lazy-loaded later: an async session cannot load it on attribute access.
    assignment.person = person
    uow.session.add(assignment)
    await uow.flush()
    audit(
        uow, actor=actor, action="role.assigned", entity="role_assignment", entity_id=str(assignment.id),
        role=role, person_id=person.id, department=department.code if department else None,
        cluster=cluster.code if cluster else None, starts_at=starts_at, reason=reason,
    )
    if publish and not scheduled:
        await publish_teams_for_scope(uow, department=department, cluster=cluster)
    return assignment


async def vacate_role(
    uow: UnitOfWork, deps: Deps, *, actor: Actor, role: str, department: Department | None = None, cluster: Cluster | None = None,
    reason: str | None = None,
) -> None:
    now = deps.now()
    current = await holder(
        uow, role, department_id=department.id if department else None, cluster_id=cluster.id if cluster else None,
        at=now,
    )
    if current is None:
        raise NotFound(f"the {role} role is already vacant", field="role")
    current.ends_at = now
    audit(uow, actor=actor, action="role.vacated", entity="role_assignment", entity_id=str(current.id), role=role, reason=reason)
    await publish_teams_for_scope(uow, department=department, cluster=cluster)


async def publish_teams_for_scope(uow: UnitOfWork, *, department: Department | None, cluster: Cluster | None) -> None:
    if department is not None:
        await publish_senior_team(uow, department)
        return
    for dept in await departments_in_scope(uow, cluster_ids=[cluster.id] if cluster else None):
        await publish_senior_team(uow, dept)


async def departments_in_scope(uow: UnitOfWork, *, cluster_ids: Iterable[str] | None) -> list[Department]:
    """The active departments whose chain a cluster-level role reaches (None: the whole city)."""
    stmt = sa.select(Department).where(Department.active.is_(True)).order_by(Department.code)
    if cluster_ids is not None:
        stmt = stmt.where(Department.cluster_id.in_(list(cluster_ids)))
    return list((await uow.session.execute(stmt)).scalars())


def _ref(a: RoleAssignment | None) -> PersonRef | None:
    # The email is how escalation reaches the holder (its mail goes to the directory's address).
    if a is None:
        return None
    return PersonRef(person_id=a.person.id, name=a.person.name, title=a.person.title, email=a.person.email)


async def publish_senior_team(uow: UnitOfWork, dept: Department, *, at: datetime | None = None) -> None:
    """The department's chain as of ``at`` (default now): the scheduler passes its own clock."""
    at = at or utcnow()
    team = await senior_team(uow, dept, at)
    deputy = await holder(uow, "deputy_mayor", cluster_id=dept.cluster_id, at=at) if dept.cluster_id else None
    md = await holder(uow, "managing_director", at=at)
    uow.emit(
        SeniorTeamChanged(
            department_id=dept.id,
            department_code=dept.code,
            department_name=dept.name,
            cluster_code=dept.cluster.code if dept.cluster else None,
            roles={role: _ref(a) for role, a in team.items()},
            deputy_mayor=_ref(deputy),
            managing_director=_ref(md),
        ),
        subject=dept.id,
    )


# --- clusters ----------------------------------------------------------------------------


async def create_cluster(uow: UnitOfWork, deps: Deps, *, actor: Actor, data: schemas.ClusterCreate) -> Cluster:
    exists = (await uow.session.execute(sa.select(Cluster.id).where(Cluster.code == data.code))).first()
    if exists:
        raise Conflict(f"a cluster with code {data.code!r} exists", field="code")
    cluster = Cluster(code=data.code, name=data.name)
    uow.session.add(cluster)
    await uow.flush()
    audit(uow, actor=actor, action="cluster.created", entity="cluster", entity_id=cluster.code, name=cluster.name)
    return cluster


async def update_cluster(uow: UnitOfWork, deps: Deps, *, actor: Actor, code: str, data: schemas.ClusterUpdate) -> Cluster:
    cluster = await get_cluster(uow, code)
    if data.name is not None and data.name != cluster.name:
        audit(uow, actor=actor, action="cluster.updated", entity="cluster", entity_id=cluster.code, old=cluster.name, new=data.name)
        cluster.name = data.name
        for dept in (await uow.session.execute(sa.select(Department).where(Department.cluster_id == cluster.id))).scalars():
            emit_department(uow, dept, cluster)
    return cluster


async def cluster_departments(uow: UnitOfWork, cluster: Cluster) -> list[str]:
    rows = await uow.session.execute(
        sa.select(Department.code).where(Department.cluster_id == cluster.id).order_by(Department.code)
    )
    return [r[0] for r in rows]


# --- departments -------------------------------------------------------------------------


def emit_department(uow: UnitOfWork, dept: Department, cluster: Cluster | None) -> None:
    uow.emit(
        DepartmentUpserted(
            department_id=dept.id,
            code=dept.code,
            name=dept.name,
            cluster_code=cluster.code if cluster else None,
            cluster_name=cluster.name if cluster else None,
            active=dept.active,
        ),
        subject=dept.id,
    )


async def create_department(uow: UnitOfWork, deps: Deps, *, actor: Actor, data: schemas.DepartmentCreate) -> Department:
    exists = (await uow.session.execute(sa.select(Department.id).where(Department.code == data.code))).first()
    if exists:
        raise Conflict(f"a department with code {data.code!r} exists", field="code")
    cluster = await referenced_cluster(uow, data.cluster) if data.cluster else None
    dept = Department(code=data.code, name=data.name, cluster_id=cluster.id if cluster else None)
    dept.cluster = cluster
    uow.session.add(dept)
    await uow.flush()
    audit(uow, actor=actor, action="department.created", entity="department", entity_id=dept.code, name=dept.name,
          cluster=cluster.code if cluster else None)
    emit_department(uow, dept, cluster)
    await publish_senior_team(uow, dept)
    return dept


async def update_department(uow: UnitOfWork, deps: Deps, *, actor: Actor, code: str, data: schemas.DepartmentUpdate) -> Department:
    dept = await get_department(uow, code)
    changes: dict[str, object] = {}
    if data.name is not None and data.name != dept.name:
        changes["name"] = [dept.name, data.name]
        dept.name = data.name
    if "cluster" in data.model_fields_set:
        cluster = await referenced_cluster(uow, data.cluster) if data.cluster else None
        new_id = cluster.id if cluster else None
        if new_id != dept.cluster_id:
            changes["cluster"] = [dept.cluster.code if dept.cluster else None, cluster.code if cluster else None]
            dept.cluster_id = new_id
            dept.cluster = cluster
    if data.active is not None and data.active != dept.active:
        changes["active"] = [dept.active, data.active]
        dept.active = data.active
    if changes:
        dept.updated_at = deps.now()
        audit(uow, actor=actor, action="department.updated", entity="department", entity_id=dept.code, **changes)
        emit_department(uow, dept, dept.cluster)
        await publish_senior_team(uow, dept)
    return dept


def list_departments_stmt(*, cluster: str | None, active: bool | None, q: str | None) -> sa.Select:  # type: ignore[type-arg]
    stmt = sa.select(Department).order_by(Department.code)
    if cluster:
        stmt = stmt.join(Cluster, Department.cluster_id == Cluster.id).where(Cluster.code == cluster.upper())
    if active is not None:
        stmt = stmt.where(Department.active.is_(active))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(sa.or_(sa.func.lower(Department.name).like(like), sa.func.lower(Department.code).like(like)))
    return stmt


# --- routing -----------------------------------------------------------------------------


async def route(uow: UnitOfWork, *, department_code: str, function: str, at: datetime | None = None) -> schemas.RoutingRead:
    """Who answers for ``function`` in the department (as of ``at``, default now), and the chain above them."""
    at = at or utcnow()
    if function not in schemas.FUNCTION_ROLE:
        raise Invalid(f"unknown function {function!r}; one of {sorted(schemas.FUNCTION_ROLE)}", field="function")
    dept = await get_department(uow, department_code)
    role = schemas.FUNCTION_ROLE[function]
    team = await senior_team(uow, dept, at)
    partner = team.get(role)
    head = team.get("department_head")
    deputy = await holder(uow, "deputy_mayor", cluster_id=dept.cluster_id, at=at) if dept.cluster_id else None
    md = await holder(uow, "managing_director", at=at)
    responsible, reason = partner, None
    responsible_role: str | None = role
    if partner is None:
        reason = f"the {role} role is vacant"
        responsible, responsible_role = head, "department_head"
        if head is None:
            reason += "; the department_head role is vacant too"
            responsible, responsible_role = (deputy, "deputy_mayor") if deputy else (md, "managing_director")
            if responsible is None:
                responsible_role = None

    def brief(a: RoleAssignment | None) -> schemas.PersonBrief | None:
        return schemas.PersonBrief.model_validate(a.person) if a else None

    chain = [
        schemas.ChainLink(level=0, role=role, person=brief(partner), note=None if partner else "vacant"),
        schemas.ChainLink(level=1, role="department_head", person=brief(head), note=None if head else "vacant"),
        schemas.ChainLink(level=2, role="deputy_mayor", person=brief(deputy), note=None if deputy else "vacant"),
        schemas.ChainLink(level=3, role="managing_director", person=brief(md), note=None if md else "vacant"),
    ]
    return schemas.RoutingRead(
        department=dept.code,
        department_name=dept.name,
        cluster=dept.cluster.code if dept.cluster else None,
        function=function,
        role=role,
        responsible=brief(responsible),
        responsible_role=responsible_role,
        fallback=partner is None,
        fallback_reason=reason,
        chain=chain,
    )
