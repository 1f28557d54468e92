"""The registry: departments (the local copy of the directory's), indicators and their
descriptions, and targets. Keyword-only functions over a UnitOfWork; they never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, cast

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.directory import Departments, DirectoryUnreachable
from citystat_common.errors import Conflict, Invalid
from citystat_common.events import DepartmentUpserted
from citystat_common.uow import UnitOfWork
from indicators import schemas
from indicators.aggregation import check_additive, default_additive
from indicators.deps import IndicatorsDeps
from indicators.formulas import recompute_formula
from indicators.models import Department, FormulaInput, Indicator, IndicatorDescription, Target
from indicators.observation_store import upsert
from indicators.observations import record_observations
from indicators.periods import due_after, fiscal_year_start, local_date, period_of
from indicators.references import check_linked_outcome, formula_inputs
from indicators.rules import get_indicator, grace_days, period_cached, tz_of, validate_value
from indicators.targets import applies_of, check_target_year

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


# --- indicators ---------------------------------------------------------------------------


async def create_indicator(
    uow: UnitOfWork, deps: IndicatorsDeps, *, actor: str, data: schemas.IndicatorCreate, directory: Departments | None,
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
    ind.next_due_at = due_after(period_of(ind.frequency, local_date(now, tz_of(deps.settings)), deps.settings.fiscal_year_start_month),
                                grace_days(ind), tz_of(deps.settings))
    uow.session.add(ind)
    uow.session.add(IndicatorDescription(indicator_id=ind.id, text=data.description, valid_from=now, changed_by=actor))
    if data.formula is not None:
        ind.formula = data.formula.model_dump()
        await uow.session.flush()
        for role, other in inputs.items():
            uow.session.add(FormulaInput(formula_indicator_id=ind.id, role=role, input_indicator_id=other.id))
        await uow.session.flush()
        await recompute_formula(uow, deps, formula_ind=ind, periods=None, actor=actor)
    await uow.session.flush()
    return ind


async def update_indicator(
    uow: UnitOfWork, deps: IndicatorsDeps, *, actor: str, code: str, data: schemas.IndicatorUpdate
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
        await record_observations(uow, deps, items=[], actor=actor, source="api", reevaluate={ind.id: date.min})
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
    uow: UnitOfWork, deps: IndicatorsDeps, *, actor: str, ind: Indicator, targets: Sequence[schemas.TargetIn]
) -> None:
    fy0 = deps.settings.fiscal_year_start_month
    today = local_date(utcnow(), tz_of(deps.settings))
    rows: dict[tuple[date, str], dict[str, Any]] = {}
    for i, t in enumerate(targets):
        if t.fiscal_year is not None:
            p = period_of(ind.frequency, fiscal_year_start(t.fiscal_year, fy0), fy0)
            field_name = f"targets.{i}.fiscal_year"
        else:
            field_name = f"targets.{i}.period"
            try:
                p = period_cached(ind.frequency, str(t.period), fy0)
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
    await upsert(uow, cast(sa.Table, Target.__table__), list(rows.values()),
                  ["indicator_id", "period_start", "applies"])
    await record_observations(uow, deps, items=[], actor=actor, source="api",
                              reevaluate={ind.id: min(start for start, _ in rows)})
