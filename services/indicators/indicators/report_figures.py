"""The figures of a department report, as the Mayor's Management Report prints them, for many
indicators at once (a few batched reads, never one per indicator):

- the **actual** of each of the last fiscal years: every period of that year put together by the
  unit's rules (``indicators.summary``: a sum for what adds up, the mean otherwise, a formula's
  numerator over its denominator);
- the **target** of a fiscal year: the targets governing each of its periods, put together by the
  same rule (shown only when every period of the year has one);
- the **year to date** through the report month, and the **prior year to date**: the same periods
  of the previous fiscal year (``indicators.year_to_date``'s rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from citystat_common.uow import UnitOfWork
from indicators.models import Indicator
from indicators.periods import (
    fiscal_year,
    fiscal_year_start,
    period_of,
    periods_between,
    same_period_last_year,
)
from indicators.summary import sums
from indicators.targets import EMPTY, Book, load_books
from indicators.year_to_date import read_observed

ACTUAL_YEARS = 3  # fiscal years of actuals before the report's own


@dataclass(frozen=True)
class ReportFigures:
    fiscal_year: int  # the report's
    actuals: dict[int, float | None]  # earlier fiscal year -> its full-year figure
    targets: dict[int, float | None]  # fiscal year (earlier ones and the report's) -> its target
    ytd: float | None
    prior_ytd: float | None
    ytd_periods: int
    ytd_starts: tuple[date, ...] = field(default=())

    @property
    def target(self) -> float | None:
        return self.targets.get(self.fiscal_year)


def report_years(through: date, fy0: int, years: int = ACTUAL_YEARS) -> tuple[int, list[int]]:
    """The report's fiscal year and the earlier fiscal years whose actuals it shows, oldest first."""
    fy = fiscal_year(through, fy0)
    return fy, list(range(fy - years, fy))


def year_target(ind: Indicator, book: Book, fy: int, fy0: int) -> float | None:
    """The fiscal year's target: its periods' governing targets put together like its values; None
    unless every period has one. A formula's is their mean (its weights, the denominators, are not
    known for periods still to come)."""
    if not book:
        return None
    first = fiscal_year_start(fy, fy0)
    last = fiscal_year_start(fy + 1, fy0) - timedelta(days=1)
    values = [book.value_at(p.start) for p in periods_between(ind.frequency, first, last, fy0)]
    if not values or any(v is None for v in values):
        return None
    known = [v for v in values if v is not None]
    return sum(known) if sums(ind) else sum(known) / len(known)


async def report_figures(uow: UnitOfWork, inds: Sequence[Indicator], fy0: int, through: date,
                         years: int = ACTUAL_YEARS) -> dict[str, ReportFigures]:
    """Indicator id -> its report figures through the last day ``through``."""
    if not inds:
        return {}
    fy, earlier = report_years(through, fy0, years)
    first = fiscal_year_start(earlier[0] if earlier else fy, fy0)
    seen = await read_observed(uow, inds, first, through)
    books = await load_books(uow, [i.id for i in inds], fy0)
    figure = seen.figure

    out = {}
    for ind in inds:
        own = sorted(seen.values.get(ind.id, {}))
        actuals = {}
        for y in earlier:
            lo, hi = fiscal_year_start(y, fy0), fiscal_year_start(y + 1, fy0)
            starts = [s for s in own if lo <= s < hi]
            actuals[y] = figure(ind, starts) if starts else None
        ytd_starts = [s for s in own if fiscal_year_start(fy, fy0) <= s <= through]
        # the same months (weeks, quarters) of the previous fiscal year, period by period
        prior = [same_period_last_year(period_of(ind.frequency, s, fy0), fy0).start for s in ytd_starts]
        book = books.get(ind.id, EMPTY)
        out[ind.id] = ReportFigures(
            fiscal_year=fy, actuals=actuals, targets={y: year_target(ind, book, y, fy0) for y in [*earlier, fy]},
            ytd=figure(ind, ytd_starts) if ytd_starts else None, prior_ytd=figure(ind, prior) if prior else None,
            ytd_periods=len(ytd_starts), ytd_starts=tuple(ytd_starts))
    return out
