"""Applying an import: every row or none, and idempotent. A row that matches what is stored
changes nothing (no rows, no history, no events); the events of what did change go out once per
department, person or team at the end. People are matched by email, else by name (preferring
the current holder of the row's role), so people without an email are found again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import SENIOR_ROLES
from citystat_common.uow import UnitOfWork
from directory import people, schemas, service
from directory.actors import audit
from directory.deps import Deps
from directory.import_file import Numbered
from directory.models import Cluster, Department, Person, RoleAssignment


@dataclass
class _Changes:
    """What the applied rows changed: the events to publish once, at the end."""

    now: datetime
    departments: dict[str, Department] = field(default_factory=dict)  # department.upserted
    teams: dict[str, Department] = field(default_factory=dict)  # senior_team.changed
    team_clusters: set[str] = field(default_factory=set)
    whole_city: bool = False
    people: dict[str, Person] = field(default_factory=dict)  # person.upserted
    people_in_teams: set[str] = field(default_factory=set)  # name or title changed: their teams too


async def import_directory(uow: UnitOfWork, deps: Deps, *, actor: Actor, rows: Numbered, rows_read: int) -> schemas.ImportReport:
    """The caller commits only when the report says ok."""
    report = schemas.ImportReport(ok=True, rows=rows_read)
    changes = _Changes(now=deps.now())
    for number, row in rows:
        try:
            async with uow.session.begin_nested():
                changed = await _apply_row(uow, deps, actor=actor, row=row, report=report, changes=changes)
        except (Conflict, Invalid, NotFound) as exc:
            report.errors.append({"row": number, "field": exc.errors[0]["field"] if exc.errors else None, "message": exc.detail})
            continue
        if changed:
            report.applied += 1
        else:
            report.unchanged += 1
    if report.errors:
        return failed(report)
    if report.applied:
        await _publish(uow, changes)
        audit(
            uow, actor=actor, action="directory.imported", entity="directory", entity_id="import",
            rows=report.rows, applied=report.applied,
        )
    return report


def failed(report: schemas.ImportReport) -> schemas.ImportReport:
    """Nothing is stored when a row fails: the counts say so."""
    rows_in_error = {e["row"] for e in report.errors}
    return schemas.ImportReport(ok=False, rows=report.rows, failed=len(rows_in_error), errors=report.errors)


async def _apply_row(
    uow: UnitOfWork, deps: Deps, *, actor: Actor, row: schemas.ImportRow, report: schemas.ImportReport, changes: _Changes
) -> bool:
    changed = False
    cluster = None
    if row.cluster_code:
        cluster = (await uow.session.execute(sa.select(Cluster).where(Cluster.code == row.cluster_code))).scalar_one_or_none()
        if cluster is None:
            cluster = Cluster(code=row.cluster_code, name=row.cluster_name or row.cluster_code)
            uow.session.add(cluster)
            await uow.flush()
            report.clusters += 1
            changed = True
        elif row.cluster_name and row.cluster_name != cluster.name:
            cluster.name = row.cluster_name
            # department.upserted carries the cluster's name
            in_cluster = sa.select(Department).where(Department.cluster_id == cluster.id)
            changes.departments.update({d.id: d for d in (await uow.session.execute(in_cluster)).scalars()})
            changed = True
    dept = (await uow.session.execute(sa.select(Department).where(Department.code == row.department_code))).scalar_one_or_none()
    if dept is None:
        dept = Department(code=row.department_code, name=row.department_name, cluster_id=cluster.id if cluster else None)
        dept.cluster = cluster
        uow.session.add(dept)
        await uow.flush()
        report.departments += 1
        changes.departments[dept.id] = changes.teams[dept.id] = dept
        changed = True
    elif dept.name != row.department_name or (cluster is not None and dept.cluster_id != cluster.id):
        dept.name = row.department_name
        if cluster is not None:
            dept.cluster_id, dept.cluster = cluster.id, cluster
        dept.updated_at = deps.now()
        changes.departments[dept.id] = changes.teams[dept.id] = dept
        changed = True
    if row.role is None or row.person_name is None:
        return changed  # import_file.row_rules made sure the pair is complete
    return await _apply_role(uow, deps, actor=actor, row=row, dept=dept, cluster=cluster, report=report, changes=changes) or changed


async def _apply_role(
    uow: UnitOfWork, deps: Deps, *, actor: Actor, row: schemas.ImportRow, dept: Department, cluster: Cluster | None,
    report: schemas.ImportReport, changes: _Changes,
) -> bool:
    assert row.role is not None and row.person_name is not None
    scope_dept = dept if row.role in SENIOR_ROLES else None
    scope_cluster = cluster if row.role == "deputy_mayor" else None
    scope = {"department_id": scope_dept.id if scope_dept else None, "cluster_id": scope_cluster.id if scope_cluster else None}
    current = await service.holder(uow, row.role, at=changes.now, **scope)
    person, changed = await _person(uow, deps, row=row, current=current, report=report, changes=changes)
    if current is not None and current.person_id == person.id:
        return changed
    scheduled = await service.upcoming(uow, after=changes.now, role=row.role, **scope)
    if scheduled:
        where = scope_dept.code if scope_dept else scope_cluster.code if scope_cluster else "the city"
        raise Conflict(
            f"{row.role} of {where} has an assignment scheduled from {scheduled[-1].starts_at.isoformat()}; "
            "change it through the API, not by import", field="role",
        )
    await service.assign_role(
        uow, deps, actor=actor, role=row.role, person_id=person.id, department=scope_dept, cluster=scope_cluster,
        starts_at=changes.now, reason="import", publish=False,
    )
    report.assignments += 1
    if scope_dept is not None:
        changes.teams[scope_dept.id] = scope_dept
    elif scope_cluster is not None:
        changes.team_clusters.add(scope_cluster.id)
    else:
        changes.whole_city = True
    return True


async def _person(
    uow: UnitOfWork, deps: Deps, *, row: schemas.ImportRow, current: RoleAssignment | None, report: schemas.ImportReport,
    changes: _Changes,
) -> tuple[Person, bool]:
    """The person a row names, created or brought up to date; True when anything changed."""
    assert row.person_name is not None
    person: Person | None
    if row.person_email:
        stmt = sa.select(Person).where(sa.func.lower(Person.email) == row.person_email.lower())
        person = (await uow.session.execute(stmt)).scalar_one_or_none()
    elif current is not None and current.person.name == row.person_name:
        person = current.person
    else:
        named = list((await uow.session.execute(sa.select(Person).where(Person.name == row.person_name).limit(2))).scalars())
        if len(named) > 1:
            raise Invalid(f"several people are named {row.person_name!r}: give person_email to say which", field="person_email")
        person = named[0] if named else None
    if person is None:
        person = Person(name=row.person_name, title=row.person_title, email=row.person_email, phone=row.person_phone)
        uow.session.add(person)
        await uow.flush()
        report.people += 1
        changes.people[person.id] = person
        return person, True
    # Only what the row gives: an empty title or phone leaves the stored one.
    wanted = {"name": row.person_name, "title": row.person_title, "phone": row.person_phone}
    differ = {k: v for k, v in wanted.items() if v is not None and getattr(person, k) != v}
    if not differ:
        return person, False
    for k, v in differ.items():
        setattr(person, k, v)
    person.updated_at = deps.now()
    changes.people[person.id] = person
    if differ.keys() & {"name", "title"}:
        changes.people_in_teams.add(person.id)
    return person, True


async def _publish(uow: UnitOfWork, changes: _Changes) -> None:
    if changes.people_in_teams:
        held = sa.select(RoleAssignment).where(
            RoleAssignment.person_id.in_(changes.people_in_teams), service.active_at(changes.now)
        )
        for a in (await uow.session.execute(held)).scalars():
            if a.department_id:
                dept = await uow.session.get(Department, a.department_id)
                if dept is not None:
                    changes.teams[dept.id] = dept
            elif a.cluster_id:
                changes.team_clusters.add(a.cluster_id)
            else:
                changes.whole_city = True
    if changes.whole_city or changes.team_clusters:
        reached = await service.departments_in_scope(uow, cluster_ids=None if changes.whole_city else changes.team_clusters)
        changes.teams.update({d.id: d for d in reached})
    for person in changes.people.values():
        people.emit_person(uow, person)
    for dept in sorted(changes.departments.values(), key=lambda d: d.code):
        service.emit_department(uow, dept, dept.cluster)
    for dept in sorted(changes.teams.values(), key=lambda d: d.code):
        await service.publish_senior_team(uow, dept, at=changes.now)
