"""311 becomes Stat automatically: indicators derived from the ``311.requests`` stream.

Events come in batches (``apply_events``; one event is a batch of one). Each request event updates one row of ``request_facts`` (the latest state of that request;
an event older than the stored ``updated_datetime`` is stale and ignored, so late,
out-of-order and redelivered events give exact figures). Then only the affected
(department, service, period) figures are recomputed from the facts, written as ordinary
observations of ordinary indicators, and evaluated like any other.

Indicators, per department ``311.<DEPT>.<metric>`` and per service
``311.<DEPT>.<SERVICE>.<metric>`` (service metrics: opened, closed_within_sla, backlog,
median_days_to_close, p90_days_to_close). For a period P = [start, end) in the city's time zone, with the
cutoff c = min(end, now):

- ``opened``: requests with requested_datetime in [start, c).
- ``closed``: requests with closed_datetime in [start, c).
- ``closed_within_sla`` (percentage): 100 x hits / (closed + overdue open), where, leaving
  out duplicates (``duplicate_of`` set),
  * each request closed in [start, c) is a hit if it has no expected_datetime or
    closed_datetime <= expected_datetime, else a miss;
  * each request still open at c (requested before c, not closed before c) whose
    expected_datetime is before c is a miss: a burst of requests running past their
    service level turns the share red before they are closed. Such a request counts as a
    miss in every period at whose cutoff it is still open and overdue, and once more in
    the period it is finally closed (late).
  No observation when the denominator is 0.
- ``median_days_to_close`` / ``p90_days_to_close``: calendar days from requested to closed,
  over requests (not duplicates) closed in [start, c); percentiles by linear interpolation
  between closest ranks (position (n - 1) x q in the sorted list; the "inclusive" method of
  ``statistics.quantiles``).
- ``backlog``: requests open at c (requested before c, closed_datetime null or >= c).
- ``first_contact_share`` (percentage): among requests (not duplicates) closed in [start, c),
  the share resolved at first contact.
- ``satisfaction`` (score 1-5): mean feedback score of feedback submitted in [start, c).

A transfer moves the request (its whole history) to the new department. A batch recomputes, for
each (department, service) it touched, the periods from the earliest timestamp that changed up to
now (bounded by ``derived_max_periods``): usually one period, once per batch whatever its size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from citystat_common.codes import code_slug
from citystat_common.db import dialect_insert, utcnow
from citystat_common.events import RequestFeedback, ServiceRequestData
from citystat_common.uow import UnitOfWork
from indicators import area_stat, observation_store, schemas
from indicators.deps import IndicatorsDeps
from indicators.models import Indicator, RequestArea, RequestFact, Target
from indicators.observations import ObsIn, record_observations
from indicators.periods import Period, local_date, period_bounds_utc, period_of, periods_between
from indicators.registry import create_indicator
from indicators.rules import tz_of

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str
    kind: str
    direction: str
    basis: str
    additive: bool
    target: str | None = None  # a Settings attribute holding the default target
    persistence: int | None = None


METRICS: dict[str, MetricDef] = {
    "opened": MetricDef("311 requests opened", "count", "input", "band", "history", True, persistence=2),
    "closed": MetricDef("311 requests closed", "count", "output", "up", "history", True, persistence=2),
    "closed_within_sla": MetricDef("311 share closed within the service level", "percentage", "quality", "up",
                                   "target", False, target="derived_sla_target"),
    "median_days_to_close": MetricDef("311 median days to close", "duration", "efficiency", "down", "history",
                                      False, persistence=2),
    "p90_days_to_close": MetricDef("311 90th percentile days to close", "duration", "quality", "down", "history",
                                   False, persistence=2),
    "backlog": MetricDef("311 open backlog at period end", "count", "output", "down", "history", False, persistence=2),
    "first_contact_share": MetricDef("311 share resolved at first contact", "percentage", "quality", "up",
                                     "history", False, persistence=2),
    "satisfaction": MetricDef("311 average satisfaction score", "score", "outcome", "up", "target", False,
                              target="derived_satisfaction_target"),
}
SERVICE_METRICS = ("opened", "closed_within_sla", "backlog", "median_days_to_close", "p90_days_to_close")


def indicator_code(dept: str, service_code: str | None, metric: str) -> str:
    """``311.<dept>.<service>.<metric>`` (or ``311.<dept>.<metric>``), each code as its safe slug
    (citystat_common.codes.code_slug: STREETS and POTHOLE are their own; "NYC H+H" becomes
    NYC_H_H-<hash>); the indicator keeps the department's code as it is, and its name the service's."""
    head = f"311.{code_slug(dept)}"
    return f"{head}.{code_slug(service_code)}.{metric}" if service_code else f"{head}.{metric}"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks: position (n - 1) x q."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def period_figures(*, opened: int, closed: int, real: int, hits: int, overdue: int, days: list[float], backlog: int,
                   first_contact: int, satisfaction: float | None) -> dict[str, float | None]:
    """A period's figures from its counts, the one rule for both paths (``compute_scope`` queries the
    counts, ``backfill_figures`` bisects them): ``real`` closed requests that are not duplicates,
    ``hits`` of them within their level, ``overdue`` open past their promise, ``days`` each real
    request's days to close, sorted."""
    denominator = real + overdue
    return {
        "opened": float(opened),
        "closed": float(closed),
        "closed_within_sla": 100.0 * hits / denominator if denominator else None,
        "median_days_to_close": percentile(days, 0.5),
        "p90_days_to_close": percentile(days, 0.9),
        "backlog": float(backlog),
        "first_contact_share": 100.0 * first_contact / real if real else None,
        "satisfaction": float(satisfaction) if satisfaction is not None else None,
    }


