"""Targets: which fiscal years a target may be set for, and (see ``governing``) which target
governs each period. Pure functions and one read; ``service.set_targets`` writes them."""

from __future__ import annotations

from datetime import date

from citystat_common.errors import Invalid
from indicators.periods import Period, fiscal_year

# A target is a plan: for the fiscal years around now (history being backfilled, the next budgets),
# not for 1900 or 2999.
TARGET_YEARS_BACK = 5
TARGET_YEARS_AHEAD = 3


def check_target_year(p: Period, *, today: date, fy0: int, field: str) -> int:
    """The fiscal year of ``p``, if it lies within the target horizon; else 422 on ``field``."""
    fy, now = fiscal_year(p.start, fy0), fiscal_year(today, fy0)
    if not (now - TARGET_YEARS_BACK <= fy <= now + TARGET_YEARS_AHEAD):
        raise Invalid(f"a target must be for fiscal years FY{now - TARGET_YEARS_BACK} to FY{now + TARGET_YEARS_AHEAD}"
                      f" ({p.label} is in FY{fy})", field=field)
    return fy
