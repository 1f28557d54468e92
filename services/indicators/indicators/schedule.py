"""The worker's scheduled work on indicators: grey for a period that passed with no observation,
overrides that expire, and the status counts behind the gauge."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.uow import UnitOfWork
from indicators.deps import IndicatorsDeps
from indicators.models import Indicator, Override
from indicators.publish import apply_effective
from indicators.status import active_overrides


async def flag_missing(uow: UnitOfWork, deps: IndicatorsDeps, *, now: datetime | None = None, limit: int = 500) -> int:
    """Grey for indicators whose period passed with no observation. Only due indicators are
    read (index on next_due_at), so the cost follows the indicators due, not all of them."""
    now = now or utcnow()
    due = (
        await uow.session.execute(
            sa.select(Indicator).where(Indicator.next_due_at <= now).order_by(Indicator.next_due_at).limit(limit)
        )
    ).scalars().all()
    overrides = await active_overrides(uow, [i.id for i in due], now)
    for ind in due:
        ind.missing = True
        ind.next_due_at = None
        await apply_effective(uow, deps, ind=ind, override=overrides.get(ind.id), now=now, actor="scheduler")
    return len(due)


async def expire_overrides(uow: UnitOfWork, deps: IndicatorsDeps, *, now: datetime | None = None, limit: int = 500) -> int:
    now = now or utcnow()
    expired = (
        await uow.session.execute(
            sa.select(Override).where(Override.cleared_at.is_(None), Override.expires_at <= now).limit(limit)
        )
    ).scalars().all()
    for o in expired:
        o.cleared_at, o.cleared_by = now, "expired"
    await uow.session.flush()
    for iid in {o.indicator_id for o in expired}:
        ind = await uow.session.get(Indicator, iid)
        if ind is not None:
            still = await active_overrides(uow, [iid], now)
            await apply_effective(uow, deps, ind=ind, override=still.get(iid), now=now, actor="scheduler", note="override expired",
                                  judgement=True)
    return len(expired)


async def status_counts(uow: UnitOfWork) -> list[tuple[str, str, int]]:
    res = await uow.session.execute(
        sa.select(Indicator.department_code, Indicator.status, sa.func.count())
        .where(Indicator.active.is_(True))
        .group_by(Indicator.department_code, Indicator.status)
    )
    return [(d, s, int(n)) for d, s, n in res]

