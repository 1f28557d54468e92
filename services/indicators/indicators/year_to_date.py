"""Every figure against its year (issue 22), for a whole board at once.

The fiscal year to date of each indicator's latest period, beside the same periods of the prior
fiscal year, by the rules of ``indicators.summary`` (a sum for what adds up, the mean otherwise,
a formula's numerator to date over its denominator to date). Read in a few batched queries, never
one per tile."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from indicators.models import FormulaInput, Indicator, observations
from indicators.periods import fiscal_year, fiscal_year_start, period_of, same_period_last_year
from indicators.summary import MAX_DEPTH, combine, ratio

CHUNK = 400


@dataclass(frozen=True)
class YearToDate:
    fiscal_year: int
    periods: int
    value: float | None
    last_year: float | None  # the same periods of the previous fiscal year


async def _formula_inputs(uow: UnitOfWork, inds: Sequence[Indicator]) -> dict[str, dict[str, Indicator]]:
    """Formula id -> {role: input}, following formulas of formulas as deep as summary does."""
    out: dict[str, dict[str, Indicator]] = {}
    todo = [i.id for i in inds if i.formula]
    for _ in range(MAX_DEPTH):
        if not todo:
            break
        res = await uow.session.execute(
            sa.select(FormulaInput.formula_indicator_id, FormulaInput.role, Indicator)
            .join(Indicator, Indicator.id == FormulaInput.input_indicator_id)
            .where(FormulaInput.formula_indicator_id.in_(todo)))
        todo = []
        for fid, role, inp in res.tuples():
            out.setdefault(fid, {})[role] = inp
            if inp.formula and inp.id not in out:
                todo.append(inp.id)
    return out


@dataclass(frozen=True)
class Observed:
    """The values of some indicators (and their formulas' inputs) between two days, and the rule
    that puts any set of their periods together (also ``indicators.report_figures``'s)."""
    values: dict[str, dict[date, float]]
    inputs: dict[str, dict[str, Indicator]]

    def figure(self, ind: Indicator, starts: Sequence[date], depth: int = 0) -> float | None:
        if ind.formula and depth < MAX_DEPTH:
            roles = self.inputs.get(ind.id, {})
            if set(roles) != {"numerator", "denominator"}:
                return None
            return ratio(self.figure(roles["numerator"], starts, depth + 1),
                         self.figure(roles["denominator"], starts, depth + 1))
        own = self.values.get(ind.id, {})
        return combine(ind, [own[s] for s in starts if s in own])


async def read_observed(uow: UnitOfWork, inds: Sequence[Indicator], first: date, last: date) -> Observed:
    """The indicators' and their formula inputs' values from ``first`` to ``last``, in batched reads."""
    inputs = await _formula_inputs(uow, inds)
    ids = sorted({i.id for i in inds} | {x.id for roles in inputs.values() for x in roles.values()})
    values: dict[str, dict[date, float]] = defaultdict(dict)
    for k in range(0, len(ids), CHUNK):
        res = await uow.session.execute(
            sa.select(observations.c.indicator_id, observations.c.period_start, observations.c.value).where(
                observations.c.indicator_id.in_(ids[k : k + CHUNK]), observations.c.period_start >= first,
                observations.c.period_start <= last))
        for iid, start, value in res:
            values[iid][start] = value
    return Observed(values=values, inputs=inputs)


async def years_to_date(uow: UnitOfWork, inds: Sequence[Indicator], fy0: int) -> dict[str, YearToDate]:
    """Indicator id -> its year to date, for those with a latest period."""
    dated = [i for i in inds if i.latest_period_start is not None]
    if not dated:
        return {}
    latest = max(i.latest_period_start for i in dated if i.latest_period_start)
    first = min(fiscal_year_start(fiscal_year(i.latest_period_start, fy0) - 1, fy0)
                for i in dated if i.latest_period_start)
    seen = await read_observed(uow, dated, first, latest)

    out = {}
    for ind in dated:
        end = ind.latest_period_start
        assert end is not None
        fy = fiscal_year(end, fy0)
        fy_first = fiscal_year_start(fy, fy0)
        starts = sorted(s for s in seen.values.get(ind.id, {}) if fy_first <= s <= end)
        # the same months (weeks, quarters) of the previous fiscal year, period by period
        prior = [same_period_last_year(period_of(ind.frequency, s, fy0), fy0).start for s in starts]
        out[ind.id] = YearToDate(fiscal_year=fy, periods=len(starts), value=seen.figure(ind, starts),
                                 last_year=seen.figure(ind, prior) if prior else None)
    return out
