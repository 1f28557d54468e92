"""Reads of observations for the API."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from indicators.models import Indicator, observations
from indicators.targets import EMPTY, load_books


async def series(
    uow: UnitOfWork, ind: Indicator, *, start: date | None = None, end: date | None = None, limit: int = 5000,
    fy0: int = 7,
) -> list[dict[str, Any]]:
    stmt = sa.select(observations).where(observations.c.indicator_id == ind.id)
    if start:
        stmt = stmt.where(observations.c.period_start >= start)
    if end:
        stmt = stmt.where(observations.c.period_start <= end)
    stmt = stmt.order_by(observations.c.period_start.desc()).limit(limit)
    rows = [dict(r) for r in (await uow.session.execute(stmt)).mappings()]
    rows.reverse()
    book = (await load_books(uow, [ind.id], fy0)).get(ind.id, EMPTY)
    for r in rows:
        r["target"] = book.value_at(r["period_start"])
    return rows
