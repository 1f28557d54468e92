"""A year of a city's 311 history in New York's open-data layout, and its figures computed here,
independently of the indicators service: plain Python over the same rows the test imports (local
New York times parsed with zoneinfo, medians and 90th percentiles with ``statistics``)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from nyc_export import nyc_row

from indicators import derived311

NY = ZoneInfo("America/New_York")
FORMAT = "%Y-%m-%dT%H:%M:%S.000"
# agency -> its complaint types (service codes as the city writes them)
CATALOG = {"NYPD": ["Noise - Residential", "Illegal Parking"], "DSNY": ["Dirty Conditions"]}


def ny_today() -> date:
    return datetime.now(UTC).astimezone(NY).date()


def month_start(k: int) -> date:
    """The first day of the month k months before the current one (New York time)."""
    today = ny_today()
    idx = today.year * 12 + today.month - 1 - k
    return date(idx // 12, idx % 12 + 1, 1)


def history_rows(months: Iterable[int], per_month: int, seed: int = 20) -> list[dict[str, str]]:
    """Requests in the given months back (never today or later): most closed, some late, some
    still open; every row with its due date, so the service level is the file's own."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    yesterday = ny_today() - timedelta(days=1)
    key = 5_000_000
    for k in months:
        first = month_start(k)
        for _ in range(per_month):
            key += 1
            day = first + timedelta(days=rng.randrange(28))
            if day > yesterday:
                day = yesterday
            # hours 6-22: never in a daylight-saving gap or fold
            created = datetime(day.year, day.month, day.day, rng.randrange(6, 23), rng.randrange(60), rng.randrange(60))
            due = created + timedelta(days=rng.choice([1, 3, 5]))
            agency = rng.choice(sorted(CATALOG))
            complaint = rng.choice(CATALOG[agency])
            closed: datetime | None = None
            if rng.random() < 0.75:
                on = created.date() + timedelta(days=rng.choice([0, 0, 1, 2, 4, 9, 40]))
                closed = datetime(on.year, on.month, on.day, rng.randrange(6, 23), rng.randrange(60))
                if closed <= created:
                    closed = created + timedelta(minutes=rng.randrange(5, 300))
                if closed.date() > yesterday:
                    closed = None
            rows.append(nyc_row(
                key, created=created.strftime(FORMAT), closed=closed.strftime(FORMAT) if closed else "",
                agency=agency, complaint=complaint, status="Closed" if closed else rng.choice(["Open", "In Progress"]),
                resolution="The Department took action to fix the condition." if closed else "",
                due_date=due.strftime(FORMAT)))
    return rows


@dataclass(frozen=True)
class Req:
    agency: str
    complaint: str
    created: datetime  # UTC
    closed: datetime | None
    due: datetime


def _utc(text: str) -> datetime:
    return datetime.strptime(text, FORMAT).replace(tzinfo=NY).astimezone(UTC)


def requests_of(rows: Iterable[dict[str, str]]) -> list[Req]:
    return [Req(r["agency"], r["complaint_type"], _utc(r["created_date"]),
                _utc(r["closed_date"]) if r["closed_date"] else None, _utc(r["due_date"])) for r in rows]


def figures(reqs: list[Req], start: date, end: date) -> dict[str, float]:
    """The figures of the ended period [start, end] (New York days) over these requests."""
    s = datetime(start.year, start.month, start.day, tzinfo=NY).astimezone(UTC)
    after = end + timedelta(days=1)
    e = datetime(after.year, after.month, after.day, tzinfo=NY).astimezone(UTC)
    closed = [r for r in reqs if r.closed is not None and s <= r.closed < e]
    open_at_end = [r for r in reqs if r.created < e and (r.closed is None or r.closed >= e)]
    overdue = [r for r in open_at_end if r.due < e]
    on_time = [r for r in closed if r.closed <= r.due]  # type: ignore[operator]
    days = sorted((r.closed - r.created).total_seconds() / 86400 for r in closed)  # type: ignore[operator]
    out = {"opened": float(sum(1 for r in reqs if s <= r.created < e)), "closed": float(len(closed)),
           "backlog": float(len(open_at_end))}
    if closed or overdue:
        out["closed_within_sla"] = 100.0 * len(on_time) / (len(closed) + len(overdue))
    if days:
        out["median_days_to_close"] = statistics.median(days)
        out["p90_days_to_close"] = days[0] if len(days) == 1 else statistics.quantiles(days, n=10, method="inclusive")[8]
        out["first_contact_share"] = 0.0  # an export says nothing of first contact
    return out


def days_between(first: date, last: date) -> list[tuple[date, date]]:
    return [(first + timedelta(days=i),) * 2 for i in range((last - first).days + 1)]


def months_between(first: date, last: date) -> list[tuple[date, date]]:
    out = []
    m = date(first.year, first.month, 1)
    while m <= last:
        nxt = date(m.year + m.month // 12, m.month % 12 + 1, 1)
        out.append((m, nxt - timedelta(days=1)))
        m = nxt
    return out


def expected_figures(rows, frequency: str) -> dict[tuple[str, object], float]:
    """Every ended period's figures, per department and per (department, service), from the rows."""
    reqs = requests_of(rows)
    first = min(r.created for r in reqs).astimezone(NY).date()
    yesterday = ny_today() - timedelta(days=1)
    periods = days_between(first, yesterday) if frequency == "daily" else months_between(first, yesterday)
    periods = [(s, e) for s, e in periods if e <= yesterday]  # the running period's cutoff is "now": left out
    out: dict[tuple[str, object], float] = {}
    for dept, services in CATALOG.items():
        scopes = [(None, [r for r in reqs if r.agency == dept])]
        scopes += [(s, [r for r in reqs if r.agency == dept and r.complaint == s]) for s in services]
        for service, mine in scopes:
            metrics = derived311.SERVICE_METRICS if service else tuple(derived311.METRICS)
            for start, end in periods:
                for metric, value in figures(mine, start, end).items():
                    if metric in metrics:
                        out[(derived311.indicator_code(dept, service, metric), start)] = value
    return out


def ended_only(observed, expected):
    """The observed values of the periods the expectation covers (every period up to yesterday)."""
    last = max(start for _, start in expected)
    return {k: v for k, v in observed.items() if k[1] <= last}


def same(observed, expected) -> list:
    """Where the service's figures and ours differ (floats within a billionth)."""
    keys = set(observed) | set(expected)
    return sorted((k, observed.get(k), expected.get(k)) for k in keys
                  if k not in observed or k not in expected or not math.isclose(observed[k], expected[k], rel_tol=1e-9))


async def city_catalog(database_url: str) -> None:
    """The city's agencies and complaint types in intake311 (what a catalog import would bring)."""
    from citystat_common.db import create_engine, session_factory
    from citystat_common.uow import UnitOfWork
    from intake311.models import PLUMBING, Department, Service

    engine = create_engine(database_url)
    try:
        async with UnitOfWork(session_factory(engine), PLUMBING) as uow:
            uow.session.add_all([Department(code=code, name=code) for code in CATALOG])
            await uow.session.flush()
            for dept, services in CATALOG.items():
                for code in services:
                    uow.session.add(Service(service_code=code, service_name=code, department_code=dept, sla_amount=5,
                                            sla_unit="calendar_days", calendar_code="CITY", attributes=[]))
            await uow.commit()
    finally:
        await engine.dispose()
