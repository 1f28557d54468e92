"""The pure escalation rules (escalation.policy) without a database: severity from the size of a
miss, when a ticket next escalates, and what happens when that time comes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from citystat_common.calendar import BusinessCalendar
from escalation.policy import (
    add_delay,
    default_policy,
    derive_severity,
    due_step,
    next_escalation_at,
    next_level,
    resolution_delay,
)

NY = ZoneInfo("America/New_York")
CAL = BusinessCalendar(timezone="America/New_York")
LEVELS = default_policy()["levels"]
# Tuesday 1 December 2026, 10:00 in New York: a business day, no holiday near.
TUESDAY_10 = datetime(2026, 12, 1, 10, tzinfo=NY).astimezone(UTC)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)


@pytest.mark.parametrize(("magnitude", "critical", "severity"), [
    (0.6, False, 1), (0.5, False, 1), (0.3, False, 2), (0.1, False, 3), (0.05, False, 4), (None, False, 4),
    (-0.3, False, 2),  # the size of the miss, whichever way "worse" points
    (0.3, True, 1), (0.05, True, 3), (0.6, True, 1),  # critical: one step worse, never past 1
])
def test_severity_from_the_size_of_the_miss(magnitude: float | None, critical: bool, severity: int) -> None:
    assert derive_severity(magnitude, critical, [0.5, 0.25, 0.1]) == severity


def test_levels_climb_partner_head_deputy_mayor_managing_director() -> None:
    assert [next_level(LEVELS, lv) for lv in range(4)] == [1, 2, 3, None]


def test_an_open_ticket_escalates_after_its_severity_delay_in_business_time() -> None:
    # critical at level 0: 4 business hours; 10:00 + 4h = 14:00 the same day
    at = next_escalation_at(CAL, LEVELS, level=0, status="open", severity=1, review_pending=False,
                            in_progress_at=None, start=TUESDAY_10)
    assert at == ny(2026, 12, 1, 14)
    # low: 5 business days -> the next Tuesday at 10:00
    low = next_escalation_at(CAL, LEVELS, level=0, status="open", severity=4, review_pending=False,
                             in_progress_at=None, start=TUESDAY_10)
    assert low == ny(2026, 12, 8, 10)


def test_after_closing_time_the_clock_waits_for_the_next_business_morning() -> None:
    friday_16 = ny(2026, 12, 4, 16)
    at = next_escalation_at(CAL, LEVELS, level=0, status="open", severity=1, review_pending=False,
                            in_progress_at=None, start=friday_16)
    assert at == ny(2026, 12, 7, 11)  # 1 hour on Friday, 3 on Monday from 8:00


@pytest.mark.parametrize(("status", "review_pending", "level"), [
    ("resolved", False, 1), ("closed", False, 1), ("open", True, 1), ("open", False, 9),
    ("acknowledged", False, 0),  # waits for the acknowledgement timeout, not the escalation clock
])
def test_nothing_is_due(status: str, review_pending: bool, level: int) -> None:
    assert next_escalation_at(CAL, LEVELS, level=level, status=status, severity=1, review_pending=review_pending,
                              in_progress_at=None, start=TUESDAY_10) is None


def test_work_in_progress_at_level_0_runs_the_resolution_clock_of_the_level_above() -> None:
    assert resolution_delay(LEVELS, 0, 1) == {"amount": 1, "unit": "business_days"}
    began = ny(2026, 12, 1, 9)
    at = next_escalation_at(CAL, LEVELS, level=0, status="in_progress", severity=1, review_pending=False,
                            in_progress_at=began, start=TUESDAY_10)
    assert at == ny(2026, 12, 2, 9)  # from when work began, not from ``start``


def test_a_scaled_demo_delay_counts_calendar_time() -> None:
    # 4 business hours scaled by 1/60 -> 4 minutes
    assert add_delay(CAL, TUESDAY_10, {"amount": 4, "unit": "business_hours"}, 1 / 60) == ny(2026, 12, 1, 10, 4)


def test_due_at_level_0_unacknowledged_escalates_to_the_department_head() -> None:
    step = due_step(LEVELS, level=0, status="open", severity=2, repeats=0, in_progress_at=None)
    assert (step.kind, step.to_level) == ("escalate", 1)
    assert step.reason == "not acknowledged within 1 business days at level 0"


def test_due_in_progress_at_level_0_escalates_as_not_resolved() -> None:
    step = due_step(LEVELS, level=0, status="in_progress", severity=1, repeats=0, in_progress_at=ny(2026, 12, 1, 9))
    assert (step.kind, step.to_level) == ("escalate", 1)
    assert step.reason.startswith("not resolved within 1 business days at level 0 (in progress since 2026-12-01T14:00")


def test_due_acknowledged_at_level_0_stops_and_the_scale_is_named() -> None:
    assert due_step(LEVELS, level=0, status="acknowledged", severity=1, repeats=0, in_progress_at=None).kind == "stop"
    step = due_step(LEVELS, level=1, status="acknowledged", severity=1, repeats=0, in_progress_at=None, scale=0.5)
    assert step.kind == "escalate" and step.reason.endswith("(delays scaled by 0.5 for the demo)")


def test_the_managing_director_is_reminded_twice_then_the_top_is_reached() -> None:
    steps = [due_step(LEVELS, level=3, status="open", severity=3, repeats=r, in_progress_at=None) for r in range(3)]
    assert [(s.kind, s.reminder, s.reminders) for s in steps] == [("remind", 1, 2), ("remind", 2, 2), ("top", 0, 0)]
    assert steps[0].delay == {"amount": 10, "unit": "business_days"}


def test_a_level_the_policy_lacks_stops() -> None:
    assert due_step(LEVELS, level=7, status="open", severity=1, repeats=0, in_progress_at=None).kind == "stop"
