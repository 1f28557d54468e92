"""Service levels: the bounded due-date arithmetic agrees with the shared calendar's wherever that
one finishes, and stops at the horizon where it would not; attribute rules pick another level."""

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citystat_common.calendar import BusinessCalendar, add_duration
from intake311.service_levels import HORIZON_DAYS, BeyondHorizon, Level, due_datetime, pick_level

CITY = BusinessCalendar(timezone="America/New_York")
SEVEN_DAYS = BusinessCalendar(timezone="America/New_York", workdays=frozenset(range(7)), opens=time(7), closes=time(19),
                              federal_holidays=False)
ONE_MINUTE = BusinessCalendar(timezone="America/New_York", workdays=frozenset({0}), opens=time(8), closes=time(8, 1))
UNITS = ["business_hours", "business_days", "calendar_hours", "calendar_days"]


@settings(max_examples=300, deadline=None)
@given(start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
       amount=st.integers(1, 400), unit=st.sampled_from(UNITS), cal=st.sampled_from([CITY, SEVEN_DAYS]))
def test_same_answer_as_the_shared_calendar(start, amount, unit, cal):
    assert due_datetime(cal, start, amount, unit) == add_duration(cal, start, amount, unit)


@pytest.mark.parametrize("amount,unit", [(10_000, "business_hours"), (105, "business_days"), (731, "calendar_days"),
                                         (1e308, "calendar_hours"), (float("nan"), "business_hours"), (-1, "calendar_days"),
                                         (0, "business_hours"), (3, "weeks")])
def test_beyond_the_horizon_is_an_error_not_a_walk(amount, unit):
    with pytest.raises(BeyondHorizon):
        due_datetime(ONE_MINUTE, datetime(2026, 11, 24, tzinfo=UTC), amount, unit)


def test_the_horizon_itself_is_reachable():
    start = datetime(2026, 11, 24, 15, tzinfo=UTC)
    assert due_datetime(CITY, start, HORIZON_DAYS, "calendar_days") == start + timedelta(days=HORIZON_DAYS)
    assert due_datetime(ONE_MINUTE, start, 50 / 60, "business_hours") < start + timedelta(days=HORIZON_DAYS)


def test_rules_pick_a_level_by_attribute_value():
    rules = [{"attribute": "OFFENSIVE", "value": "yes", "amount": 1, "unit": "business_days"},
             {"attribute": "MATERIAL", "value": "tires", "amount": 2, "unit": "calendar_days"}]
    default = Level(7, "business_days")
    assert pick_level(default, rules, {"OFFENSIVE": "yes"}) == (Level(1, "business_days"), 0)
    assert pick_level(default, rules, {"OFFENSIVE": "no"}) == (default, -1)
    assert pick_level(default, rules, {"MATERIAL": ["furniture", "tires"]}) == (Level(2, "calendar_days"), 1)
    assert pick_level(default, [], {"OFFENSIVE": "yes"}) == (default, -1)