# --- facts ------------------------------------------------------------------------------

Scope = tuple[str, str | None]  # (department, service code or None for the department as a whole)


@dataclass(slots=True)
class Fact:
    """One row of ``request_facts`` as the batch sees it (fields: the table's columns)."""

    service_request_id: str
    department_code: str
    service_code: str
    service_name: str
    channel: str
    status: str
    requested_at: datetime | None
    expected_at: datetime | None
    closed_at: datetime | None
    first_contact_resolution: bool
    duplicate_of: str | None
    updated_at: datetime
    feedback_score: int | None
    feedback_at: datetime | None

    def metric_key(self) -> tuple[Any, ...]:
        """What the figures depend on: an event that leaves it as it was changes no figure."""
        return (self.department_code, self.service_code, self.requested_at, self.expected_at, self.closed_at,
                self.first_contact_resolution, self.duplicate_of, self.feedback_score, self.feedback_at)


FACT_FIELDS = tuple(f.name for f in fields(Fact))
_FACTS = cast(sa.Table, RequestFact.__table__)


async def _load_facts(uow: UnitOfWork, ids: Sequence[str]) -> dict[str, Fact]:
    out: dict[str, Fact] = {}
    for i in range(0, len(ids), 1000):
        res = await uow.session.execute(
            sa.select(*[_FACTS.c[n] for n in FACT_FIELDS]).where(_FACTS.c.service_request_id.in_(ids[i : i + 1000])))
        for row in res:
            out[row[0]] = Fact(*row)  # the columns selected in Fact's field order
    return out


async def _store_facts(uow: UnitOfWork, facts: list[Fact]) -> None:
    """The batch's changed facts in one statement (INSERT ... ON CONFLICT DO UPDATE, executemany)."""
    stmt = dialect_insert(_FACTS, uow.dialect)
    stmt = stmt.on_conflict_do_update(
        index_elements=["service_request_id"], set_={n: stmt.excluded[n] for n in FACT_FIELDS[1:]})
    # a dict per row by hand: dataclasses.asdict deep-copies every value (a fifth of a batch's CPU)
    await uow.session.execute(stmt, [{n: getattr(f, n) for n in FACT_FIELDS} for f in facts])


class _Touched:
    """The scopes a batch changed, each with the earliest moment whose figures moved."""

    def __init__(self) -> None:
        self.since: dict[Scope, datetime] = {}
        self.names: dict[str, str] = {}
        # request -> (earliest moment, departments before and after): its areas' figures (area_stat)
        self.requests: dict[str, tuple[datetime, set[str]]] = {}

    def add(self, scopes: set[Scope], since: datetime, request: str | None = None) -> None:
        for scope in scopes:
            old = self.since.get(scope)
            self.since[scope] = since if old is None or since < old else old
        if request is not None:
            first, depts = self.requests.get(request, (since, set()))
            self.requests[request] = (min(first, since), depts | {d for d, _ in scopes})


