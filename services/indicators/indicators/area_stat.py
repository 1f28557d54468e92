"""Stat by area (issue 21): the derived 311 figures per area of the boundary layers a city marks
(``INDICATORS_STAT_AREA_LAYERS``), and per area x department ("my district", its departments side
by side).

``311.requests`` events carry each request's area per layer (``areas``, on ``request.created``);
they are kept in ``request_areas`` for every layer, marked or not (null codes, outside every area,
are not kept). The figures follow ``derived311``'s definitions exactly (``compute_scope`` with
``area=``), over the requests tagged with that area, for the metrics ``AREA_METRICS``; they are
ordinary indicators (``derived_from = "311-area"``), evaluated like any other, with targets:

- ``311-area.<layer>.<area slug>.<metric>``: the area as a whole, filed under the department
  ``INDICATORS_STAT_AREA_DEPARTMENT`` (the city's 311);
- ``311-area.<layer>.<area slug>.<dept slug>.<metric>``: one department's requests in the area.

Slugs are ``citystat_common.codes.code_slug`` (an area code that already is a segment is kept).
A batch of events recomputes, for each request whose figures moved, its areas' scopes from the
earliest moment that changed (as ``derived311`` does for departments); the worker's refresh
recomputes the current period of every area scope that has indicators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from citystat_common.codes import code_slug
from citystat_common.db import dialect_insert, utcnow
from citystat_common.errors import Invalid
from citystat_common.events import RequestFeedback, ServiceRequestData
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from indicators import derived311, observation_store, schemas
from indicators.deps import IndicatorsDeps
from indicators.models import Indicator, RequestArea, Target
from indicators.observations import ObsIn, record_observations
from indicators.periods import local_date, period_bounds_utc, period_of, periods_between
from indicators.registry import create_indicator
from indicators.rules import tz_of

log = get_logger(__name__)
AREA_SOURCE = "311-area"
AREA_PREFIX = "311-area"
AREA_METRICS = ("opened", "closed_within_sla", "median_days_to_close", "backlog")
CODE_MAX = 120  # Indicator.code


@dataclass(frozen=True)
class AreaScope:
    layer: str
    code: str
    dept: str | None = None  # None: every department's requests in the area

    def indicator_code(self, metric: str) -> str:
        return ".".join([AREA_PREFIX, self.layer, code_slug(self.code),
                         *([code_slug(self.dept)] if self.dept else []), metric])


def _order(scope: AreaScope) -> tuple[str, str, str]:
    return (scope.layer, scope.code, scope.dept or "")


def area_prefix(layer: str, code: str) -> str:
    """What every indicator code of one area begins with (its own and its departments')."""
    return f"{AREA_PREFIX}.{layer}.{code_slug(code)}."


def parse_area(value: str) -> tuple[str, str]:
    """``LAYER:CODE`` (as intake311's ``area=`` filter): the layer and the area code."""
    layer, sep, code = value.partition(":")
    if not sep or not layer or not code:
        raise Invalid(f"area must be LAYER:CODE (e.g. ward:12), got {value[:60]!r}", field="area")
    return layer, code


async def store_areas(uow: UnitOfWork, events: Iterable[ServiceRequestData | RequestFeedback]) -> set[str]:
    """The areas the events carry, one row per (request, layer) with a code; returns the requests
    whose areas are new or changed. Redelivery writes nothing; an event without ``areas`` (later
    changes) leaves what the created event said."""
    rows: dict[tuple[str, str], str] = {}
    for e in events:
        if isinstance(e, ServiceRequestData) and e.areas:
            for layer, code in e.areas.items():
                if code is not None:
                    rows[(e.service_request_id, layer)] = code
    if not rows:
        return set()
    ids = sorted({r for r, _ in rows})
    for i in range(0, len(ids), 1000):
        res = await uow.session.execute(
            sa.select(RequestArea.service_request_id, RequestArea.layer, RequestArea.area_code)
            .where(RequestArea.service_request_id.in_(ids[i : i + 1000])))
        for rid, layer, code in res:
            if rows.get((rid, layer)) == code:
                del rows[(rid, layer)]
    if not rows:
        return set()
    table = RequestArea.__table__
    stmt = dialect_insert(table, uow.dialect)  # type: ignore[arg-type]
    stmt = stmt.on_conflict_do_update(index_elements=["service_request_id", "layer"],
                                      set_={"area_code": stmt.excluded.area_code})
    await uow.session.execute(stmt, [{"service_request_id": r, "layer": layer, "area_code": code}
                                     for (r, layer), code in sorted(rows.items())])
    return {r for r, _ in rows}


async def apply_areas(
    uow: UnitOfWork, deps: IndicatorsDeps, *, events: Sequence[ServiceRequestData | RequestFeedback],
    requests: dict[str, tuple[datetime, set[str]]], facts: Mapping[str, derived311.Fact], now: datetime,
) -> int:
    """Called by ``derived311.apply_events`` with the requests whose figures moved (each with the
    earliest moment that changed and its departments before and after) and the batch's facts:
    keep the areas, recompute the marked layers' area scopes they touch. A request whose areas
    arrive after its figures were counted (its created event late, behind its closure, and stale
    by then) is counted in its areas from its beginning. Returns the values written."""
    requests = dict(requests)
    for rid in await store_areas(uow, events):
        fact = facts.get(rid)
        if rid not in requests and fact is not None and fact.requested_at is not None:
            requests[rid] = (fact.requested_at, {fact.department_code})
    layers = deps.settings.stat_area_layers
    if not layers or not requests:
        return 0
    scopes: dict[AreaScope, datetime] = {}
    ids = sorted(requests)
    for i in range(0, len(ids), 1000):
        res = await uow.session.execute(
            sa.select(RequestArea.service_request_id, RequestArea.layer, RequestArea.area_code)
            .where(RequestArea.service_request_id.in_(ids[i : i + 1000]), RequestArea.layer.in_(layers)))
        for rid, layer, code in res:
            since, depts = requests[rid]
            for dept in [None, *(sorted(depts) if deps.settings.stat_area_departments else [])]:
                scope = AreaScope(layer, code, dept)
                old = scopes.get(scope)
                scopes[scope] = since if old is None or since < old else old
    return await recompute_areas(uow, deps, scopes=scopes, now=now) if scopes else 0


def _label(scope: AreaScope, metric: str, layer_names: dict[str, str] | None = None) -> str:
    where = f"{(layer_names or {}).get(scope.layer, scope.layer)} {scope.code}"
    return f"{derived311.METRICS[metric].name}: {where}" + (f", {scope.dept}" if scope.dept else "")


async def ensure_area_indicators(uow: UnitOfWork, deps: IndicatorsDeps, *, scope: AreaScope) -> dict[str, Indicator]:
    """The scope's indicators, created the first time (a code over 120 characters: none, logged)."""
    codes = {scope.indicator_code(m): m for m in AREA_METRICS}
    if any(len(c) > CODE_MAX for c in codes):
        log.warning("stat_by_area.code_too_long", layer=scope.layer, area=scope.code, department=scope.dept)
        return {}
    found = {codes[i.code]: i for i in (await uow.session.execute(
        sa.select(Indicator).where(Indicator.code.in_(list(codes))))).scalars()}
    settings = deps.settings
    for code, m in codes.items():
        if m in found:
            continue
        d = derived311.METRICS[m]
        ind = await create_indicator(
            uow, deps, actor="311-derivation", directory=None, derived_from=AREA_SOURCE,
            data=schemas.IndicatorCreate(
                code=code, name=_label(scope, m)[:200], department_code=scope.dept or settings.stat_area_department,
                unit=d.unit, kind=d.kind, direction=d.direction, frequency=settings.derived_frequency,  # type: ignore[arg-type]
                additive=d.additive, function_tag="customer_service", owner="311 derivation",
                data_source="311.requests", basis=d.basis, persistence=d.persistence,  # type: ignore[arg-type]
                description=f"Derived automatically from 311 requests in {scope.layer} {scope.code}"
                            + (f" owned by {scope.dept}" if scope.dept else "") + f" ({m}); see Stat by area.",
            ),
        )
        if d.target:  # the city's standing target, as for the department's own figure
            p = period_of(ind.frequency, date(2000, 1, 1), settings.fiscal_year_start_month)
            uow.session.add(Target(indicator_id=ind.id, period_start=p.start, applies="onward", period_label=p.label,
                                   fiscal_year=2000, value=float(getattr(settings, d.target)), set_by="311-derivation"))
        found[m] = ind
    await uow.session.flush()
    return found


async def recompute_areas(uow: UnitOfWork, deps: IndicatorsDeps, *, scopes: dict[AreaScope, datetime],
                          now: datetime) -> int:
    """Each scope's figures for every period from its moment to now, in one ``record_observations``."""
    tz = tz_of(deps.settings)
    fy0 = deps.settings.fiscal_year_start_month
    today = local_date(now, tz)
    work = []
    for scope, since in sorted(scopes.items(), key=lambda s: _order(s[0])):
        periods = periods_between(deps.settings.derived_frequency, local_date(min(since, now), tz), today, fy0,
                                  limit=100_000)[-deps.settings.derived_max_periods:]
        inds = await ensure_area_indicators(uow, deps, scope=scope)
        if inds:
            work.append((scope, periods, inds))
    if uow.dialect == "postgresql":  # as derived311.recompute: lock before the facts are read
        await observation_store.lock_indicators(uow, {i.id: i for *_, inds in work for i in inds.values()})
    items: list[ObsIn] = []
    for scope, periods, inds in work:
        for p in periods:
            start_at, end_at = period_bounds_utc(p, tz)
            values = await derived311.compute_scope(uow, scope.dept, None, start_at, end_at, now,
                                                    area=(scope.layer, scope.code))
            items.extend(ObsIn(ind, p, v) for m, ind in inds.items() if (v := values.get(m)) is not None)
    if items:
        await record_observations(uow, deps, items=items, actor="311-derivation", source="311", now=now)
    return len(items)


async def area_scopes(uow: UnitOfWork, deps: IndicatorsDeps) -> list[AreaScope]:
    """The scopes of the marked layers that have indicators (what the refresh recomputes)."""
    layers = deps.settings.stat_area_layers
    if not layers:
        return []
    areas = (await uow.session.execute(
        sa.select(RequestArea.layer, RequestArea.area_code).where(RequestArea.layer.in_(layers)).distinct())).all()
    by_prefix = {area_prefix(layer, code): (layer, code) for layer, code in areas}
    rows = (await uow.session.execute(
        sa.select(Indicator.code, Indicator.department_code)
        .where(Indicator.derived_from == AREA_SOURCE, Indicator.active.is_(True)))).all()
    scopes: set[AreaScope] = set()
    for code, dept in rows:
        head, _, metric = code.rpartition(".")
        for prefix in (head + ".", head.rpartition(".")[0] + "."):
            if prefix in by_prefix:
                layer, area = by_prefix[prefix]
                scope = AreaScope(layer, area, None if prefix == head + "." else dept)
                if scope.indicator_code(metric) == code:
                    scopes.add(scope)
                break
    return sorted(scopes, key=_order)


async def refresh_areas(uow: UnitOfWork, deps: IndicatorsDeps, *, now: datetime | None = None) -> int:
    """The worker's refresh (beside ``derived311.refresh_current``): requests running past their
    service level become misses with no event, and a new period starts."""
    now = now or utcnow()
    scopes = await area_scopes(uow, deps)
    if not scopes:
        return 0
    since = now - timedelta(seconds=max(2 * deps.settings.derived_refresh_seconds, 3600))
    return await recompute_areas(uow, deps, scopes=dict.fromkeys(scopes, since), now=now)
