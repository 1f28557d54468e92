"""Targets read per period: which target governs each period, and why (indicators.targets)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from citystat_common.errors import Invalid
from citystat_common.web import ReadUoW
from indicators import schemas, service
from indicators.api import _today
from indicators.deps import Deps
from indicators.periods import fiscal_year, fiscal_year_start, period_of, periods_between
from indicators.targets import EMPTY, load_books

router = APIRouter()


MAX_TARGET_PERIODS = 1000


@router.get("/indicators/{code}/targets/periods", response_model=list[schemas.TargetPeriodRead], tags=["targets"],
            summary="Which target governs each period, and why (default: the current fiscal year)")
async def target_periods(
    code: str, uow: ReadUoW, deps: Deps,
    start: Annotated[str | None, Query(alias="from", description="first period (label or date)")] = None,
    end: Annotated[str | None, Query(alias="to", description="last period (label or date)")] = None,
) -> list[schemas.TargetPeriodRead]:
    settings = deps.settings
    fy0 = settings.fiscal_year_start_month
    ind = await service.get_indicator(uow, code)
    fy = fiscal_year(_today(settings), fy0)
    first = period_of(ind.frequency, fiscal_year_start(fy, fy0), fy0)
    last = period_of(ind.frequency, fiscal_year_start(fy + 1, fy0) - timedelta(days=1), fy0)
    try:
        first = service._period_cached(ind.frequency, start, fy0) if start else first
    except ValueError as exc:
        raise Invalid(str(exc), field="from") from exc
    try:
        last = service._period_cached(ind.frequency, end, fy0) if end else last
    except ValueError as exc:
        raise Invalid(str(exc), field="to") from exc
    if last.start < first.start:
        raise Invalid("'to' is before 'from'", field="to")
    periods = periods_between(ind.frequency, first.start, last.start, fy0, limit=MAX_TARGET_PERIODS + 1)
    if len(periods) > MAX_TARGET_PERIODS:
        raise Invalid(f"at most {MAX_TARGET_PERIODS} periods at once", field="to")
    book = (await load_books(uow, [ind.id], fy0)).get(ind.id, EMPTY)
    out = []
    for p in periods:
        row, why = book.governing(p.start)
        out.append(schemas.TargetPeriodRead(
            period=p.label, period_start=p.start, target=row.value if row else None,
            applies=row.applies if row else None, set_for=row.label if row else None, why=why))  # type: ignore[arg-type]
    return out
