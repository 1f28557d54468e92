"""The stored escalation policies: the one that applies to a department, the office's edits, and
applying a policy's rule (``policy.next_escalation_at``) to a ticket."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from citystat_common.errors import Conflict
from citystat_common.uow import UnitOfWork
from escalation import references, schemas, store
from escalation.deps import Deps
from escalation.models import Policy, Ticket
from escalation.policy import default_policy, next_escalation_at


async def ensure_default_policy(uow: UnitOfWork) -> Policy:
    p = await store.default_policy_row(uow)
    if p is None:
        p = await store.policy_named(uow, "default")
        if p is None:
            try:
                async with uow.session.begin_nested():  # the api and the worker may both seed it at start
                    p = Policy(**default_policy())
                    uow.session.add(p)
                    await uow.flush()
            except IntegrityError:
                p = await store.existing_policy(uow, "default")  # the other writer's row
        else:
            p.is_default = True
    return p


async def policy_for(uow: UnitOfWork, department_code: str) -> Policy:
    rows = await store.policies(uow)
    for p in rows:
        if department_code in (p.departments or []):
            return p
    return next((p for p in rows if p.is_default), None) or await ensure_default_policy(uow)


async def policy_of(uow: UnitOfWork, t: Ticket) -> Policy:
    """The ticket's policy as it was chosen at opening, else the department's current one."""
    p = await uow.session.get(Policy, t.policy_id) if t.policy_id else None
    return p or await policy_for(uow, t.department_code)


async def put_policy(uow: UnitOfWork, deps: Deps, *, name: str, data: schemas.PolicyIn) -> tuple[Policy, bool]:
    doc = data.model_dump(mode="json")
    others = await store.policies(uow, except_name=name)
    for i, code in enumerate(data.departments):
        await references.known_department(uow, deps, code=code, field=f"departments.{i}")
        # one policy per department: with two, which one applied would depend on their names
        claimed = next((o.name for o in others if code in (o.departments or [])), None)
        if claimed:
            raise Conflict(f"department {code} already has policy {claimed!r}", field=f"departments.{i}")
    p = await store.policy_named(uow, name)
    created = p is None
    if p is None:
        p = Policy(name=name, **doc)
        uow.session.add(p)
    else:
        for k, v in doc.items():
            setattr(p, k, v)
    if data.is_default:
        await store.clear_default_except(uow, name)
    await uow.flush()
    return p, created


def schedule(deps: Deps, t: Ticket, policy: Policy, *, start: datetime) -> None:
    """Set the ticket's next escalation time for its current level, counted from ``start``."""
    t.next_escalation_at = next_escalation_at(
        deps.calendar, policy.levels, level=t.level, status=t.status, severity=t.severity,
        review_pending=t.review_pending, in_progress_at=t.in_progress_at, start=start, scale=deps.settings.delay_scale,
    )
