"""Plausible ranges for the dates, periods and durations a city's API accepts.

Python's datetime spans years 1 to 9999, so `0001-01-01T00:00:00+05:00` parses but overflows the
moment it is moved to UTC, and `9999-12-31T23:00:00-05:00` overflows the other way: both were 500s.
A city's records start long after 1970 and nobody schedules work past 2100, so anything outside
[EARLIEST, LATEST) is refused as a 422 before it reaches arithmetic. Forward-looking values (an
override's expiry, a mute) get a tighter horizon of their own with `within_horizon`.

Use the Annotated types on pydantic fields and FastAPI query parameters alike:

    start_date: PlausibleDatetime | None = None
    until: Annotated[datetime, AfterValidator(within_horizon(days=366))]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = date(1970, 1, 1)
LATEST = date(2100, 1, 1)
EARLIEST_YEAR, LATEST_YEAR = EARLIEST.year, LATEST.year - 1
RANGE_TEXT = f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def check_date(value: date) -> date:
    """A date (or datetime: its wall-clock date, read without moving zones) inside the range."""
    day = value.date() if isinstance(value, datetime) else value
    # The bounds are years away from datetime's limits, so moving zones after this check is safe.
    if not (EARLIEST <= day < LATEST):
        raise ValueError(f"must be {RANGE_TEXT}")
    return value


def check_datetime(value: datetime) -> datetime:
    """A datetime inside the range; naive values are left naive (the caller decides their zone)."""
    check_date(value)
    return value


def check_year(year: int) -> int:
    if not (EARLIEST_YEAR <= year <= LATEST_YEAR):
        raise ValueError(f"year must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return year


def within_horizon(*, days: int, allow_past: bool = False) -> Callable[[datetime], datetime]:
    """A validator: at most `days` ahead of now (and not in the past unless allow_past)."""

    def _check(value: datetime) -> datetime:
        check_datetime(value)
        now = datetime.now(UTC)
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        if aware > now + timedelta(days=days):
            raise ValueError(f"must be at most {days} days ahead")
        if not allow_past and aware <= now:
            raise ValueError("must be in the future")
        return value

    return _check


PlausibleDate = Annotated[date, AfterValidator(check_date)]
PlausibleDatetime = Annotated[datetime, AfterValidator(check_datetime)]
