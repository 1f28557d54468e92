"""Period arithmetic per frequency, fiscal-year aware. Pure functions, no I/O.

A period is identified by its first day (``start``); ``end`` is its last day (inclusive).
Labels: daily ``2026-10-05``, weekly ``2026-W41`` (ISO weeks, Monday first), monthly
``2026-10``, quarterly ``FY2027-Q2`` (fiscal quarters) and annual ``FY2027`` (fiscal years,
named by the calendar year in which they end; ``fy_start`` is the month they begin, 7 = July).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from citystat_common.bounds import RANGE_TEXT, check_date

FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "annual")


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date
    label: str
    frequency: str


def fiscal_year(d: date, fy_start: int = 7) -> int:
    return d.year + 1 if fy_start != 1 and d.month >= fy_start else d.year


def fiscal_year_start(fy: int, fy_start: int = 7) -> date:
    return date(fy - 1 if fy_start != 1 else fy, fy_start, 1)


def _add_months(d: date, months: int) -> date:
    idx = d.year * 12 + (d.month - 1) + months
    return date(idx // 12, idx % 12 + 1, 1)


def period_of(frequency: str, d: date, fy_start: int = 7) -> Period:
    if frequency == "daily":
        return Period(d, d, d.isoformat(), frequency)
    if frequency == "weekly":
        start = d - timedelta(days=d.weekday())
        iso = start.isocalendar()
        return Period(start, start + timedelta(days=6), f"{iso.year}-W{iso.week:02d}", frequency)
    if frequency == "monthly":
        start = d.replace(day=1)
        return Period(start, _add_months(start, 1) - timedelta(days=1), f"{start.year}-{start.month:02d}", frequency)
    if frequency == "quarterly":
        fy = fiscal_year(d, fy_start)
        q = ((d.month - fy_start) % 12) // 3
        start = _add_months(fiscal_year_start(fy, fy_start), 3 * q)
        return Period(start, _add_months(start, 3) - timedelta(days=1), f"FY{fy}-Q{q + 1}", frequency)
    if frequency == "annual":
        fy = fiscal_year(d, fy_start)
        start = fiscal_year_start(fy, fy_start)
        return Period(start, _add_months(start, 12) - timedelta(days=1), f"FY{fy}", frequency)
    raise ValueError(f"unknown frequency {frequency!r}")


def next_period(p: Period, fy_start: int = 7) -> Period:
    return period_of(p.frequency, p.end + timedelta(days=1), fy_start)


def prev_period(p: Period, fy_start: int = 7) -> Period:
    return period_of(p.frequency, p.start - timedelta(days=1), fy_start)


def _minus_year(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)


def same_period_last_year(p: Period, fy_start: int = 7) -> Period:
    if p.frequency == "weekly":
        return period_of("weekly", p.start - timedelta(weeks=52), fy_start)
    return period_of(p.frequency, _minus_year(p.start), fy_start)


_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^FY(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^FY(\d{4})$")


def parse_period(frequency: str, text: str, fy_start: int = 7) -> Period:
    """A label of the indicator's frequency, or any ISO date inside the period."""
    text = str(text).strip().upper()
    try:
        if m := _WEEK.match(text):
            d = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        elif m := _MONTH.match(text):
            d = date(int(m[1]), int(m[2]), 1)
        elif m := _QUARTER.match(text):
            d = _add_months(fiscal_year_start(int(m[1]), fy_start), 3 * (int(m[2]) - 1))
        elif m := _YEAR.match(text):
            d = fiscal_year_start(int(m[1]), fy_start)
        else:
            d = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a period: use a date (2026-10-05) or a label such as "
                         f"2026-W41, 2026-10, FY2027-Q2, FY2027") from exc
    try:
        p = period_of(frequency, d, fy_start)
        # Years 1 or 9999 parse, then overflow in the arithmetic that follows (a year back, the next
        # period): a period a city can have data or targets for lies within the shared bounds.
        check_date(p.start)
        check_date(p.end)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a plausible period: it must lie {RANGE_TEXT}") from exc
    # A coarser label for a finer indicator is ambiguous (a month for a daily indicator): refuse.
    coarse = {"daily": 0, "weekly": 1, "monthly": 2, "quarterly": 3, "annual": 4}
    given = 1 if _WEEK.match(text) else 2 if _MONTH.match(text) else 3 if _QUARTER.match(text) else 4 if _YEAR.match(text) else 0
    if given > coarse[frequency] or (given == 1 and frequency != "weekly"):
        raise ValueError(f"{text!r} does not name one {frequency} period")
    return p


def periods_between(frequency: str, first: date, last: date, fy_start: int = 7, limit: int = 10_000) -> list[Period]:
    """Every period from the one holding ``first`` to the one holding ``last`` (inclusive)."""
    out: list[Period] = []
    p = period_of(frequency, first, fy_start)
    while p.start <= last and len(out) < limit:
        out.append(p)
        p = next_period(p, fy_start)
    return out


def local_midnight(d: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which day ``d`` begins in the city's time zone."""
    return datetime.combine(d, time(0), tz).astimezone(UTC)


def period_bounds_utc(p: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the period as UTC instants (local midnights)."""
    return local_midnight(p.start, tz), local_midnight(p.end + timedelta(days=1), tz)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


DEFAULT_GRACE_DAYS = {"daily": 1, "weekly": 3, "monthly": 10, "quarterly": 30, "annual": 60}


def due_after(p: Period, grace_days: int, tz: ZoneInfo) -> datetime:
    """When a period's observation is overdue: the day after it ends, plus the grace days."""
    return local_midnight(p.end + timedelta(days=1 + grace_days), tz)
