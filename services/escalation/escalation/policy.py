"""The escalation rules, pure (no database, no clock): severity bands, policy levels, due times on
the business calendar, when a ticket next escalates (``next_escalation_at``) and what the scheduler
does when that time comes (``due_step``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from citystat_common.calendar import BusinessCalendar, add_duration
from escalation.models import OPEN_STATUSES

UNITS = ("business_hours", "business_days", "calendar_minutes", "calendar_hours", "calendar_days")


def derive_severity(magnitude: float | None, critical: bool, bands: list[float]) -> int:
    """1 critical ... 4 low from the size of the miss; a critical indicator is one step worse."""
    m = abs(magnitude) if magnitude is not None else 0.0
    if m >= bands[0]:
        severity = 1
    elif m >= bands[1]:
        severity = 2
    elif m >= bands[2]:
        severity = 3
    else:
        severity = 4
    return max(1, severity - 1) if critical else severity


def _d(amount: float, unit: str) -> dict[str, Any]:
    return {"amount": amount, "unit": unit}


def default_policy() -> dict[str, Any]:
    """Partner -> department head -> deputy mayor -> managing director. Critical: 4 business
    hours to acknowledge; low: 5 business days."""
    bh, bd = "business_hours", "business_days"
    return {
        "name": "default",
        "description": "Senior-team partner, then department head, deputy mayor, managing director",
        "is_default": True,
        "departments": [],
        "resolve_on_recovery": False,
        "ack_timeout": _d(2, bd),
        "levels": [
            {"level": 0, "role": "partner", "condition": "not_acknowledged", "repeat": 0,
             "delays": {"1": _d(4, bh), "2": _d(1, bd), "3": _d(3, bd), "4": _d(5, bd)}},
            {"level": 1, "role": "department_head", "condition": "not_resolved", "repeat": 0,
             "delays": {"1": _d(1, bd), "2": _d(3, bd), "3": _d(5, bd), "4": _d(10, bd)}},
            {"level": 2, "role": "deputy_mayor", "condition": "not_resolved", "repeat": 0,
             "delays": {"1": _d(2, bd), "2": _d(5, bd), "3": _d(10, bd), "4": _d(15, bd)}},
            {"level": 3, "role": "managing_director", "condition": "not_resolved", "repeat": 2,
             "delays": {"1": _d(3, bd), "2": _d(5, bd), "3": _d(10, bd), "4": _d(15, bd)}},
        ],
    }


def level_spec(levels: list[dict[str, Any]], level: int) -> dict[str, Any] | None:
    return next((lv for lv in levels if lv["level"] == level), None)


def next_level(levels: list[dict[str, Any]], level: int) -> int | None:
    higher = sorted(lv["level"] for lv in levels if lv["level"] > level)
    return higher[0] if higher else None


def add_delay(calendar: BusinessCalendar, start: datetime, delay: dict[str, Any], scale: float = 1.0) -> datetime:
    """``start`` plus a policy delay. With ``scale`` != 1 (demos), the delay is scaled and counted
    in calendar time, a business day being the calendar's working day."""
    amount, unit = float(delay["amount"]), delay["unit"]
    if scale == 1.0:
        if unit == "calendar_minutes":
            return (start + timedelta(minutes=amount)).astimezone(UTC)
        return add_duration(calendar, start, amount, unit)
    day = datetime.combine(start.date(), calendar.closes) - datetime.combine(start.date(), calendar.opens)
    hours = {
        "business_hours": amount,
        "business_days": amount * day.total_seconds() / 3600,
        "calendar_minutes": amount / 60,
        "calendar_hours": amount,
        "calendar_days": amount * 24,
    }[unit]
    return (start + timedelta(hours=hours * scale)).astimezone(UTC)


def delay_for(spec: dict[str, Any], severity: int) -> dict[str, Any] | None:
    delays = spec.get("delays") or {}
    return delays.get(str(severity)) or delays.get(severity)  # type: ignore[call-overload]


def resolution_delay(levels: list[dict[str, Any]], level: int, severity: int) -> dict[str, Any] | None:
    """The resolution clock of work under way at a level that waits only for an acknowledgement:
    the delay of the first ``not_resolved`` level above it (the default policy: 1 to 10 business
    days by severity), so a ticket marked in progress still climbs if it is never resolved."""
    for lv in sorted(levels, key=lambda lv: lv["level"]):
        if lv["level"] > level and lv["condition"] == "not_resolved":
            return delay_for(lv, severity)
    return None


def next_escalation_at(
    calendar: BusinessCalendar, levels: list[dict[str, Any]], *, level: int, status: str, severity: int,
    review_pending: bool, in_progress_at: datetime | None, start: datetime, scale: float = 1.0,
) -> datetime | None:
    """When a ticket at ``level`` next escalates, counted from ``start``; None when nothing is due
    (a level the policy lacks, a closed ticket, a recovery awaiting review)."""
    spec = level_spec(levels, level)
    if spec is None or status not in OPEN_STATUSES or review_pending:
        return None
    if spec["condition"] == "not_acknowledged" and status != "open":
        # acknowledged: the acknowledgement timeout returns it to open; in progress: the resolution clock
        delay = resolution_delay(levels, level, severity) if status == "in_progress" else None
        return add_delay(calendar, in_progress_at or start, delay, scale) if delay else None
    delay = delay_for(spec, severity)
    return add_delay(calendar, start, delay, scale) if delay else None


@dataclass(frozen=True)
class DueStep:
    """What the scheduler does with a ticket whose escalation time has come: ``stop`` (nothing more
    is due at this level), ``remind`` the holder again, ``top`` (no level above), or ``escalate``."""

    kind: Literal["stop", "remind", "top", "escalate"]
    delay: dict[str, Any] = field(default_factory=dict)  # remind: the wait before the next step
    reminder: int = 0  # remind: which reminder this is, of ``reminders``
    reminders: int = 0
    to_level: int = 0  # escalate: the level it climbs to, and why
    reason: str = ""


def due_step(
    levels: list[dict[str, Any]], *, level: int, status: str, severity: int, repeats: int,
    in_progress_at: datetime | None, scale: float = 1.0,
) -> DueStep:
    spec = level_spec(levels, level)
    resolving = spec is not None and spec["condition"] == "not_acknowledged" and status == "in_progress"
    if spec is None or (spec["condition"] == "not_acknowledged" and status != "open" and not resolving):
        return DueStep("stop")
    delay = (resolution_delay(levels, level, severity) if resolving else delay_for(spec, severity)) \
        or {"amount": 0, "unit": "calendar_hours"}
    if not resolving and repeats < int(spec.get("repeat", 0)):
        return DueStep("remind", delay=delay, reminder=repeats + 1, reminders=int(spec["repeat"]))
    to = next_level(levels, level)
    if to is None:
        return DueStep("top")
    cond = "acknowledged" if spec["condition"] == "not_acknowledged" and not resolving else "resolved"
    reason = f"not {cond} within {delay['amount']:g} {delay['unit'].replace('_', ' ')} at level {level}"
    if resolving:
        reason += " (in progress since " + (in_progress_at.isoformat() if in_progress_at else "?") + ")"
    if scale != 1.0:
        reason += f" (delays scaled by {scale:g} for the demo)"
    return DueStep("escalate", delay=delay, to_level=to, reason=reason)
