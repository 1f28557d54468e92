"""Service levels: the due date a request is promised, computed within a bound, and the attribute
rules that give some requests of a service another level (offensive graffiti within one business
day, the rest within seven).

The shared ``BusinessCalendar`` walks day after day with no bound: 10,000 business hours on a
calendar open one minute a week walked for 3.8 s and then overflowed datetime (a 500 on every POST
to that service). Here the walk stops at a horizon (two years): a level that cannot be met within
it is refused when it is saved (422), and a row that slipped in anyway (an edited database, a
calendar changed elsewhere) gives the request no expected time rather than a hang or a 500.
The arithmetic is the calendar's own (same rules for hours, days and holidays), bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from citystat_common.calendar import BusinessCalendar
from citystat_common.errors import Invalid

HORIZON_DAYS = 730  # two years: no city promises a fix further out, and the walk stays < 1 ms
UNITS = ("business_hours", "business_days", "calendar_hours", "calendar_days")
LIST_TYPES = ("singlevaluelist", "multivaluelist")
_DAY = timedelta(days=1)


class BeyondHorizon(ValueError):
    """The level cannot be met within the horizon on this calendar (or the row is not a level at all)."""


def due_datetime(cal: BusinessCalendar, start: datetime, amount: float, unit: str, *,
                 horizon_days: int = HORIZON_DAYS) -> datetime:
    """``start`` plus the level on ``cal``, in UTC; BeyondHorizon past ``horizon_days`` days."""
    if unit not in UNITS or not math.isfinite(amount) or amount <= 0 or amount > horizon_days * 24:
        # checked before any timedelta is built: a huge amount would overflow it
        raise BeyondHorizon(f"{amount!r} {unit} is not a service level that can be met")
    if unit.startswith("calendar_"):
        delta = timedelta(hours=amount) if unit == "calendar_hours" else timedelta(days=amount)
        if delta > timedelta(days=horizon_days):
            raise BeyondHorizon(f"{amount:g} {unit} is more than {horizon_days} days")
        return (start + delta).astimezone(UTC)
    tz = cal.tz
    last = (start + timedelta(days=horizon_days)).astimezone(tz).date()
    current = _first_open(cal, start.astimezone(tz), last)
    if unit == "business_days":
        d = current.date()
        for _ in range(int(amount)):
            d += _DAY
            while d <= last and not cal.is_business_day(d):
                d += _DAY
            if d > last:
                raise BeyondHorizon(f"{amount:g} business days end after {horizon_days} days")
        return datetime.combine(d, current.timetz().replace(tzinfo=None), tz).astimezone(UTC)
    remaining = timedelta(hours=amount)
    while True:
        close = datetime.combine(current.date(), cal.closes, tz)
        available = close - current
        if remaining <= available:
            return (current + remaining).astimezone(UTC)
        remaining -= available
        current = _first_open(cal, close + timedelta(microseconds=1), last)


def _first_open(cal: BusinessCalendar, local: datetime, last: Any) -> datetime:
    """The moment itself if within business hours, else the next opening, up to the date ``last``."""
    tz, d = local.tzinfo, local.date()
    while d <= last:
        if cal.is_business_day(d):
            opens = datetime.combine(d, cal.opens, tz)
            if local < opens:
                return opens
            if local < datetime.combine(d, cal.closes, tz):
                return local
        d += _DAY
    raise BeyondHorizon(f"no business hours within {HORIZON_DAYS} days")


# --- attribute rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    amount: float
    unit: str


def pick_level(default: Level, rules: Sequence[Mapping[str, Any]], attributes: Mapping[str, Any]) -> tuple[Level, int]:
    """The level of a request with these attribute values: the first rule that matches (its index),
    else the service's own level (-1). A multivaluelist matches when the value is among those chosen."""
    for i, rule in enumerate(rules):
        given = attributes.get(rule["attribute"])
        if given == rule["value"] or (isinstance(given, list) and rule["value"] in given):
            return Level(float(rule["amount"]), rule["unit"]), i
    return default, -1


def check_levels(cal: BusinessCalendar, default: Level, rules: Sequence[Mapping[str, Any]],
                 attributes: Sequence[Mapping[str, Any]], *, now: datetime, calendar_code: str) -> None:
    """422 unless the level and every rule can be met within the horizon on the calendar, and every
    rule names a list attribute of the service and one of its values."""
    by_code = {a["code"]: a for a in attributes}
    for i, rule in enumerate(rules):
        field = f"service_level.rules.{i}"
        definition = by_code.get(rule["attribute"])
        if definition is None or definition.get("datatype") not in LIST_TYPES:
            raise Invalid(f"rule {i}: {rule['attribute']!r} is not a list attribute of this service "
                          "(rules match singlevaluelist and multivaluelist values)", field=f"{field}.attribute")
        keys = [str(v["key"]) for v in definition.get("values") or []]
        if rule["value"] not in keys:
            raise Invalid(f"rule {i}: {rule['value']!r} is not a value of {rule['attribute']} ({', '.join(keys)})",
                          field=f"{field}.value")
    levels = [("service_level", default)] + [(f"service_level.rules.{i}", Level(float(r["amount"]), r["unit"]))
                                             for i, r in enumerate(rules)]
    for field, level in levels:
        if level.unit == "business_days" and not float(level.amount).is_integer():
            raise Invalid("business_days must be a whole number", field=f"{field}.amount")
        try:
            due_datetime(cal, now, level.amount, level.unit)
        except BeyondHorizon as exc:
            raise Invalid(
                f"{level.amount:g} {level.unit.replace('_', ' ')} cannot be met within {HORIZON_DAYS} days on "
                f"calendar {calendar_code} ({exc})", field=f"{field}.amount",
            ) from exc
