"""An indicator's state after its series moved, and staff judgement on it (overrides): what
``publish.apply_effective`` then publishes as the status, its episode and its events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.db import utcnow
from citystat_common.errors import Invalid, NotFound
from citystat_common.uow import UnitOfWork
from indicators import schemas
from indicators.deps import IndicatorsDeps
from indicators.models import Indicator, Override
from indicators.periods import due_after, next_period
from indicators.publish import apply_effective
from indicators.rules import CHUNK_INDICATORS, grace_days, period_at, tz_of

if TYPE_CHECKING:
    from indicators.observation_store import ObsRow


async def active_overrides(uow: UnitOfWork, ids: Sequence[str], now: datetime) -> dict[str, Override]:
    if not ids:
        return {}
    out: dict[str, Override] = {}
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = list(ids[i : i + CHUNK_INDICATORS])
        rows = (
            await uow.session.execute(
                sa.select(Override)
                .where(Override.indicator_id.in_(chunk), Override.cleared_at.is_(None), Override.expires_at > now)
                .order_by(Override.id)
            )
        ).scalars()
        for o in rows:
            out[o.indicator_id] = o  # the latest wins
    return out



async def refresh_state(
    uow: UnitOfWork, deps: IndicatorsDeps, *, ind: Indicator, latest: ObsRow | None, override: Override | None,
    now: datetime, actor: str, locked: bool = False,
) -> None:
    tz = tz_of(deps.settings)
    fy0 = deps.settings.fiscal_year_start_month
    new_period = False
    if latest is not None:
        start = latest.period_start
        new_period = ind.latest_period_start is not None and start > ind.latest_period_start
        ind.latest_period_start = start
        ind.latest_value = latest.value
        ind.latest_reference = latest.reference
        ind.latest_miss = latest.miss
        ind.computed_status = latest.status
        ind.status_reason = latest.reason
        due = due_after(next_period(period_at(ind.frequency, start, fy0), fy0), grace_days(ind), tz)
        ind.next_due_at = due if due > now else None
        ind.missing = due <= now
    await apply_effective(uow, deps, ind=ind, override=override, now=now, actor=actor, locked=locked, new_period=new_period)


# --- overrides: staff judgement --------------------------------------------------------------------------


async def set_override(
    uow: UnitOfWork, deps: IndicatorsDeps, *, actor: str, ind: Indicator, data: schemas.OverrideIn,
    by: Actor | None = None,
) -> Override:
    """``actor``: what the history records (a name, or "key <name>"); ``by``: the person behind it."""
    now = utcnow()
    if not ind.active:
        # a retired indicator is not judged (an override of one would still open a ticket)
        raise Invalid(f"indicator {ind.code!r} is inactive: reactivate it before overriding its status", field="code")
    if data.expires_at <= now:
        raise Invalid("expires_at must be in the future", field="expires_at")
    current = await active_overrides(uow, [ind.id], now)
    for o in current.values():
        o.cleared_at, o.cleared_by = now, f"replaced by {actor}"
    o = Override(indicator_id=ind.id, status=data.status, reason=data.reason, created_by=actor, created_at=now,
                 expires_at=data.expires_at.astimezone(UTC), created_by_email=by.email if by else None)
    uow.session.add(o)
    await uow.session.flush()
    await apply_effective(uow, deps, ind=ind, override=o, now=now, actor=actor, note=f"override to {data.status} until "
                          f"{o.expires_at.isoformat()}: {data.reason}", judgement=True, by=by)
    return o


async def clear_override(uow: UnitOfWork, deps: IndicatorsDeps, *, actor: str, ind: Indicator, reason: str,
                         by: Actor | None = None) -> None:
    now = utcnow()
    current = await active_overrides(uow, [ind.id], now)
    if not current:
        raise NotFound("the indicator has no active override", field="override")
    for o in current.values():
        o.cleared_at, o.cleared_by, o.cleared_by_email = now, actor, by.email if by else None
    await apply_effective(uow, deps, ind=ind, override=None, now=now, actor=actor, note=f"override cleared: {reason}", judgement=True,
                          by=by)


