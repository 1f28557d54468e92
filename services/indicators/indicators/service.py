"""Indicators domain logic. Keyword-only functions over a UnitOfWork: they change rows, write
the status history and emit events, and never commit (the caller does).

The one path every value takes (API, bulk, 311 derivation, formulas) is
``record_observations``: it merges the new values with the indicator's own stored rows,
re-evaluates that indicator's series from the earliest changed period forward, upserts the
changed rows in batches (``INSERT ... ON CONFLICT``; on PostgreSQL the indicators are locked
first and many new rows are COPYed straight in), records revisions, recomputes the
formulas that use the indicator, and publishes a status change if the indicator's effective
status moved. Nothing else is evaluated: cost follows the indicators touched, not the
number of indicators.
"""

from __future__ import annotations

import bisect
import functools
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from citystat_common.auth import Actor
from citystat_common.db import dialect_insert, utcnow
from citystat_common.directory import Departments, DirectoryUnreachable
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import (
    DepartmentUpserted,
)
from citystat_common.uow import UnitOfWork
from indicators import metrics, schemas
from indicators.aggregation import check_additive, default_additive
from indicators.config import Settings
from indicators.evaluation import (
    EvalConfig,
    PrevState,
    default_rules,
    evaluate_run,
    reference_for,
    validate_rules,
)
from indicators.models import (
    Department,
    FormulaInput,
    Indicator,
    IndicatorDescription,
    ObservationRevision,
    Override,
    Target,
    observations,
)
from indicators.periods import (
    DEFAULT_GRACE_DAYS,
    Period,
    due_after,
    fiscal_year_start,
    local_date,
    next_period,
    parse_period,
    period_of,
    same_period_last_year,
)
from indicators.publish import apply_effective
from indicators.publish import effective_status as effective_status  # re-exported: api, dashboard, tests
from indicators.publish import missing_period as missing_period
from indicators.references import check_linked_outcome, formula_inputs
from indicators.targets import EMPTY, Book, applies_of, check_target_year, load_books

PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92, "annual": 366}
CHUNK_INDICATORS = 400


# --- helpers ---------------------------------------------------------------------------


def tz_of(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.city_timezone)


@functools.lru_cache(maxsize=200_000)
def _period_cached(frequency: str, text: str, fy: int) -> Period:
    return parse_period(frequency, text, fy)


@functools.lru_cache(maxsize=200_000)
def _period_at(frequency: str, start: date, fy: int) -> Period:
    return period_of(frequency, start, fy)


def eval_config(ind: Indicator, settings: Settings) -> EvalConfig:
    rules = validate_rules(ind.rules) if ind.rules else default_rules(settings.green_within, settings.yellow_within)
    return EvalConfig(
        direction=ind.direction,
        basis=ind.basis,
        rules=rules,
        persistence=ind.persistence or settings.persistence,
        recovery_within=ind.recovery_within if ind.recovery_within is not None else settings.recovery_within,
        band_tolerance=ind.band_tolerance,
        history_k=ind.history_k or settings.history_k,
        history_window=ind.history_window or settings.history_window,
        history_min_points=settings.history_min_points,
    )


def grace_days(ind: Indicator) -> int:
    return ind.grace_days if ind.grace_days is not None else DEFAULT_GRACE_DAYS[ind.frequency]


# The values each unit accepts (any finite number for a unit not listed); the bulk path reads it too.
UNIT_RANGE = {"percentage": (0.0, 100.0), "count": (0.0, math.inf), "duration": (0.0, math.inf),
              "score": (0.0, math.inf)}


