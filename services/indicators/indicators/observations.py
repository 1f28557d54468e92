"""The one write path every value takes (API, bulk, 311 derivation, formulas): ``record_observations``.

It merges the new values with the indicator's own stored rows, re-evaluates that indicator's
series from the earliest changed period forward, writes the changed rows (``observation_store``),
records revisions, recomputes the formulas that use the indicator, and publishes a status change if
the indicator's effective status moved. Nothing else is evaluated: cost follows the indicators
touched, not the number of indicators.

Revisions are history worth keeping: every replaced value of an indicator people enter (API, bulk,
formulas of them). A derived indicator's current period is a running figure that moves with each
311 event until the period ends, so its changes there are not revisions; once a period has ended
its figure stands, and a later change to it (a late or reopened request) keeps a revision.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.uow import UnitOfWork
from indicators import formulas, metrics, observation_store
from indicators.config import Settings
from indicators.deps import IndicatorsDeps
from indicators.evaluation import EvalConfig, PrevState, evaluate_run, reference_for
from indicators.models import Indicator
from indicators.observation_store import ObsRow
from indicators.periods import Period, local_date, same_period_last_year
from indicators.rules import CHUNK_INDICATORS, PERIOD_DAYS, eval_config, period_at, tz_of
from indicators.status import active_overrides, refresh_state
from indicators.targets import EMPTY, Book, load_books


@dataclass(slots=True)
class ObsIn:
    indicator: Indicator
    period: Period
    value: float
    note: str | None = None


@dataclass
class RecordResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    indicators: int = 0
    revisions: int = 0
    changed_periods: dict[str, set[date]] = field(default_factory=dict)  # indicator id -> starts of changed periods


@dataclass
class _Plan:
    """One indicator's merged series within a ``record_observations`` call."""

    ind: Indicator
    rows: dict[date, ObsRow]
    first_changed: date
    dirty: set[date]  # periods whose value or note changed (always written)
    fresh: set[date]  # of those, the ones not stored yet
    was_red: set[date]  # periods already red whose value is being revised
    latest: ObsRow | None = None


@dataclass(frozen=True)
class _Write:
    """Who writes, from where, when; and the last day whose period counts as ended."""

    actor: str
    source: str
    now: datetime
    today: date


