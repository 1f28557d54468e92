"""The indicator's own rules read from its row and the city's settings: evaluation config, grace,
the values a unit accepts, period parsing (cached: the write path parses the same few periods
many times), and finding an indicator by code."""

from __future__ import annotations

import functools
import math
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from citystat_common.errors import NotFound
from citystat_common.uow import UnitOfWork
from indicators.config import Settings
from indicators.evaluation import EvalConfig, default_rules, validate_rules
from indicators.models import Indicator
from indicators.periods import DEFAULT_GRACE_DAYS, Period, parse_period, period_of

PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92, "annual": 366}
CHUNK_INDICATORS = 400  # ids per IN (...) list


def tz_of(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.city_timezone)


@functools.lru_cache(maxsize=200_000)
def period_cached(frequency: str, text: str, fy: int) -> Period:
    return parse_period(frequency, text, fy)


@functools.lru_cache(maxsize=200_000)
def period_at(frequency: str, start: date, fy: int) -> Period:
    return period_of(frequency, start, fy)


def eval_config(ind: Indicator, settings: Settings) -> EvalConfig:
    rules = validate_rules(ind.rules) if ind.rules else default_rules(settings.green_within, settings.yellow_within)
    return EvalConfig(
        direction=ind.direction,
        basis=ind.basis,
        rules=rules,
        persistence=ind.persistence or settings.persistence,
        recovery_within=ind.recovery_within if ind.recovery_within is not None else settings.recovery_within,
        band_tolerance=ind.band_tolerance,
        history_k=ind.history_k or settings.history_k,
        history_window=ind.history_window or settings.history_window,
        history_min_points=settings.history_min_points,
    )


def grace_days(ind: Indicator) -> int:
    return ind.grace_days if ind.grace_days is not None else DEFAULT_GRACE_DAYS[ind.frequency]


# The values each unit accepts (any finite number for a unit not listed); the bulk path reads it too.
UNIT_RANGE = {"percentage": (0.0, 100.0), "count": (0.0, math.inf), "duration": (0.0, math.inf),
              "score": (0.0, math.inf)}


def validate_value(unit: str, value: float) -> str | None:
    """None when the value fits the unit, else what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a finite number"
    lo, hi = UNIT_RANGE.get(unit, (-math.inf, math.inf))
    if lo <= value <= hi:
        return None
    if unit == "percentage":
        return "a percentage must be between 0 and 100"
    return f"a {unit} cannot be negative"


async def get_indicator(uow: UnitOfWork, code: str) -> Indicator:
    ind = (await uow.session.execute(sa.select(Indicator).where(Indicator.code == code))).scalar_one_or_none()
    if ind is None:
        raise NotFound(f"no indicator with code {code!r}", field="code")
    return ind