def validate_value(unit: str, value: float) -> str | None:
    """None when the value fits the unit, else what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a finite number"
    lo, hi = UNIT_RANGE.get(unit, (-math.inf, math.inf))
    if lo <= value <= hi:
        return None
    if unit == "percentage":
        return "a percentage must be between 0 and 100"
    return f"a {unit} cannot be negative"


async def get_indicator(uow: UnitOfWork, code: str) -> Indicator:
    ind = (await uow.session.execute(sa.select(Indicator).where(Indicator.code == code))).scalar_one_or_none()
    if ind is None:
        raise NotFound(f"no indicator with code {code!r}", field="code")
    return ind


async def active_overrides(uow: UnitOfWork, ids: Sequence[str], now: datetime) -> dict[str, Override]:
    if not ids:
        return {}
    out: dict[str, Override] = {}
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = list(ids[i : i + CHUNK_INDICATORS])
        rows = (
            await uow.session.execute(
                sa.select(Override)
                .where(Override.indicator_id.in_(chunk), Override.cleared_at.is_(None), Override.expires_at > now)
                .order_by(Override.id)
            )
        ).scalars()
        for o in rows:
            out[o.indicator_id] = o  # the latest wins
    return out


# --- departments ------------------------------------------------------------------------


async def upsert_department(uow: UnitOfWork, data: DepartmentUpserted) -> None:
    dept = await uow.session.get(Department, data.code)
    if dept is None:  # an api may be storing it from the directory at this moment: no key clash either way
        dept = await uow.add_if_absent(Department, dict(code=data.code, name=data.name))
    dept.department_id = data.department_id
    dept.name = data.name
    dept.cluster_code = data.cluster_code
    dept.cluster_name = data.cluster_name
    dept.active = data.active


async def check_department(uow: UnitOfWork, code: str, *, directory: Departments) -> Department:
    """The local copy first; then the directory (short timeout); neither knows it: 422."""
    dept = await uow.session.get(Department, code)
    if dept is not None:
        return dept
    try:
        doc = await directory.get(code)
    except DirectoryUnreachable as exc:
        raise Invalid(f"department {code!r} is not known locally and the directory could not be asked",
                      field="department_code") from exc
    if doc is None:
        raise Invalid(f"department {code!r} is not known to the directory", field="department_code")
    # The directory's own event may be landing through the consumer right now: keep whichever
    # row is stored first rather than fail on the key.
    return await uow.add_if_absent(Department, dict(
        code=code, department_id=doc.get("id"), name=doc.get("name", code), cluster_code=doc.get("cluster"),
        cluster_name=doc.get("cluster_name"), active=doc.get("active", True),
    ))


# --- registry ---------------------------------------------------------------------------


async def create_indicator(
    uow: UnitOfWork, settings: Settings, *, actor: str, data: schemas.IndicatorCreate, directory: Departments | None,
    derived_from: str | None = None,
) -> Indicator:
    """``directory``: where to check a department the local copy lacks; None takes the department as
    given (the 311 derivation, whose events carry the catalog's own department)."""
    exists = (await uow.session.execute(sa.select(Indicator.id).where(Indicator.code == data.code))).first()
    if exists:
        raise Conflict(f"an indicator with code {data.code!r} exists", field="code")
    if directory is not None:
        await check_department(uow, data.department_code, directory=directory)
    is_formula = data.formula is not None
    additive = data.additive if data.additive is not None else default_additive(data.unit, formula=is_formula)
    check_additive(data.unit, additive, formula=is_formula)
    await check_linked_outcome(uow, data.linked_outcome_code, own_code=data.code)
    inputs = {} if data.formula is None else await formula_inputs(
        uow, own_code=data.code, frequency=data.frequency,
        roles={"numerator": data.formula.numerator, "denominator": data.formula.denominator})
    now = utcnow()
    ind = Indicator(
        id=str(uuid.uuid4()), code=data.code, name=data.name, department_code=data.department_code, unit=data.unit,
        kind=data.kind, direction=data.direction, frequency=data.frequency, additive=additive,
        critical=data.critical, function_tag=data.function_tag, owner=data.owner, data_source=data.data_source,
        basis=data.basis or "target", rules=[r.model_dump() for r in data.rules] if data.rules else None,
        persistence=data.persistence, recovery_within=data.recovery_within,
        band_tolerance=data.band_tolerance if data.band_tolerance is not None else 0.05,
        history_window=data.history_window, history_k=data.history_k, grace_days=data.grace_days,
        linked_outcome_code=data.linked_outcome_code, derived_from=derived_from, status="grey",
        status_reason="no observation yet", created_at=now, updated_at=now,
    )
    ind.next_due_at = due_after(period_of(ind.frequency, local_date(now, tz_of(settings)), settings.fiscal_year_start_month),
                                grace_days(ind), tz_of(settings))
    uow.session.add(ind)
    uow.session.add(IndicatorDescription(indicator_id=ind.id, text=data.description, valid_from=now, changed_by=actor))
    if data.formula is not None:
        ind.formula = data.formula.model_dump()
        await uow.session.flush()
        for role, other in inputs.items():
            uow.session.add(FormulaInput(formula_indicator_id=ind.id, role=role, input_indicator_id=other.id))
        await uow.session.flush()
        await recompute_formula(uow, settings, ind, periods=None, actor=actor)
    await uow.session.flush()
    return ind


async def update_indicator(
    uow: UnitOfWork, settings: Settings, *, actor: str, code: str, data: schemas.IndicatorUpdate
) -> Indicator:
    ind = await get_indicator(uow, code)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("additive"):
        check_additive(ind.unit, True, formula=bool(ind.formula))
    if "linked_outcome_code" in changes:
        await check_linked_outcome(uow, changes["linked_outcome_code"], own_code=ind.code)
    now = utcnow()
    reevaluate = False
    if "description" in changes:
        text = changes.pop("description") or ""
        current = await current_description(uow, ind.id)
        if current is None or current.text != text:
            if current is not None:
                current.valid_to = now
            uow.session.add(IndicatorDescription(indicator_id=ind.id, text=text, valid_from=now, changed_by=actor))
    for key, value in changes.items():
        if key == "rules":
            value = [r for r in value] if value is not None else None
        if key in ("basis", "rules", "persistence", "recovery_within", "band_tolerance", "history_window",
                   "history_k", "direction"):
            reevaluate = True
        if key == "grace_days":
            reevaluate = True
        if value is None and key in ("basis", "band_tolerance", "direction", "kind", "additive", "critical",
                                     "function_tag", "active"):
            continue
        setattr(ind, key, value)
    ind.updated_at = now
    await uow.session.flush()
    if reevaluate:
        await record_observations(uow, settings, [], actor=actor, source="api", reevaluate={ind.id: date.min})
    return ind


async def current_description(uow: UnitOfWork, indicator_id: str) -> IndicatorDescription | None:
    return (
        await uow.session.execute(
            sa.select(IndicatorDescription)
            .where(IndicatorDescription.indicator_id == indicator_id, IndicatorDescription.valid_to.is_(None))
            .order_by(IndicatorDescription.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


# --- targets ----------------------------------------------------------------------------


async def set_targets(
    uow: UnitOfWork, settings: Settings, *, actor: str, ind: Indicator, targets: Sequence[schemas.TargetIn]
) -> None:
    fy0 = settings.fiscal_year_start_month
    today = local_date(utcnow(), tz_of(settings))
    rows: dict[tuple[date, str], dict[str, Any]] = {}
    for i, t in enumerate(targets):
        if t.fiscal_year is not None:
            p = period_of(ind.frequency, fiscal_year_start(t.fiscal_year, fy0), fy0)
            field_name = f"targets.{i}.fiscal_year"
        else:
            field_name = f"targets.{i}.period"
            try:
                p = _period_cached(ind.frequency, str(t.period), fy0)
            except ValueError as exc:
                raise Invalid(str(exc), field=field_name) from exc
        fy = check_target_year(p, today=today, fy0=fy0, field=field_name)
        applies = applies_of(by_fiscal_year=t.fiscal_year is not None, applies=t.applies,
                             field=f"targets.{i}.applies")
        err = validate_value(ind.unit, t.value)
        if err:
            raise Invalid(err, field=f"targets.{i}.value")
        rows[(p.start, applies)] = {
            "indicator_id": ind.id, "period_start": p.start, "applies": applies,
            "period_label": f"FY{t.fiscal_year}" if t.fiscal_year is not None else p.label,
            "fiscal_year": t.fiscal_year if t.fiscal_year is not None else fy, "value": float(t.value),
            "set_by": actor, "set_at": utcnow(),
        }
    await _upsert(uow, cast(sa.Table, Target.__table__), list(rows.values()),
                  ["indicator_id", "period_start", "applies"])
    await record_observations(uow, settings, [], actor=actor, source="api",
                              reevaluate={ind.id: min(start for start, _ in rows)})




# --- observations: the one write path ---------------------------------------------------


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
    changed_periods: dict[str, set[date]] = field(default_factory=dict)  # indicator id -> starts of changed periods


OBS_COLS = [c.name for c in observations.c]
EVAL_COLS = ("status", "raw_status", "miss", "reference", "streak", "reason")


def _upsert_stmt(dialect: str, table: sa.Table, keys: list[str]) -> Any:
    stmt = dialect_insert(table, dialect)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
    )


COPY_THRESHOLD = 2000


async def _upsert(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]], keys: list[str], chunk: int = 5000) -> None:
    """INSERT ... ON CONFLICT DO UPDATE in batches (executemany). On PostgreSQL, large batches go
    through COPY into a temporary staging table and one INSERT ... SELECT ... ON CONFLICT."""
    if not rows:
        return
    dialect = uow.dialect
    if dialect == "postgresql" and table is observations and len(rows) >= COPY_THRESHOLD:
        await _pg_copy_upsert(uow, table, rows, keys)
        return
    stmt = _upsert_stmt(dialect, table, keys)
    for i in range(0, len(rows), chunk):
        await uow.session.execute(stmt, rows[i : i + chunk])


async def _pg_copy_upsert(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    conn = await uow.session.connection()  # inside the unit of work's transaction
    raw = await conn.get_raw_connection()
    apg: Any = raw.driver_connection
    cols = [c.name for c in table.c]
    stage = f"_stage_{table.name}"
    await apg.execute(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    await apg.execute(f'TRUNCATE "{stage}"')
    await apg.copy_records_to_table(stage, records=[tuple(r[c] for c in cols) for r in rows], columns=cols)
    col_list = ", ".join(f'"{c}"' for c in cols)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in cols if c not in keys)
    await apg.execute(
        f'INSERT INTO "{table.name}" ({col_list}) SELECT {col_list} FROM "{stage}" '
        f'ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {updates}'
    )
    await apg.execute(f'TRUNCATE "{stage}"')


# Positions in OBS_COLS: the write path handles a stored row as a list in column order.
_C = {c: i for i, c in enumerate(OBS_COLS)}
VALUE, STATUS, STREAK, NOTE, REVISION = _C["value"], _C["status"], _C["streak"], _C["note"], _C["revision"]
EV0, EV1 = _C["status"], _C["reason"] + 1  # the evaluated columns, contiguous: status .. reason
assert tuple(OBS_COLS[EV0:EV1]) == EVAL_COLS
UPDATED_AT = _C["updated_at"]
assert UPDATED_AT == len(OBS_COLS) - 1  # the COPY of new rows sends the columns before it
NEW_ROWS_COPY_MIN = 500  # fewer new rows: one executemany costs less than COPY's extra round trips


@dataclass
class _Plan:
    """One indicator's merged series within a ``record_observations`` call."""

    ind: Indicator
    rows: dict[date, list[Any]]
    first_changed: date
    dirty: set[date]  # periods whose value or note changed (always written)
    fresh: set[date]  # of those, the ones not stored yet
    was_red: set[date]  # periods already red whose value is being revised
    latest: list[Any] | None = None


async def _lock_indicators(uow: UnitOfWork, inds: dict[str, Indicator]) -> None:
    """PostgreSQL: lock the indicators (sorted, so two writers never deadlock) before their stored
    rows are read: a concurrent writer of the same indicator waits for our commit and then reads
    our rows, so new rows are really new (COPY needs no ON CONFLICT) and revisions are not lost.
    The published status is read as committed here, for ``apply_effective``."""
    ids = sorted(inds)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        res = await uow.session.execute(
            sa.select(Indicator.id, Indicator.status, Indicator.episode_id)
            .where(Indicator.id.in_(ids[i : i + CHUNK_INDICATORS])).order_by(Indicator.id).with_for_update()
        )
        for iid, status, episode_id in res:
            set_committed_value(inds[iid], "status", status)
            set_committed_value(inds[iid], "episode_id", episode_id)


async def record_observations(
    uow: UnitOfWork,
    settings: Settings,
    items: Sequence[ObsIn],
    *,
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
        await _lock_indicators(uow, inds)
    overrides = await active_overrides(uow, ids, now)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = ids[i : i + CHUNK_INDICATORS]
        # Earliest period each indicator needs: the first changed one, minus a year and the history window.
        lows: dict[str, date] = {}
        for iid in chunk:
            ind = inds[iid]
            first = min([*by_ind.get(iid, {}).keys(), *([forced[iid]] if iid in forced else [])])
            window = (ind.history_window or settings.history_window) + 1
            lows[iid] = _safe_minus(first, 366 + window * PERIOD_DAYS[ind.frequency])
        low = min(lows.values())
        existing: dict[str, dict[date, list[Any]]] = defaultdict(dict)
        res = await uow.session.execute(
            sa.select(observations).where(observations.c.indicator_id.in_(chunk), observations.c.period_start >= low)
        )
        for row in res:
            existing[row[0]][row[1]] = list(row)
        targets = await load_books(uow, chunk, settings.fiscal_year_start_month)
        plans, revisions, n_fresh = _merge(chunk, inds, by_ind, existing, forced, result, actor, source, now)
        updates: list[list[Any]] = []
        counts: dict[str, int] = defaultdict(int)
        if pg and n_fresh >= NEW_ROWS_COPY_MIN:
            # The rows are evaluated while COPY streams the earlier ones to the server.
            await _pg_copy_new_observations(uow, _evaluate_plans(plans, settings, targets, updates, counts, trim=True))
            writes = updates
        else:
            writes = [*_evaluate_plans(plans, settings, targets, updates, counts), *updates]
        for st, n in counts.items():
            metrics.EVALUATIONS.labels(st).inc(n)
        for plan in plans:
            await _refresh_state(uow, settings, plan.ind, plan.latest, overrides.get(plan.ind.id), now, actor,
                                 locked=pg)
        await _upsert(uow, observations, [dict(zip(OBS_COLS, r, strict=True)) for r in writes],
                      ["indicator_id", "period_start"], settings.bulk_chunk_rows)
        if revisions:
            for j in range(0, len(revisions), settings.bulk_chunk_rows):
                await uow.session.execute(sa.insert(cast(sa.Table, ObservationRevision.__table__)), revisions[j : j + settings.bulk_chunk_rows])
        for plan in plans:
            if plan.rows:
                result.changed_periods[plan.ind.id] = plan.dirty
    if result.changed_periods and _depth < 3:
        await _recompute_formulas_for(uow, settings, result.changed_periods, actor=actor, now=now, depth=_depth)
    return result


def _merge(
    chunk: list[str], inds: dict[str, Indicator], by_ind: dict[str, dict[date, ObsIn]],
    existing: dict[str, dict[date, list[Any]]], forced: dict[str, date], result: RecordResult, actor: str,
    source: str, now: datetime,
) -> tuple[list[_Plan], list[dict[str, Any]], int]:
    """The new values merged into each indicator's stored rows; the indicators with nothing to do
    are left out."""
    plans: list[_Plan] = []
    revisions: list[dict[str, Any]] = []
    inserted = updated = unchanged = 0
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
                rows[start] = [iid, start, p.end, p.label, value, "grey", "grey", None, None, 0, None, 1, note, source,
                               actor, now]
                fresh.add(start)
            elif old[VALUE] == value and (note is None or note == old[NOTE]):
                unchanged += 1
                continue
            else:
                updated += 1
                if old[STATUS] == "red":
                    was_red.add(start)
                if old[VALUE] != value:
                    revisions.append({
                        "indicator_id": iid, "period_start": start, "old_value": old[VALUE], "new_value": value,
                        "changed_by": actor, "changed_at": now, "source": source,
                    })
                old[VALUE], old[REVISION] = value, old[REVISION] + 1
                old[_C["source"]], old[_C["updated_by"]], old[_C["updated_at"]] = source, actor, now
                if note is not None:
                    old[NOTE] = note
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
    plans: list[_Plan], settings: Settings, targets: dict[str, Book], updates: list[list[Any]],
    counts: dict[str, int], *, trim: bool = False,
) -> Iterator[list[Any]]:
    """Re-evaluate each indicator's series from its first changed period forward. Yields the new
    rows (for COPY, as they are ready; ``trim``: without ``updated_at``); stored rows whose value
    or evaluation changed go to ``updates``; ``counts`` gets the evaluations per status."""
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
        values = [r[VALUE] for r in srows]
        k0 = bisect.bisect_left(series, plan.first_changed)
        refs = _references(ind, cfg, series, values, rows, k0, targets.get(ind.id, EMPTY), fy0)
        prev = PrevState(srows[k0 - 1][STATUS], srows[k0 - 1][STREAK]) if k0 > 0 else None
        was_red = [s in plan.was_red for s in series[k0:]] if plan.was_red else None
        dirty, fresh = plan.dirty, plan.fresh
        for k, (status, raw, miss, streak, reason), ref in zip(
            range(k0, len(series)), evaluate_run(values[k0:], refs, cfg, prev, was_red), refs, strict=True
        ):
            row = srows[k]
            centre = ref.centre if ref is not None else None
            new = [status, raw, miss if miss is not None and isfinite(miss) else None,
                   centre if centre is not None and isfinite(centre) else None, streak, reason[:300]]
            s = series[k]
            if s in dirty:
                row[EV0:EV1] = new
            elif row[EV0:EV1] != new:
                row[EV0:EV1] = new
                updates.append(row)
            else:
                continue
            counts[status] += 1
            if s in fresh:
                yield row[:UPDATED_AT] if trim else row
            elif s in dirty:
                updates.append(row)
        plan.latest = srows[-1]


def _references(
    ind: Indicator, cfg: EvalConfig, series: list[date], values: list[float], rows: dict[date, list[Any]], k0: int,
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
        other = rows.get(lookup(_period_at(freq, series[k], fy0), fy0))
        v = other[VALUE] if other is not None else None
        out.append(reference_for(cfg, prior=v, last_year=v))
    return out


async def _pg_copy_new_observations(uow: UnitOfWork, rows: Iterable[Sequence[Any]]) -> None:
    """COPY straight into the table, inside the unit of work's transaction (new rows, every column
    but the last). ``updated_at`` is left to the column's default, the transaction's time: the same
    for every row of the call, and encoding an aware datetime per row cost more than the other 15
    columns together."""
    conn = await uow.session.connection()
    apg: Any = (await conn.get_raw_connection()).driver_connection
    await apg.copy_records_to_table(observations.name, records=rows, columns=OBS_COLS[:UPDATED_AT])


def _safe_minus(d: date, days: int) -> date:
    try:
        return d - timedelta(days=days)
    except OverflowError:
        return date.min


@functools.lru_cache(maxsize=200_000)
def _prev_start(p: Period, fy0: int) -> date:
    return _period_at(p.frequency, p.start - timedelta(days=1), fy0).start if p.start > date.min else p.start


@functools.lru_cache(maxsize=200_000)
def _last_year_start(p: Period, fy0: int) -> date:
    try:
        return same_period_last_year(p, fy0).start
    except (ValueError, OverflowError):
        return date.min


# --- state, status changes and events ----------------------------------------------------


async def _refresh_state(
    uow: UnitOfWork, settings: Settings, ind: Indicator, latest: list[Any] | None, override: Override | None,
    now: datetime, actor: str, *, locked: bool = False,
) -> None:
    tz = tz_of(settings)
    fy0 = settings.fiscal_year_start_month
    new_period = False
    if latest is not None:
        start = latest[_C["period_start"]]
        new_period = ind.latest_period_start is not None and start > ind.latest_period_start
        ind.latest_period_start = start
        ind.latest_value = latest[VALUE]
        ind.latest_reference = latest[_C["reference"]]
        ind.latest_miss = latest[_C["miss"]]
        ind.computed_status = latest[STATUS]
        ind.status_reason = latest[_C["reason"]]
        due = due_after(next_period(_period_at(ind.frequency, start, fy0), fy0), grace_days(ind), tz)
        ind.next_due_at = due if due > now else None
        ind.missing = due <= now
    await apply_effective(uow, settings, ind, override, now, actor, locked=locked, new_period=new_period)


# --- overrides --------------------------------------------------------------------------


async def set_override(
    uow: UnitOfWork, settings: Settings, *, actor: str, ind: Indicator, data: schemas.OverrideIn,
    by: Actor | None = None,
) -> Override:
    """``actor``: what the history records (a name, or "key <name>"); ``by``: the person behind it."""
    now = utcnow()
    if not ind.active:
        # a retired indicator is not judged (an override of one would still open a ticket)
        raise Invalid(f"indicator {ind.code!r} is inactive: reactivate it before overriding its status", field="code")
    if data.expires_at <= now:
        raise Invalid("expires_at must be in the future", field="expires_at")
    current = await active_overrides(uow, [ind.id], now)
    for o in current.values():
        o.cleared_at, o.cleared_by = now, f"replaced by {actor}"
    o = Override(indicator_id=ind.id, status=data.status, reason=data.reason, created_by=actor, created_at=now,
                 expires_at=data.expires_at.astimezone(UTC), created_by_email=by.email if by else None)
    uow.session.add(o)
    await uow.session.flush()
    await apply_effective(uow, settings, ind, o, now, actor, note=f"override to {data.status} until "
                          f"{o.expires_at.isoformat()}: {data.reason}", judgement=True, by=by)
    return o


async def clear_override(uow: UnitOfWork, settings: Settings, *, actor: str, ind: Indicator, reason: str,
                         by: Actor | None = None) -> None:
    now = utcnow()
    current = await active_overrides(uow, [ind.id], now)
    if not current:
        raise NotFound("the indicator has no active override", field="override")
    for o in current.values():
        o.cleared_at, o.cleared_by, o.cleared_by_email = now, actor, by.email if by else None
    await apply_effective(uow, settings, ind, None, now, actor, note=f"override cleared: {reason}", judgement=True,
                          by=by)


# --- formulas ---------------------------------------------------------------------------


async def recompute_formula(
    uow: UnitOfWork, settings: Settings, formula_ind: Indicator, *, periods: Iterable[date] | None, actor: str,
    now: datetime | None = None, depth: int = 0,
) -> None:
    """cost per unit = numerator / denominator for the same period (both must be present)."""
    inputs = {
        fi.role: fi.input_indicator_id
        for fi in (await uow.session.execute(
            sa.select(FormulaInput).where(FormulaInput.formula_indicator_id == formula_ind.id)
        )).scalars()
    }
    if set(inputs) != {"numerator", "denominator"}:
        return
    stmt = sa.select(observations.c.indicator_id, observations.c.period_start, observations.c.period_end,
                     observations.c.period_label, observations.c.value).where(
        observations.c.indicator_id.in_([inputs["numerator"], inputs["denominator"]]))
    plist = sorted(set(periods)) if periods is not None else None
    if plist is not None:
        stmt = stmt.where(observations.c.period_start.in_(plist))
    got: dict[date, dict[str, Any]] = defaultdict(dict)
    for iid, start, end, label, value in await uow.session.execute(stmt):
        role = "numerator" if iid == inputs["numerator"] else "denominator"
        got[start][role] = (value, Period(start, end, label, formula_ind.frequency))
    items = []
    for parts in got.values():
        if len(parts) == 2 and parts["denominator"][0] != 0:
            value = parts["numerator"][0] / parts["denominator"][0]
            if math.isfinite(value) and validate_value(formula_ind.unit, value) is None:
                items.append(ObsIn(formula_ind, parts["numerator"][1], value))
    if items:
        await record_observations(uow, settings, items, actor=actor, source="formula", now=now, _depth=depth + 1)


async def _recompute_formulas_for(
    uow: UnitOfWork, settings: Settings, changed: dict[str, set[date]], *, actor: str, now: datetime, depth: int
) -> None:
    ids = list(changed)
    users: dict[str, set[date]] = defaultdict(set)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        chunk = ids[i : i + CHUNK_INDICATORS]
        res = await uow.session.execute(
            sa.select(FormulaInput.formula_indicator_id, FormulaInput.input_indicator_id)
            .where(FormulaInput.input_indicator_id.in_(chunk))
        )
        for fid, iid in res:
            users[fid].update(changed[iid])
    for fid, starts in users.items():
        f = await uow.session.get(Indicator, fid)
        if f is not None and f.active:
            await recompute_formula(uow, settings, f, periods=starts, actor=actor, now=now, depth=depth)


# --- scheduler work ---------------------------------------------------------------------


async def flag_missing(uow: UnitOfWork, settings: Settings, *, now: datetime | None = None, limit: int = 500) -> int:
    """Grey for indicators whose period passed with no observation. Only due indicators are
    read (index on next_due_at), so the cost follows the indicators due, not all of them."""
    now = now or utcnow()
    due = (
        await uow.session.execute(
            sa.select(Indicator).where(Indicator.next_due_at <= now).order_by(Indicator.next_due_at).limit(limit)
        )
    ).scalars().all()
    overrides = await active_overrides(uow, [i.id for i in due], now)
    for ind in due:
        ind.missing = True
        ind.next_due_at = None
        await apply_effective(uow, settings, ind, overrides.get(ind.id), now, "scheduler")
    return len(due)


async def expire_overrides(uow: UnitOfWork, settings: Settings, *, now: datetime | None = None, limit: int = 500) -> int:
    now = now or utcnow()
    expired = (
        await uow.session.execute(
            sa.select(Override).where(Override.cleared_at.is_(None), Override.expires_at <= now).limit(limit)
        )
    ).scalars().all()
    for o in expired:
        o.cleared_at, o.cleared_by = now, "expired"
    await uow.session.flush()
    for iid in {o.indicator_id for o in expired}:
        ind = await uow.session.get(Indicator, iid)
        if ind is not None:
            still = await active_overrides(uow, [iid], now)
            await apply_effective(uow, settings, ind, still.get(iid), now, "scheduler", note="override expired",
                                  judgement=True)
    return len(expired)


async def status_counts(uow: UnitOfWork) -> list[tuple[str, str, int]]:
    res = await uow.session.execute(
        sa.select(Indicator.department_code, Indicator.status, sa.func.count())
        .where(Indicator.active.is_(True))
        .group_by(Indicator.department_code, Indicator.status)
    )
    return [(d, s, int(n)) for d, s, n in res]


# --- reads ------------------------------------------------------------------------------


async def series(
    uow: UnitOfWork, ind: Indicator, *, start: date | None = None, end: date | None = None, limit: int = 5000,
    fy0: int = 7,
) -> list[dict[str, Any]]:
    stmt = sa.select(observations).where(observations.c.indicator_id == ind.id)
    if start:
        stmt = stmt.where(observations.c.period_start >= start)
    if end:
        stmt = stmt.where(observations.c.period_start <= end)
    stmt = stmt.order_by(observations.c.period_start.desc()).limit(limit)
    rows = [dict(r) for r in (await uow.session.execute(stmt)).mappings()]
    rows.reverse()
    book = (await load_books(uow, [ind.id], fy0)).get(ind.id, EMPTY)
    for r in rows:
        r["target"] = book.value_at(r["period_start"])
    return rows
