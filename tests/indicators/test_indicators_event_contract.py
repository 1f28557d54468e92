"""The status payload's override fields (issue 16): optional, so events written before them still parse."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from citystat_common.events import (
    IndicatorBreached,
    IndicatorRecovered,
    IndicatorStatusChanged,
    make_event,
    parse_event,
)

OLD = {
    "indicator_id": "i1",
    "indicator_code": "X.y",
    "indicator_name": "X",
    "department_code": "STREETS",
    "period": "2026-01",
    "period_start": "2026-01-01",
    "period_end": "2026-01-31",
    "status": "yellow",
    "basis": "target",
    "kind": "outcome",
    "overridden": True,
    "override_reason": "storm",
}


def test_an_event_without_the_new_fields_still_parses() -> None:
    p = IndicatorStatusChanged.model_validate(OLD)
    assert (p.override_by, p.override_expires_at, p.computed_status, p.episode_id) == (None, None, None, None)


def test_the_override_fields_round_trip_through_the_envelope() -> None:
    until = datetime(2026, 3, 1, tzinfo=UTC)
    p = IndicatorStatusChanged(
        **OLD, override_by="staff", override_expires_at=until, computed_status="red", episode_id="ep1"
    )
    _, back = parse_event(make_event(p, subject="i1").to_bytes())
    assert isinstance(back, IndicatorStatusChanged)
    assert (back.override_by, back.override_expires_at, back.computed_status, back.episode_id) == (
        "staff",
        until,
        "red",
        "ep1",
    )


@pytest.mark.parametrize("model", [IndicatorBreached, IndicatorRecovered])
def test_breached_and_recovered_still_require_the_episode(model: type[IndicatorStatusChanged]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(OLD)
    assert model.model_validate({**OLD, "episode_id": "ep1"}).episode_id == "ep1"
