"""People in the directory: created and changed by whoever holds directory:write, found by email, and
able to set their own notification preference. Every change is audited with its actor and emits
``directory.person.upserted`` with the person's email and preference: what escalation needs to mail
them. A change to what a senior-team event carries (name, title, email, active) republishes their teams."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import PersonUpserted
from citystat_common.uow import UnitOfWork
from directory import schemas, service
from directory.actors import audit
from directory.deps import Deps
from directory.models import Cluster, Department, Person, RoleAssignment

# What directory.senior_team.changed carries of a holder (citystat_common.events.PersonRef).
IN_TEAM_EVENTS = frozenset({"name", "title", "email", "active"})


async def _check_email_free(uow: UnitOfWork, email: str | None, except_id: str | None = None) -> None:
    if not email:
        return
    stmt = sa.select(Person.id).where(sa.func.lower(Person.email) == email.lower())
    if except_id:
        stmt = stmt.where(Person.id != except_id)
    if (await uow.session.execute(stmt)).first():
        raise Conflict(f"another person already has the email {email!r}", field="email")


async def _work_department(uow: UnitOfWork, code: str) -> Department:
    dept = (await uow.session.execute(sa.select(Department).where(Department.code == code))).scalar_one_or_none()
    if dept is None:
        raise Invalid(f"no department with code {code!r}", field="department")
    return dept


def emit_person(uow: UnitOfWork, person: Person) -> None:
    uow.emit(
        PersonUpserted(person_id=person.id, name=person.name, title=person.title, active=person.active,
                       email=person.email, notify=person.notify),  # type: ignore[arg-type]
        subject=person.id,
    )


async def by_email(uow: UnitOfWork, email: str) -> Person | None:
    """Emails are matched without regard to case: providers and people write them either way."""
    stmt = (sa.select(Person).where(sa.func.lower(Person.email) == email.strip().lower())
            .order_by(Person.created_at, Person.id).limit(1))
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def create_person(uow: UnitOfWork, deps: Deps, *, actor: Actor, data: schemas.PersonCreate) -> Person:
    await _check_email_free(uow, data.email)
    dept = await _work_department(uow, data.department) if data.department else None
    person = Person(name=data.name, title=data.title, email=data.email, phone=data.phone, notify=data.notify,
                    department_id=dept.id if dept else None)
    person.department = dept
    uow.session.add(person)
    await uow.flush()
    audit(uow, actor=actor, action="person.created", entity="person", entity_id=person.id, name=person.name,
          department=dept.code if dept else None, notify=person.notify)
    emit_person(uow, person)
    return person


async def update_person(uow: UnitOfWork, deps: Deps, *, actor: Actor, person_id: str, data: schemas.PersonUpdate) -> Person:
    person = await service.get_person(uow, person_id)
    fields = data.model_dump(exclude_unset=True)
    if "email" in fields:
        await _check_email_free(uow, fields["email"], except_id=person.id)
    if "department" in fields:
        code = fields.pop("department")
        dept = await _work_department(uow, code) if code else None
        if (dept.id if dept else None) != person.department_id:
            fields["department_id"] = dept.id if dept else None
            person.department = dept
    changed = {k: v for k, v in fields.items() if getattr(person, k) != v}
    if not changed:
        return person
    for k, v in changed.items():
        setattr(person, k, v)
    person.updated_at = deps.now()
    # Only the field names go in the audit log: the values may be personal data.
    names = sorted("department" if k == "department_id" else k for k in changed)
    audit(uow, actor=actor, action="person.updated", entity="person", entity_id=person.id, fields=names)
    emit_person(uow, person)
    if IN_TEAM_EVENTS & changed.keys():
        await _republish_teams_of(uow, person, now=deps.now())
    return person


async def set_notify(uow: UnitOfWork, deps: Deps, *, actor: Actor, person: Person, notify: str) -> Person:
    """A person's own choice (``PUT /me/notify``), audited like any change."""
    if person.notify == notify:
        return person
    audit(uow, actor=actor, action="person.notify_set", entity="person", entity_id=person.id,
          old=person.notify, new=notify)
    person.notify = notify
    person.updated_at = deps.now()
    emit_person(uow, person)
    return person


async def roles_held(uow: UnitOfWork, person: Person, *, now: datetime) -> list[schemas.RoleHeld]:
    stmt = (
        sa.select(RoleAssignment, Department.code, Cluster.code)
        .outerjoin(Department, RoleAssignment.department_id == Department.id)
        .outerjoin(Cluster, RoleAssignment.cluster_id == Cluster.id)
        .where(RoleAssignment.person_id == person.id, service.active_at(now))
        .order_by(RoleAssignment.starts_at)
    )
    return [schemas.RoleHeld(role=a.role, department=d, cluster=c, since=a.starts_at)
            for a, d, c in (await uow.session.execute(stmt)).all()]


async def _republish_teams_of(uow: UnitOfWork, person: Person, *, now: datetime) -> None:
    rows = (
        await uow.session.execute(sa.select(RoleAssignment).where(RoleAssignment.person_id == person.id, service.active_at(now)))
    ).scalars().all()
    seen: set[str] = set()
    for a in rows:
        if a.department_id:
            dept = await uow.session.get(Department, a.department_id)
            if dept and dept.id not in seen:
                seen.add(dept.id)
                await service.publish_senior_team(uow, dept)
        else:
            cluster = await uow.session.get(Cluster, a.cluster_id) if a.cluster_id else None
            await service.publish_teams_for_scope(uow, department=None, cluster=cluster)


def list_people_stmt(*, q: str | None, active: bool | None, email: str | None = None) -> sa.Select:  # type: ignore[type-arg]
    stmt = sa.select(Person).order_by(Person.name, Person.id)
    if q:
        stmt = stmt.where(sa.func.lower(Person.name).like(f"%{q.lower()}%"))
    if active is not None:
        stmt = stmt.where(Person.active.is_(active))
    if email:
        stmt = stmt.where(sa.func.lower(Person.email) == email.strip().lower())
    return stmt


async def get_me(uow: UnitOfWork, *, email: str | None) -> Person:
    if not email:
        raise NotFound("your sign-in carries no email, so the directory cannot tell which person you are", field="email")
    person = await by_email(uow, email)
    if person is None:
        raise NotFound(f"the directory has nobody with the email {email!r}; ask the performance office to add you",
                       field="email")
    return person
