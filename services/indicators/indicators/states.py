"""The states a reader sees, kept apart (issue 22, "honest states"):

- **red / yellow / green**: judged against the target or reference by the indicator's rules (or set
  by staff judgement, an override).
- **no report** (grey): a period has passed and its figure has not come in. Grey always means
  something is missing and somebody owes it.
- **building a baseline**: a figure came in but cannot be judged yet (no target, or too little
  history for its basis); it is shown with its value and is never painted grey.

The published status (events, ``status``) stays red/yellow/green/grey: escalation reads it. The
``state`` is what every page, CSV and API read shows beside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from indicators.models import Indicator

State = Literal["red", "yellow", "green", "baseline", "no_report"]
STATES: tuple[State, ...] = ("red", "yellow", "green", "baseline", "no_report")
STATE_WORDS = {"red": "red", "yellow": "yellow", "green": "green", "baseline": "building a baseline",
               "no_report": "no report"}


def overdue(ind: Indicator, now: datetime) -> bool:
    """A period has passed without its figure."""
    return bool(ind.missing or (ind.next_due_at is not None and ind.next_due_at <= now))


def state_of(status: str, *, overridden: bool, value: float | None, overdue: bool) -> State:
    """The reader's state from the effective status: judged colours stand; grey splits into
    "no report" (owed) and "building a baseline" (a value nobody can judge yet)."""
    if status in ("red", "yellow", "green"):
        return status  # type: ignore[return-value]
    if not overridden and not overdue and value is not None:
        return "baseline"
    return "no_report"


def indicator_state(ind: Indicator, status: str, overridden: bool, now: datetime) -> State:
    return state_of(status, overridden=overridden, value=ind.latest_value, overdue=overdue(ind, now))


def row_state(status: str, value: float | None) -> State:
    """A stored period's state: a grey row with a value is a baseline period, without one it was owed."""
    return state_of(status, overridden=False, value=value, overdue=False)
