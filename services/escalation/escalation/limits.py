"""Escalation's plausible ranges for times, dates and durations, on top of
``citystat_common.bounds`` (which gives the absolute 1970..2100 range on the schemas).

The horizons here are checked against the service's own clock (``now``, injected: tests drive
it), not the wall clock that ``bounds.within_horizon`` reads, so they live in the domain:

- a mute (ticket or department) ends in the future and at most ``MUTE_HORIZON_DAYS`` ahead:
  a snooze longer than half a year is a decision to stop escalating, which is a resolution;
- a due date (action, project, milestone) lies at most ``DUE_PAST_DAYS`` back (work logged after
  the fact) and ``DUE_FUTURE_DAYS`` ahead of today in the city's zone;
- a policy delay is at most about a year of its unit (``DELAY_MAX``): a longer one means the level
  never escalates, and its arithmetic on the business calendar would walk years of days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from citystat_common.errors import Invalid

MUTE_HORIZON_DAYS = 180
DUE_PAST_DAYS = 366
DUE_FUTURE_DAYS = 5 * 366
DELAY_MAX: dict[str, float] = {
    "calendar_minutes": 366 * 24 * 60,
    "calendar_hours": 366 * 24,
    "calendar_days": 366,
    "business_days": 260,  # a year of working days
    "business_hours": 260 * 24,  # whatever the working day's length, no more than a year of them
}


def check_mute_until(until: datetime, now: datetime, *, field: str = "until") -> None:
    if until <= now:
        raise Invalid(f"{field} must be in the future (now is {now.isoformat()})", field=field)
    if until > now + timedelta(days=MUTE_HORIZON_DAYS):
        raise Invalid(f"{field} must be at most {MUTE_HORIZON_DAYS} days ahead; resolve the ticket instead of a "
                      "longer mute", field=field)


def check_due(due: date | None, today: date, *, field: str = "due_date") -> None:
    if due is None:
        return
    if due < today - timedelta(days=DUE_PAST_DAYS) or due > today + timedelta(days=DUE_FUTURE_DAYS):
        raise Invalid(f"{field} must be between {DUE_PAST_DAYS} days before and {DUE_FUTURE_DAYS} days after today "
                      f"({today.isoformat()})", field=field)


def check_delay(amount: float, unit: str) -> None:
    """A ValueError for pydantic validators (the field path is added by pydantic)."""
    limit = DELAY_MAX.get(unit)
    if limit is not None and amount > limit:
        raise ValueError(f"at most {limit:g} {unit.replace('_', ' ')} (about a year)")