async def record_observations(
    uow: UnitOfWork,
    deps: IndicatorsDeps,
    *,
    items: Sequence[ObsIn],
    actor: str,
    source: str,
    reevaluate: dict[str, date] | None = None,
    now: datetime | None = None,
    _depth: int = 0,
) -> RecordResult:
    """Store values idempotently on (indicator, period) and evaluate only the indicators touched.

    ``reevaluate``: indicator id -> first period start to re-evaluate even without a new value
    (after a target or a rule changes)."""
    now = now or utcnow()
    write = _Write(actor, source, now, local_date(now, tz_of(deps.settings)))
    result = RecordResult()
    by_ind: dict[str, dict[date, ObsIn]] = {}
    inds: dict[str, Indicator] = {}
    last: Indicator | None = None
    group: dict[date, ObsIn] = {}
    for it in items:
        if it.indicator is not last:  # bulk rows come indicator by indicator
            last = it.indicator
            iid = last.id
            if (g := by_ind.get(iid)) is None:
                g = by_ind[iid] = {}
            group = g
            inds[iid] = last
        group[it.period.start] = it  # the last value for a period wins
    forced = dict(reevaluate or {})
    if forced:
        missing = [i for i in forced if i not in inds]
        if missing:
            for ind in (await uow.session.execute(sa.select(Indicator).where(Indicator.id.in_(missing)))).scalars():
                inds[ind.id] = ind
    ids = list(inds)
    result.indicators = len(ids)
    pg = uow.dialect == "postgresql"
    if pg and ids:
        await observation_store.lock_indicators(uow, inds)
    overrides = await active_overrides(uow, ids, now)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = ids[i : i + CHUNK_INDICATORS]
        # Earliest period each indicator needs: the first changed one, minus a year and the history window.
        lows: dict[str, date] = {}
        for iid in chunk:
            ind = inds[iid]
            first = min([*by_ind.get(iid, {}).keys(), *([forced[iid]] if iid in forced else [])])
            window = (ind.history_window or deps.settings.history_window) + 1
            lows[iid] = _safe_minus(first, 366 + window * PERIOD_DAYS[ind.frequency])
        existing = await observation_store.stored_rows(uow, chunk, min(lows.values()))
        targets = await load_books(uow, chunk, deps.settings.fiscal_year_start_month)
        plans, revisions, n_fresh = _merge(chunk, inds, by_ind, existing, forced, result, write)
        updates: list[ObsRow] = []
        counts: dict[str, int] = defaultdict(int)
        if pg and n_fresh >= observation_store.NEW_ROWS_COPY_MIN:
            # The rows are evaluated while COPY streams the earlier ones to the server.
            await observation_store.copy_new_rows(uow, _evaluate_plans(plans, deps.settings, targets, updates, counts))
            writes = updates
        else:
            writes = [*_evaluate_plans(plans, deps.settings, targets, updates, counts), *updates]
        for st, n in counts.items():
            metrics.EVALUATIONS.labels(st).inc(n)
        for plan in plans:
            await refresh_state(uow, deps, ind=plan.ind, latest=plan.latest, override=overrides.get(plan.ind.id), now=now, actor=actor, locked=pg)
        await observation_store.write_rows(uow, writes, deps.settings.bulk_chunk_rows)
        if revisions:
            await observation_store.insert_revisions(uow, revisions, deps.settings.bulk_chunk_rows)
        result.revisions += len(revisions)
        for plan in plans:
            if plan.rows:
                result.changed_periods[plan.ind.id] = plan.dirty
    if result.changed_periods and _depth < 3:
        await formulas.recompute_formulas_for(uow, deps, changed=result.changed_periods, actor=actor, now=now, depth=_depth)
    return result


def keeps_revision(ind: Indicator, period_end: date, today: date) -> bool:
    """Whether replacing a value of this period is history worth keeping (see the module's docs)."""
    return ind.derived_from is None or period_end < today


def _merge(
    chunk: list[str], inds: dict[str, Indicator], by_ind: dict[str, dict[date, ObsIn]],
    existing: dict[str, dict[date, ObsRow]], forced: dict[str, date], result: RecordResult, write: _Write,
) -> tuple[list[_Plan], list[dict[str, Any]], int]:
    """The new values merged into each indicator's stored rows; the indicators with nothing to do
    are left out."""
    plans: list[_Plan] = []
    revisions: list[dict[str, Any]] = []
    inserted = updated = unchanged = 0
    actor, source, now = write.actor, write.source, write.now
    for iid in chunk:
        ind = inds[iid]
        rows = existing[iid]
        dirty: set[date] = set()
        fresh: set[date] = set()
        was_red: set[date] = set()
        for start, it in by_ind.get(iid, {}).items():
            old = rows.get(start)
            value = float(it.value)
            note = it.note
            if old is None:
                p = it.period
                rows[start] = ObsRow(iid, start, p.end, p.label, value, "grey", "grey", None, None, 0, None, 1, note,
                                     source, actor, now)
                fresh.add(start)
            elif old.value == value and (note is None or note == old.note):
                unchanged += 1
                continue
            else:
                updated += 1
                if old.status == "red":
                    was_red.add(start)
                if old.value != value and keeps_revision(ind, old.period_end, write.today):
                    revisions.append({
                        "indicator_id": iid, "period_start": start, "old_value": old.value, "new_value": value,
                        "changed_by": actor, "changed_at": now, "source": source,
                    })
                old.value, old.revision = value, old.revision + 1
                old.source, old.updated_by, old.updated_at = source, actor, now
                if note is not None:
                    old.note = note
            dirty.add(start)
        inserted += len(fresh)
        firsts = [*([min(dirty)] if dirty else []), *([forced[iid]] if iid in forced else [])]
        if not firsts:
            continue
        if dirty:
            metrics.OBSERVATIONS.labels(ind.department_code).inc(len(dirty))
        plans.append(_Plan(ind, rows, min(firsts), dirty, fresh, was_red))
    result.inserted += inserted
    result.updated += updated
    result.unchanged += unchanged
    return plans, revisions, inserted


