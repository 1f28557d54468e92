"""Formula indicators (cost per unit = numerator / denominator for the same period): recomputed
when an input's values change, through the one write path."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from indicators import observations as obs
from indicators.deps import IndicatorsDeps
from indicators.models import FormulaInput, Indicator, observations
from indicators.periods import Period
from indicators.rules import CHUNK_INDICATORS, validate_value


async def recompute_formula(
    uow: UnitOfWork, deps: IndicatorsDeps, *, formula_ind: Indicator, periods: Iterable[date] | None, actor: str,
    now: datetime | None = None, depth: int = 0,
) -> None:
    """cost per unit = numerator / denominator for the same period (both must be present)."""
    inputs = {
        fi.role: fi.input_indicator_id
        for fi in (await uow.session.execute(
            sa.select(FormulaInput).where(FormulaInput.formula_indicator_id == formula_ind.id)
        )).scalars()
    }
    if set(inputs) != {"numerator", "denominator"}:
        return
    stmt = sa.select(observations.c.indicator_id, observations.c.period_start, observations.c.period_end,
                     observations.c.period_label, observations.c.value).where(
        observations.c.indicator_id.in_([inputs["numerator"], inputs["denominator"]]))
    plist = sorted(set(periods)) if periods is not None else None
    if plist is not None:
        stmt = stmt.where(observations.c.period_start.in_(plist))
    got: dict[date, dict[str, Any]] = defaultdict(dict)
    for iid, start, end, label, value in await uow.session.execute(stmt):
        role = "numerator" if iid == inputs["numerator"] else "denominator"
        got[start][role] = (value, Period(start, end, label, formula_ind.frequency))
    items = []
    for parts in got.values():
        if len(parts) == 2 and parts["denominator"][0] != 0:
            value = parts["numerator"][0] / parts["denominator"][0]
            if math.isfinite(value) and validate_value(formula_ind.unit, value) is None:
                items.append(obs.ObsIn(formula_ind, parts["numerator"][1], value))
    if items:
        await obs.record_observations(uow, deps, items=items, actor=actor, source="formula", now=now, _depth=depth + 1)


async def recompute_formulas_for(
    uow: UnitOfWork, deps: IndicatorsDeps, *, changed: dict[str, set[date]], actor: str, now: datetime, depth: int
) -> None:
    ids = list(changed)
    users: dict[str, set[date]] = defaultdict(set)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = ids[i : i + CHUNK_INDICATORS]
        res = await uow.session.execute(
            sa.select(FormulaInput.formula_indicator_id, FormulaInput.input_indicator_id)
            .where(FormulaInput.input_indicator_id.in_(chunk))
        )
        for fid, iid in res:
            users[fid].update(changed[iid])
    for fid, starts in users.items():
        f = await uow.session.get(Indicator, fid)
        if f is not None and f.active:
            await recompute_formula(uow, deps, formula_ind=f, periods=starts, actor=actor, now=now, depth=depth)
