"""Escalation's local copy of the directory (senior teams, departments, people), kept from
``directory.changes`` events: routing and escalation read it, without a round trip to the
directory, and go on working while the directory is down."""

from __future__ import annotations

from datetime import datetime

from citystat_common.events import DepartmentUpserted, PersonUpserted, SeniorTeamChanged
from citystat_common.uow import UnitOfWork
from escalation import references
from escalation.models import PersonCopy, SeniorTeamCopy


async def apply_senior_team(uow: UnitOfWork, *, payload: SeniorTeamChanged, event_time: datetime, now: datetime) -> None:
    """Replace the department's copy in one step; an older event never overwrites a newer copy."""
    row = await uow.session.get(SeniorTeamCopy, payload.department_code)
    if row is not None and row.team_event_time and row.team_event_time > event_time:
        return
    if row is None:  # add_if_absent: a request's on-demand copy may store it at the same time
        row = await uow.add_if_absent(SeniorTeamCopy, {"department_code": payload.department_code, "updated_at": now})
    row.department_id, row.department_name, row.cluster_code = payload.department_id, payload.department_name, payload.cluster_code
    row.roles = {k: (v.model_dump() if v else None) for k, v in payload.roles.items()}
    row.deputy_mayor = payload.deputy_mayor.model_dump() if payload.deputy_mayor else None
    row.managing_director = payload.managing_director.model_dump() if payload.managing_director else None
    row.team_event_time, row.updated_at = event_time, now
    for holder in [*payload.roles.values(), payload.deputy_mayor, payload.managing_director]:
        await references.remember_person(uow, holder.model_dump() if holder else None, now=now)


async def apply_department(uow: UnitOfWork, *, payload: DepartmentUpserted, now: datetime) -> None:
    row = await uow.session.get(SeniorTeamCopy, payload.code)
    if row is None:
        row = await uow.add_if_absent(SeniorTeamCopy, {"department_code": payload.code, "roles": None, "updated_at": now})
    row.department_id, row.department_name = payload.department_id, payload.name
    row.cluster_code, row.active, row.updated_at = payload.cluster_code, payload.active, now


async def apply_person(uow: UnitOfWork, *, payload: PersonUpserted, now: datetime) -> None:
    row = await uow.session.get(PersonCopy, payload.person_id)
    if row is None:
        row = await uow.add_if_absent(PersonCopy, {"person_id": payload.person_id, "name": payload.name, "updated_at": now})
    row.name, row.title, row.active, row.updated_at = payload.name, payload.title, payload.active, now
    if payload.email:  # an older event without one keeps what the copy knew
        row.email = payload.email.lower()
    row.notify = payload.notify