def _evaluate_plans(
    plans: list[_Plan], settings: Settings, targets: dict[str, Book], updates: list[ObsRow], counts: dict[str, int],
) -> Iterator[ObsRow]:
    """Re-evaluate each indicator's series from its first changed period forward. Yields the new
    rows as they are ready (for COPY); stored rows whose value or evaluation changed go to
    ``updates``; ``counts`` gets the evaluations per status."""
    fy0 = settings.fiscal_year_start_month
    isfinite = math.isfinite
    for plan in plans:
        rows = plan.rows
        if not rows:
            continue
        ind = plan.ind
        cfg = eval_config(ind, settings)
        series = sorted(rows)
        srows = [rows[s] for s in series]
        values = [r.value for r in srows]
        k0 = bisect.bisect_left(series, plan.first_changed)
        refs = _references(ind, cfg, series, values, rows, k0, targets.get(ind.id, EMPTY), fy0)
        prev = PrevState(srows[k0 - 1].status, srows[k0 - 1].streak) if k0 > 0 else None
        was_red = [s in plan.was_red for s in series[k0:]] if plan.was_red else None
        dirty, fresh = plan.dirty, plan.fresh
        for k, (status, raw, miss, streak, reason), ref in zip(
            range(k0, len(series)), evaluate_run(values[k0:], refs, cfg, prev, was_red), refs, strict=True
        ):
            row = srows[k]
            centre = ref.centre if ref is not None else None
            new = (status, raw, miss if miss is not None and isfinite(miss) else None,
                   centre if centre is not None and isfinite(centre) else None, streak, reason[:300])
            s = series[k]
            if s in dirty:
                row.set_evaluation(new)
            elif row.evaluation() != new:
                row.set_evaluation(new)
                updates.append(row)
            else:
                continue
            counts[status] += 1
            if s in fresh:
                yield row
            elif s in dirty:
                updates.append(row)
        plan.latest = srows[-1]


def _references(
    ind: Indicator, cfg: EvalConfig, series: list[date], values: list[float], rows: dict[date, ObsRow], k0: int,
    book: Book, fy0: int,
) -> list[Any]:
    """The reference of each period from ``k0`` on; only the indicator's own basis is looked up."""
    n = len(series)
    if cfg.basis == "target":
        # the governing target of each period (indicators.targets), one Reference per target value
        if not book:
            return [None] * (n - k0)
        cache: dict[float | None, Any] = {}
        out = []
        for k in range(k0, n):
            t = book.value_at(series[k])
            if t not in cache:
                cache[t] = reference_for(cfg, target=t)
            out.append(cache[t])
        return out
    if cfg.basis == "history":
        w = cfg.history_window
        return [reference_for(cfg, history=values[max(0, k - w) : k]) for k in range(k0, n)]
    freq = ind.frequency
    lookup = _prev_start if cfg.basis == "prior_period" else _last_year_start
    out = []
    for k in range(k0, n):
        other = rows.get(lookup(period_at(freq, series[k], fy0), fy0))
        v = other.value if other is not None else None
        out.append(reference_for(cfg, prior=v, last_year=v))
    return out


def _safe_minus(d: date, days: int) -> date:
    try:
        return d - timedelta(days=days)
    except OverflowError:
        return date.min


@functools.lru_cache(maxsize=200_000)
def _prev_start(p: Period, fy0: int) -> date:
    return period_at(p.frequency, p.start - timedelta(days=1), fy0).start if p.start > date.min else p.start


@functools.lru_cache(maxsize=200_000)
def _last_year_start(p: Period, fy0: int) -> date:
    try:
        return same_period_last_year(p, fy0).start
    except (ValueError, OverflowError):
        return date.min
