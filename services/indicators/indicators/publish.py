"""The indicator's published status, its breach episode and the events on ``indicators.status``.

Contract with escalation (issue 16): an override is staff judgement on the same episode.

- The **episode** follows the status the rules computed (``computed_status``), whatever an override
  says: it opens when the computed status turns red and closes when it is green or yellow again
  (grey, no data, leaves it as it is).
- Setting, changing, clearing or the expiry of an override publishes ``status_changed`` only
  (never ``recovered``, never ``breached``), with the open ``episode_id``: when an override ends on
  a still-red indicator the episode goes on, and no second ticket opens for the same period.
- From the data: ``breached`` with a new episode when it opens, ``recovered`` when it closes, and
  ``breached`` with the *same* episode and the new period when a new period is red during it (so
  escalation can note it on the open ticket); ``status_changed`` whenever the published status moves.
- Every payload carries ``overridden``, ``override_reason``, ``override_by``,
  ``override_expires_at``, ``computed_status`` and ``episode_id``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from citystat_common.auth import Actor
from citystat_common.events import IndicatorBreached, IndicatorRecovered, IndicatorStatusChanged
from citystat_common.uow import UnitOfWork
from indicators import metrics
from indicators.config import Settings
from indicators.deps import IndicatorsDeps
from indicators.models import Indicator, Override, StatusChange
from indicators.periods import Period, local_date, next_period, period_of


def missing_period(ind: Indicator, settings: Settings) -> Period:
    fy0 = settings.fiscal_year_start_month
    if ind.latest_period_start is not None:
        return next_period(period_of(ind.frequency, ind.latest_period_start, fy0), fy0)
    return period_of(ind.frequency, local_date(ind.created_at, ZoneInfo(settings.city_timezone)), fy0)


def rule_status(ind: Indicator, now: datetime) -> str:
    """The status the rules give, before any override: grey when the due period passed with no
    observation, else the latest period's evaluated status."""
    if ind.missing or (ind.next_due_at is not None and ind.next_due_at <= now):
        return "grey"
    return ind.computed_status or "grey"


def effective_status(ind: Indicator, override: Override | None, now: datetime) -> tuple[str, bool, str | None, str | None]:
    """(status, overridden, override_reason, reason): an active override, else ``rule_status``."""
    if override is not None and override.cleared_at is None and override.expires_at > now:
        return override.status, True, override.reason, f"override by {override.created_by}"
    if ind.missing or (ind.next_due_at is not None and ind.next_due_at <= now):
        return "grey", False, None, "no observation for a period that has passed"
    return ind.computed_status or "grey", False, None, ind.status_reason


async def apply_effective(
    uow: UnitOfWork, deps: IndicatorsDeps, *, ind: Indicator, override: Override | None, now: datetime, actor: str,
    note: str | None = None, locked: bool = False, judgement: bool = False, new_period: bool = False,
    by: Actor | None = None,
) -> bool:
    """Publish what changed; True if the published status moved. ``locked``: the caller already
    holds the row lock and read the published state (``_lock_indicators``). ``judgement``: an
    override was set, changed, cleared or expired (always published, never moves the episode).
    ``new_period``: the latest period is a newer one than before."""
    if not locked and uow.dialect == "postgresql":
        # Lock the indicator and read its published state as committed: two transactions
        # evaluating it at once (consumer, scheduler, api) publish one breach, not two.
        # (SQLite needs none: BEGIN IMMEDIATE already serializes the writers.)
        row = (await uow.session.execute(
            sa.select(Indicator.status, Indicator.episode_id).where(Indicator.id == ind.id).with_for_update()
        )).one()
        set_committed_value(ind, "status", row.status)
        set_committed_value(ind, "episode_id", row.episode_id)
    status, overridden, override_reason, reason = effective_status(ind, override, now)
    computed = rule_status(ind, now)
    previous = ind.status
    opens = not judgement and computed == "red" and ind.episode_id is None
    closes = not judgement and computed in ("green", "yellow") and ind.episode_id is not None
    goes_on = not judgement and new_period and computed == "red" and ind.episode_id is not None
    if status == previous and note is None and not (judgement or opens or closes or goes_on):
        return False
    fy0 = deps.settings.fiscal_year_start_month
    if status == "grey" and not overridden and ind.missing:
        p = missing_period(ind, deps.settings)
        value = None
    elif ind.latest_period_start is not None:
        p = period_of(ind.frequency, ind.latest_period_start, fy0)
        value = ind.latest_value
    else:
        p = missing_period(ind, deps.settings)
        value = None
    magnitude = max(ind.latest_miss, 0.0) if (ind.latest_miss is not None and value is not None) else None
    active = override if overridden else None
    base: dict[str, Any] = dict(
        indicator_id=ind.id, indicator_code=ind.code, indicator_name=ind.name, department_code=ind.department_code,
        period=p.label, period_start=p.start, period_end=p.end, previous_status=previous, status=status,
        value=value, target=ind.latest_reference if value is not None else None, basis=ind.basis,
        magnitude=magnitude, overridden=overridden, override_reason=override_reason,
        override_by=active.created_by if active else None, override_expires_at=active.expires_at if active else None,
        computed_status=computed, kind=ind.kind, critical=ind.critical, function_tag=ind.function_tag, unit=ind.unit,
    )
    closed = ind.episode_id if closes else None
    if opens:
        ind.episode_id = str(uuid.uuid4())
    elif closes:
        ind.episode_id = None
    events: list[str] = []
    if status != previous or judgement:
        uow.emit(IndicatorStatusChanged(**base, episode_id=ind.episode_id), subject=ind.id)
        events.append("status_changed")
    if opens or goes_on:
        uow.emit(IndicatorBreached(**base, episode_id=ind.episode_id), subject=ind.id)
        events.append("breached")
        if opens:
            metrics.BREACHES.labels(ind.department_code).inc()
    elif closed is not None:
        uow.emit(IndicatorRecovered(**base, episode_id=closed), subject=ind.id)
        events.append("recovered")
    if status != previous:
        ind.status = status
        ind.status_changed_at = now
    uow.session.add(StatusChange(
        indicator_id=ind.id, at=now, period_label=p.label, previous_status=previous, status=status, value=value,
        target=base["target"], magnitude=magnitude, basis=ind.basis, overridden=overridden,
        override_reason=override_reason, reason=(note or reason or "")[:300], episode_id=ind.episode_id or closed,
        event=",".join(events) or "noted", actor=actor,
        actor_email=by.email if by else None, actor_via=by.via if by else None,
    ))
    return status != previous
