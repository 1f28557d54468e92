"""A period's figure with its fiscal year to date and the same period last year.

Year to date (issue 16): an additive indicator sums its periods, any other takes their mean, and a
formula is applied to its inputs' year-to-date values: cost per ton to date is total spending over
total tons (45.83), not the mean of the monthly ratios (53.57). Its target to date weighs each
period's target by that period's denominator, which is the same formula applied to the targets."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from indicators import schemas
from indicators.aggregation import NEVER_ADDITIVE
from indicators.deps import IndicatorsDeps
from indicators.models import FormulaInput, Indicator, observations
from indicators.periods import Period, fiscal_year, fiscal_year_start, same_period_last_year
from indicators.targets import EMPTY, load_books

MAX_DEPTH = 4  # formulas of formulas; a cycle is refused when a formula is created


async def _values(uow: UnitOfWork, indicator_id: str, first: date, last: date) -> dict[date, float]:
    res = await uow.session.execute(
        sa.select(observations.c.period_start, observations.c.value).where(
            observations.c.indicator_id == indicator_id, observations.c.period_start >= first,
            observations.c.period_start <= last))
    return {s: v for s, v in res}


async def _inputs(uow: UnitOfWork, ind: Indicator) -> dict[str, Indicator]:
    res = await uow.session.execute(
        sa.select(FormulaInput.role, Indicator).join(Indicator, Indicator.id == FormulaInput.input_indicator_id)
        .where(FormulaInput.formula_indicator_id == ind.id))
    return {role: i for role, i in res.tuples()}


def sums(ind: Indicator) -> bool:
    return bool(ind.additive) and not ind.formula and ind.unit not in NEVER_ADDITIVE


def combine(ind: Indicator, xs: list[float]) -> float | None:
    """A plain indicator's figure over several periods: the sum when it adds up, else the mean."""
    if not xs:
        return None
    return sum(xs) if sums(ind) else sum(xs) / len(xs)


def ratio(num: float | None, den: float | None) -> float | None:
    """A formula's figure over several periods: its numerator's over its denominator's."""
    return num / den if num is not None and den not in (None, 0) else None


async def ytd_value(uow: UnitOfWork, ind: Indicator, starts: Collection[date], first: date, last: date,
                    depth: int = 0) -> float | None:
    """The indicator's figure over the periods ``starts`` (within [first, last])."""
    if not starts:
        return None
    if ind.formula and depth < MAX_DEPTH:
        inputs = await _inputs(uow, ind)
        if set(inputs) != {"numerator", "denominator"}:
            return None
        num = await ytd_value(uow, inputs["numerator"], starts, first, last, depth + 1)
        den = await ytd_value(uow, inputs["denominator"], starts, first, last, depth + 1)
        return ratio(num, den)
    values = await _values(uow, ind.id, first, last)
    return combine(ind, [values[s] for s in starts if s in values])


async def summary(uow: UnitOfWork, deps: IndicatorsDeps, *, ind: Indicator, period: Period) -> schemas.SummaryRead:
    fy0 = deps.settings.fiscal_year_start_month
    fy = fiscal_year(period.start, fy0)
    fy_first = fiscal_year_start(fy, fy0)
    ly = same_period_last_year(period, fy0)
    own = await _values(uow, ind.id, fy_first, period.start)
    last_year = (await _values(uow, ind.id, ly.start, ly.start)).get(ly.start)
    book = (await load_books(uow, [ind.id], fy0)).get(ind.id, EMPTY)
    starts = sorted(own)
    targets = [book.value_at(s) for s in starts]
    known = [t for t in targets if t is not None]
    method: str
    if ind.formula:
        method = "formula"
        ytd = await ytd_value(uow, ind, starts, fy_first, period.start)
        inputs = await _inputs(uow, ind)
        ytd_target = None
        if "denominator" in inputs and len(known) == len(starts) and starts:
            den = await _values(uow, inputs["denominator"].id, fy_first, period.start)
            weights = [den.get(s, 0.0) for s in starts]
            if sum(weights):
                ytd_target = sum(t * w for t, w in zip(known, weights, strict=True)) / sum(weights)
    else:
        method = "sum" if sums(ind) else "mean"
        xs = [own[s] for s in starts]
        ytd = combine(ind, xs)
        ytd_target = None
        if known and len(known) == len(starts):
            ytd_target = sum(known) if method == "sum" else sum(known) / len(known)
    cur = own.get(period.start)
    change = None
    if cur is not None and last_year is not None and last_year != 0:
        change = (cur - last_year) / abs(last_year)
    return schemas.SummaryRead(
        code=ind.code, period=period.label, value=cur, target=book.value_at(period.start), status=await _status(
            uow, ind, period.start) if cur is not None else None, ytd_periods=len(starts), ytd_value=ytd,
        ytd_target=ytd_target, ytd_method=method,  # type: ignore[arg-type]
        fiscal_year=fy, last_year_period=ly.label, last_year_value=last_year, change_from_last_year=change,
    )


async def _status(uow: UnitOfWork, ind: Indicator, start: date) -> str | None:
    return (await uow.session.execute(sa.select(observations.c.status).where(
        observations.c.indicator_id == ind.id, observations.c.period_start == start))).scalar_one_or_none()
