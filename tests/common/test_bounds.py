"""Plausible-range validators (unit, no I/O)."""

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ValidationError

from citystat_common.bounds import PlausibleDate, PlausibleDatetime, check_year, within_horizon


class _M(BaseModel):
    at: PlausibleDatetime | None = None
    day: PlausibleDate | None = None
    until: Annotated[datetime, AfterValidator(within_horizon(days=366))] | None = None


@pytest.mark.parametrize(
    "raw", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"]
)
def test_datetimes_outside_the_range_are_refused(raw):
    with pytest.raises(ValidationError, match="between 1970-01-01 and 2100-01-01"):
        _M(at=raw)


def test_datetimes_and_dates_inside_the_range_pass():
    m = _M(at="1970-01-01T00:00:00-05:00", day="2099-12-31")
    assert m.at is not None and m.at.astimezone(UTC).year == 1970 and m.day == date(2099, 12, 31)


def test_horizon_refuses_past_and_far_future():
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="at most 366 days"):
        _M(until=now + timedelta(days=400))
    with pytest.raises(ValidationError, match="in the future"):
        _M(until=now - timedelta(minutes=1))
    assert _M(until=(now + timedelta(days=30)).astimezone(timezone(timedelta(hours=-5)))).until


def test_years():
    assert check_year(2026) == 2026
    for y in (1, 1900, 2100, 9999):
        with pytest.raises(ValueError):
            check_year(y)
