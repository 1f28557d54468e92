"""Business calendar: pure functions, no I/O."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from citystat_common.calendar import BusinessCalendar, add_duration, us_federal_holidays

NY = ZoneInfo("America/New_York")
cal = BusinessCalendar()


def ny(*a):
    return datetime(*a, tzinfo=NY)


def test_federal_holidays_2026():
    h = us_federal_holidays(2026)
    assert date(2026, 11, 26) in h  # Thanksgiving
    assert date(2026, 7, 3) in h  # July 4th falls on a Saturday: observed Friday
    assert date(2026, 12, 25) in h and date(2026, 9, 7) in h


def test_business_days_across_weekend():
    # Friday 10:00 + 3 business days = Wednesday 10:00
    got = cal.add_business_days(ny(2026, 10, 30, 10), 3)
    assert got == ny(2026, 11, 4, 10).astimezone(UTC)


def test_business_days_across_weekend_and_holiday():
    # Wednesday before Thanksgiving 14:00 + 2 business days: skip Thu (holiday), Sat, Sun -> Mon 14:00
    got = cal.add_business_days(ny(2026, 11, 25, 14), 2)
    assert got == ny(2026, 11, 30, 14).astimezone(UTC)


def test_request_on_saturday_starts_monday_morning():
    got = cal.add_business_days(ny(2026, 11, 7, 22), 1)
    assert got == ny(2026, 11, 10, 8).astimezone(UTC)


def test_business_hours_span_days():
    # Monday 16:00 + 4 business hours = Tuesday 11:00 (day ends 17:00, opens 08:00)
    assert cal.add_business_hours(ny(2026, 11, 9, 16), 4) == ny(2026, 11, 10, 11).astimezone(UTC)
    assert cal.business_hours_between(ny(2026, 11, 9, 16), ny(2026, 11, 10, 11)) == pytest.approx(4)


def test_calendar_units_and_naive_rejected():
    assert add_duration(cal, ny(2026, 11, 7, 22), 48, "calendar_hours") == ny(2026, 11, 9, 22).astimezone(UTC)
    with pytest.raises(ValueError):
        cal.add_business_days(datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError):
        add_duration(cal, ny(2026, 1, 5, 9), 1, "fortnights")