def _apply_request(facts: dict[str, Fact], data: ServiceRequestData, touched: _Touched, now: datetime) -> bool:
    """The event applied to the request's fact in memory; False for a stale or no-op event."""
    fact = facts.get(data.service_request_id)
    before = fact.metric_key() if fact is not None else None
    old_scope: set[Scope] = set()
    old_times: list[datetime | None] = []
    if fact is not None:
        if data.updated_datetime < fact.updated_at:
            return False  # stale: a later state is already recorded
        if fact.requested_at is not None:
            old_scope = {(fact.department_code, None), (fact.department_code, fact.service_code)}
        old_times = [fact.requested_at, fact.closed_at, fact.expected_at, fact.feedback_at]
    fact = facts[data.service_request_id] = Fact(
        service_request_id=data.service_request_id, department_code=data.department_code,
        service_code=data.service_code, service_name=data.service_name, channel=data.channel, status=data.status,
        requested_at=data.requested_datetime, expected_at=data.expected_datetime,
        closed_at=data.closed_datetime if data.status == "closed" else None,
        first_contact_resolution=data.first_contact_resolution, duplicate_of=data.duplicate_of,
        updated_at=data.updated_datetime,
        feedback_score=fact.feedback_score if fact is not None else None,
        feedback_at=fact.feedback_at if fact is not None else None,
    )
    after = fact.metric_key()
    if after == before:
        return False
    touched.names[data.service_code] = data.service_name
    scopes = old_scope | {(fact.department_code, None), (fact.department_code, fact.service_code)}
    if before is None or before[:2] != after[:2]:
        changed = [t for t in (*old_times, fact.requested_at) if t is not None]
    else:
        pairs = [(t, u) for t, u in zip(before[2:], after[2:], strict=True) if t != u]
        changed = [t for t, _ in pairs if isinstance(t, datetime)] + [u for _, u in pairs if isinstance(u, datetime)]
        if not changed:  # first-contact or duplicate flag: the periods of the request's own life
            changed = [t for t in (fact.requested_at, fact.closed_at) if t is not None]
    touched.add(scopes, min(changed) if changed else now, request=data.service_request_id)
    return True


def _apply_feedback(facts: dict[str, Fact], data: RequestFeedback, touched: _Touched) -> bool:
    fact = facts.get(data.service_request_id)
    if fact is None:  # feedback before the request: keep it; the request's events fill in the rest
        fact = facts[data.service_request_id] = Fact(
            service_request_id=data.service_request_id, department_code=data.department_code,
            service_code=data.service_code, service_name=data.service_code, channel="unknown", status="unknown",
            requested_at=None, expected_at=None, closed_at=None, first_contact_resolution=False, duplicate_of=None,
            updated_at=EPOCH, feedback_score=None, feedback_at=None,
        )
    elif fact.feedback_at is not None and data.submitted_at < fact.feedback_at:
        return False  # an older feedback than the one recorded
    if fact.feedback_score == data.score and fact.feedback_at == data.submitted_at:
        return False
    old = fact.feedback_at
    fact.feedback_score = data.score
    fact.feedback_at = data.submitted_at
    touched.add({(fact.department_code, None), (fact.department_code, fact.service_code)},
                min(t for t in (old, data.submitted_at) if t is not None))
    return True


async def apply_events(
    uow: UnitOfWork, deps: IndicatorsDeps, *, events: Sequence[ServiceRequestData | RequestFeedback], 
    now: datetime | None = None,
) -> int:
    """A batch of request and feedback events, in delivery order, applied as one unit: the facts
    read in one query and written in one statement, each touched (scope, period) recomputed once,
    and one ``record_observations`` for all of them. Returns the events that changed a fact; the
    figures are those the events would give one at a time."""
    now = now or utcnow()
    facts = await _load_facts(uow, sorted({e.service_request_id for e in events}))
    touched = _Touched()
    changed: set[str] = set()
    for event in events:
        if isinstance(event, RequestFeedback):
            applied = _apply_feedback(facts, event, touched)
        else:
            applied = _apply_request(facts, event, touched, now)
        if applied:
            changed.add(event.service_request_id)
    if changed:
        await _store_facts(uow, [facts[i] for i in sorted(changed)])
    if touched.since:
        await recompute(uow, deps, scopes=touched.since, now=now, names=touched.names)
    await area_stat.apply_areas(uow, deps, events=events, requests=touched.requests, facts=facts, now=now)
    return len(changed)


