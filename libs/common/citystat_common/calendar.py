"""The city's business calendar: working hours, working days and holidays in the city's zone.

Shared by intake311 (a request's expected time from its service level) and escalation
(policy delays in business hours), so "3 business days" means the same in both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date) -> date:
    # A holiday on Saturday is observed on Friday, on Sunday on Monday (US practice).
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@functools.lru_cache(maxsize=64)  # asked for on every expected-time computation; a year's list never changes
def us_federal_holidays(year: int) -> frozenset[date]:
    fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    floating = [
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents' Day
        _last_weekday(year, 5, 0),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Indigenous Peoples' / Columbus Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
    ]
    return frozenset({_observed(d) for d in fixed} | set(floating))


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str = "America/New_York"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday=0
    opens: time = time(8, 0)
    closes: time = time(17, 0)
    holidays: frozenset[date] = field(default_factory=frozenset)
    federal_holidays: bool = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_holiday(self, d: date) -> bool:
        return d in self.holidays or (self.federal_holidays and d in us_federal_holidays(d.year))

    def is_business_day(self, d: date) -> bool:
        return d.weekday() in self.workdays and not self.is_holiday(d)

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("naive datetime given to the business calendar")
        return moment.astimezone(self.tz)

    def _open_at(self, d: date) -> datetime:
        return datetime.combine(d, self.opens, self.tz)

    def _close_at(self, d: date) -> datetime:
        return datetime.combine(d, self.closes, self.tz)

    def next_open(self, moment: datetime) -> datetime:
        """The moment itself if within business hours, else the next opening."""
        local = self._local(moment)
        d = local.date()
        for _ in range(3660):
            if self.is_business_day(d):
                if local < self._open_at(d):
                    return self._open_at(d)
                if local < self._close_at(d):
                    return local
            d += timedelta(days=1)
            local = self._open_at(d)
        raise ValueError("no business day within ten years")

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        if hours < 0:
            raise ValueError("hours must be >= 0")
        remaining = timedelta(hours=hours)
        current = self.next_open(start)
        while True:
            close = self._close_at(current.date())
            available = close - current
            if remaining <= available:
                return (current + remaining).astimezone(UTC)
            remaining -= available
            current = self.next_open(close + timedelta(microseconds=1))

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """N business days later at the same time of day (rolled into business hours first)."""
        if days < 0:
            raise ValueError("days must be >= 0")
        current = self.next_open(start)
        d = current.date()
        for _ in range(days):
            d += timedelta(days=1)
            while not self.is_business_day(d):
                d += timedelta(days=1)
        return datetime.combine(d, current.timetz().replace(tzinfo=None), self.tz).astimezone(UTC)

    def business_hours_between(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        total = timedelta()
        current = self.next_open(start)
        end_local = self._local(end)
        while current < end_local:
            close = self._close_at(current.date())
            total += min(close, end_local) - current
            current = self.next_open(close + timedelta(microseconds=1))
        return total.total_seconds() / 3600


def add_duration(calendar: BusinessCalendar, start: datetime, amount: float, unit: str) -> datetime:
    """``unit``: business_hours, business_days, calendar_hours, calendar_days."""
    if unit == "business_hours":
        return calendar.add_business_hours(start, amount)
    if unit == "business_days":
        return calendar.add_business_days(start, int(amount))
    if unit == "calendar_hours":
        return (start + timedelta(hours=amount)).astimezone(UTC)
    if unit == "calendar_days":
        return (start + timedelta(days=amount)).astimezone(UTC)
    raise ValueError(f"unknown duration unit {unit!r}")
