"""Scheduled assignments take effect: when an assignment recorded ahead of its start comes due,
the chain of every department it reaches is published again (``directory.senior_team.changed``).

Consumers replace their copy with each event, and the event carries the chain as it is when
published; so it must go out when the change is in force, not when it was recorded. The worker
runs ``publish_due`` periodically; a worker that was down catches up at its next pass."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from directory import service
from directory.models import Department, RoleAssignment


async def publish_due(uow: UnitOfWork, *, now: datetime, limit: int = 500) -> int:
    """Publish the chains changed by the assignments that started by ``now``; returns how many
    assignments took effect. Each department is published once per call, as of ``now``."""
    stmt = (
        sa.select(RoleAssignment)
        .where(RoleAssignment.pending_effect.is_(True), RoleAssignment.starts_at <= now)
        .order_by(RoleAssignment.starts_at, RoleAssignment.id)
        .limit(limit)
    )
    if uow.dialect == "postgresql":
        # two workers of one database never publish the same assignment twice
        stmt = stmt.with_for_update(skip_locked=True, of=RoleAssignment)
    due = list((await uow.session.execute(stmt)).scalars())
    if not due:
        return 0
    departments: dict[str, Department] = {}
    whole_city = any(a.role == "managing_director" for a in due)
    cluster_ids = {a.cluster_id for a in due if a.cluster_id}
    if whole_city or cluster_ids:
        reached = await service.departments_in_scope(uow, cluster_ids=None if whole_city else cluster_ids)
        departments.update({d.id: d for d in reached})
    for a in due:
        a.pending_effect = False
        if a.department_id and a.department_id not in departments:
            dept = await uow.session.get(Department, a.department_id)
            if dept is not None:
                departments[dept.id] = dept
    for dept in sorted(departments.values(), key=lambda d: d.code):
        await service.publish_senior_team(uow, dept, at=now)
    return len(due)