async def apply_request_event(
    uow: UnitOfWork, deps: IndicatorsDeps, *, data: ServiceRequestData, now: datetime | None = None
) -> bool:
    """One event (a batch of one); False for a stale or no-op event."""
    return await apply_events(uow, deps, events=[data], now=now) > 0


async def apply_feedback(uow: UnitOfWork, deps: IndicatorsDeps, *, data: RequestFeedback, now: datetime | None = None) -> bool:
    return await apply_events(uow, deps, events=[data], now=now) > 0


# --- computation ------------------------------------------------------------------------


async def compute_scope(
    uow: UnitOfWork, dept: str | None, service: str | None, start_at: datetime, end_at: datetime, now: datetime,
    *, area: tuple[str, str] | None = None,
) -> dict[str, float | None]:
    """``dept`` None: every department; ``area`` (layer, code): only the requests in that area."""
    c = min(end_at, now)
    f = RequestFact
    scope: list[Any] = [] if dept is None else [f.department_code == dept]
    if service is not None:
        scope.append(f.service_code == service)
    if area is not None:
        scope.append(f.service_request_id.in_(sa.select(RequestArea.service_request_id).where(
            RequestArea.layer == area[0], RequestArea.area_code == area[1])))
    where = [*scope, f.requested_at.is_not(None)]
    # Counted in the database: a burst's open requests are counted, not read (cost per batch follows
    # the requests closed in the period, not all those opened in it).
    opened = (await uow.session.execute(
        sa.select(sa.func.count()).where(*where, f.requested_at >= start_at, f.requested_at < c))).scalar_one()
    closed_rows = (
        await uow.session.execute(
            sa.select(f.requested_at, f.closed_at, f.expected_at, f.first_contact_resolution, f.duplicate_of)
            .where(*where, f.closed_at >= start_at, f.closed_at < c)
        )
    ).all()
    real = [r for r in closed_rows if r.duplicate_of is None]
    hits = sum(1 for r in real if r.expected_at is None or r.closed_at <= r.expected_at)
    open_at_c = sa.and_(*where, f.requested_at < c, sa.or_(f.closed_at.is_(None), f.closed_at >= c))
    backlog, overdue = (
        await uow.session.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case(
                    (sa.and_(f.expected_at.is_not(None), f.expected_at < c, f.duplicate_of.is_(None)), 1), else_=0)), 0),
            ).where(open_at_c)
        )
    ).one()
    fb_where = [*scope, f.feedback_at >= start_at, f.feedback_at < c]
    satisfaction = None if area is not None else (  # not a figure of an area (area_stat.AREA_METRICS)
        await uow.session.execute(sa.select(sa.func.avg(f.feedback_score)).where(*fb_where))).scalar()
    days = sorted((r.closed_at - r.requested_at).total_seconds() / 86400 for r in real)
    return period_figures(opened=opened, closed=len(closed_rows), real=len(real), hits=hits, overdue=int(overdue),
                          days=days, backlog=backlog, first_contact=sum(1 for r in real if r.first_contact_resolution),
                          satisfaction=satisfaction)


async def ensure_indicators(
    uow: UnitOfWork, deps: IndicatorsDeps, *, dept: str, service: str | None, service_name: str | None = None
) -> dict[str, Indicator]:
    metrics = SERVICE_METRICS if service else tuple(METRICS)
    codes = {indicator_code(dept, service, m): m for m in metrics}
    found = {
        codes[i.code]: i
        for i in (await uow.session.execute(sa.select(Indicator).where(Indicator.code.in_(list(codes))))).scalars()
    }
    fy0 = deps.settings.fiscal_year_start_month
    for code, m in codes.items():
        if m in found:
            continue
        d = METRICS[m]
        shown = service_name if not service_name or service_name == service else f"{service_name} ({service})"
        label = f"{d.name}" + (f": {shown or service}" if service else "")
        ind = await create_indicator(
            uow, deps, actor="311-derivation", directory=None, derived_from="311",
            data=schemas.IndicatorCreate(
                code=code, name=label[:200], department_code=dept, unit=d.unit, kind=d.kind,  # type: ignore[arg-type]
                direction=d.direction, frequency=deps.settings.derived_frequency, additive=d.additive,  # type: ignore[arg-type]
                function_tag="customer_service", owner="311 derivation", data_source="311.requests",
                basis=d.basis, persistence=d.persistence,  # type: ignore[arg-type]
                description=f"Derived automatically from 311 requests ({m}); see the indicators service docs.",
            ),
        )
        if d.target:
            # the city's standing target for a derived indicator: explicitly onward, from before any 311 data
            p = period_of(ind.frequency, date(2000, 1, 1), fy0)
            uow.session.add(Target(indicator_id=ind.id, period_start=p.start, applies="onward", period_label=p.label,
                                   fiscal_year=2000, value=float(getattr(deps.settings, d.target)), set_by="311-derivation"))
        found[m] = ind
    await uow.session.flush()
    return found


