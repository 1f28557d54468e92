"""Targets: which fiscal years a target may be set for, and which target governs each period.

Before issue 16 every target carried forward until the next one, so a target set for one month
silently replaced the fiscal-year target for every later month. Now each target says what it
applies to, and the most specific one governs a period:

1. ``period``: that period only (the default for a target given by period);
2. ``rest_of_year``: from that period to the end of its fiscal year (the latest such one);
3. ``fiscal_year``: every period of that fiscal year (the default for a target given by fiscal_year);
4. ``onward``: from that period on, across fiscal years, until a later ``onward`` target (what
   every target did before; stored targets were migrated to it).

Pure functions and one read; ``service.set_targets`` writes the rows.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from citystat_common.errors import Invalid
from citystat_common.uow import UnitOfWork
from indicators.models import Target
from indicators.periods import Period, fiscal_year

# A target is a plan: for the fiscal years around now (history being backfilled, the next budgets),
# not for 1900 or 2999.
TARGET_YEARS_BACK = 5
TARGET_YEARS_AHEAD = 3
APPLIES = ("period", "rest_of_year", "fiscal_year", "onward")
CHUNK = 400


def check_target_year(p: Period, *, today: date, fy0: int, field: str) -> int:
    """The fiscal year of ``p``, if it lies within the target horizon; else 422 on ``field``."""
    fy, now = fiscal_year(p.start, fy0), fiscal_year(today, fy0)
    if not (now - TARGET_YEARS_BACK <= fy <= now + TARGET_YEARS_AHEAD):
        raise Invalid(f"a target must be for fiscal years FY{now - TARGET_YEARS_BACK} to FY{now + TARGET_YEARS_AHEAD}"
                      f" ({p.label} is in FY{fy})", field=field)
    return fy


def applies_of(*, by_fiscal_year: bool, applies: str | None, field: str) -> str:
    """What a target applies to: its default, or the one asked for if it fits how it was given."""
    if applies is None:
        return "fiscal_year" if by_fiscal_year else "period"
    fits = ("fiscal_year", "onward") if by_fiscal_year else ("period", "rest_of_year", "onward")
    if applies not in fits:
        given = "fiscal_year" if by_fiscal_year else "period"
        raise Invalid(f"a target given by {given} applies to one of: {', '.join(fits)}", field=field)
    return applies


@dataclass(frozen=True, slots=True)
class TargetRow:
    start: date
    applies: str
    value: float
    label: str
    fiscal_year: int | None = None  # as stored; None: from the start
    set_by: str = ""
    set_at: datetime | None = None


class Book:
    """One indicator's targets, answering which one governs a period (by the period's first day)."""

    def __init__(self, rows: Sequence[TargetRow], fy0: int):
        self.fy0 = fy0
        self.rows = list(rows)
        self._period = {r.start: r for r in rows if r.applies == "period"}
        self._fiscal = {self._fy(r): r for r in rows if r.applies == "fiscal_year"}
        self._rest = sorted((r for r in rows if r.applies == "rest_of_year"), key=lambda r: r.start)
        self._rest_starts = [r.start for r in self._rest]
        self._onward = sorted((r for r in rows if r.applies == "onward"), key=lambda r: r.start)
        self._onward_starts = [r.start for r in self._onward]

    def _fy(self, r: TargetRow) -> int:
        return r.fiscal_year if r.fiscal_year is not None else fiscal_year(r.start, self.fy0)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def governing(self, start: date) -> tuple[TargetRow | None, str]:
        """The target that governs the period starting ``start``, and why."""
        own = self._period.get(start)
        if own is not None:
            return own, f"set for {own.label} only"
        fy = fiscal_year(start, self.fy0)
        i = bisect.bisect_right(self._rest_starts, start) - 1
        if i >= 0 and self._fy(self._rest[i]) == fy:
            return self._rest[i], f"set for the rest of FY{fy} from {self._rest[i].label}"
        year = self._fiscal.get(fy)
        if year is not None:
            return year, f"the FY{fy} target"
        i = bisect.bisect_right(self._onward_starts, start) - 1
        if i >= 0:
            on = self._onward[i]
            if on.start == start:
                return on, f"set from {on.label} onward"
            return on, f"carried forward from {on.label} (set to apply onward; no target of FY{fy} or its periods)"
        return None, "no target governs this period"

    def value_at(self, start: date) -> float | None:
        r, _ = self.governing(start)
        return r.value if r is not None else None


EMPTY = Book([], 7)


async def load_books(uow: UnitOfWork, ids: Sequence[str], fy0: int) -> dict[str, Book]:
    rows: dict[str, list[TargetRow]] = defaultdict(list)
    for i in range(0, len(ids), CHUNK):
        res = await uow.session.execute(
            sa.select(Target.indicator_id, Target.period_start, Target.applies, Target.value, Target.period_label,
                      Target.fiscal_year, Target.set_by, Target.set_at)
            .where(Target.indicator_id.in_(list(ids[i : i + CHUNK])))
            .order_by(Target.indicator_id, Target.period_start)
        )
        for iid, start, applies, value, label, fy, by, at in res:
            rows[iid].append(TargetRow(start, applies, value, label, fy, by, at))
    return {iid: Book(r, fy0) for iid, r in rows.items()}