async def recompute(
    uow: UnitOfWork, deps: IndicatorsDeps, *, scopes: dict[Scope, datetime], now: datetime,
    names: dict[str, str] | None = None,
) -> int:
    """Recompute each scope's figures for every period from its moment to now, written with one
    ``record_observations`` (one evaluation per indicator touched); returns the values written."""
    tz = tz_of(deps.settings)
    fy0 = deps.settings.fiscal_year_start_month
    today = local_date(now, tz)
    items: list[ObsIn] = []
    work: list[tuple[str, str | None, list[Period], dict[str, Indicator]]] = []
    for (dept, service), since in sorted(scopes.items(), key=lambda s: (s[0][0], s[0][1] or "")):
        periods: list[Period] = periods_between(deps.settings.derived_frequency, local_date(min(since, now), tz), today, fy0,
                                                limit=100_000)[-deps.settings.derived_max_periods:]
        inds = await ensure_indicators(uow, deps, dept=dept, service=service, service_name=(names or {}).get(service or ""))
        work.append((dept, service, periods, inds))
    if uow.dialect == "postgresql":
        # Lock before the facts are read, not only before the rows are (record_observations): the
        # consumer and the scheduler's refresh both write these indicators, and a figure computed
        # from facts read before the other's commit would land after it, stale, on a row no longer
        # red (the hysteresis of the running period lost: a 74% turned yellow).
        await observation_store.lock_indicators(uow, {i.id: i for *_, inds in work for i in inds.values()})
    for dept, service, periods, inds in work:
        for p in periods:
            start_at, end_at = period_bounds_utc(p, tz)
            values = await compute_scope(uow, dept, service, start_at, end_at, now)
            items.extend(ObsIn(ind, p, v) for m, ind in inds.items() if (v := values.get(m)) is not None)
    if items:
        await record_observations(uow, deps, items=items, actor="311-derivation", source="311", now=now)
    return len(items)


async def refresh_current(uow: UnitOfWork, deps: IndicatorsDeps, *, now: datetime | None = None) -> int:
    """The worker's periodic refresh: overdue requests turn into misses as time passes with no
    event, and a new period starts; recompute the current (and just-ended) period of every
    derived scope. Cost follows the number of 311 scopes."""
    now = now or utcnow()
    codes = (await uow.session.execute(
        sa.select(Indicator.code).where(Indicator.derived_from == "311", Indicator.active.is_(True))
    )).scalars().all()
    scopes: set[Scope] = set()
    services: dict[str, list[str]] = {}
    departments: dict[str, list[str]] = {}  # a code's slug -> the departments' own codes with that slug
    if codes:
        for dept in (await uow.session.execute(sa.select(RequestFact.department_code).distinct())).scalars():
            departments.setdefault(code_slug(dept), []).append(dept)
    for code in codes:
        parts = code.split(".")
        # a code that is its own slug names its department even when no fact of it is left
        for dept in (departments.get(parts[1]) or [parts[1]]) if len(parts) in (3, 4) else []:
            if len(parts) == 3:
                scopes.add((dept, None))
                continue
            if dept not in services:
                services[dept] = list((await uow.session.execute(
                    sa.select(RequestFact.service_code).where(RequestFact.department_code == dept).distinct()
                )).scalars().all())
            scopes.update((dept, s) for s in services[dept] if code_slug(s) == parts[2])
    if not scopes:
        return 0
    since = now - timedelta(seconds=max(2 * deps.settings.derived_refresh_seconds, 3600))
    return await recompute(uow, deps, scopes=dict.fromkeys(scopes, since), now=now)
