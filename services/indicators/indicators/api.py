"""Indicators REST API: thin routers over ``service``; the router owns the commit. Here the registry,
targets and judgement (overrides, status history); observations are in ``api_observations``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response

from citystat_common.auth import Principal, require_scope
from citystat_common.db import utcnow
from citystat_common.idempotency import check_key, remember, replayed, request_fingerprint
from citystat_common.pagination import Page, Paging, paginate
from citystat_common.web import ReadUoW, UoW
from indicators import schemas, service
from indicators.config import Settings
from indicators.deps import Deps, IndicatorsDeps
from indicators.evaluation import default_rules
from indicators.models import (
    Department,
    Indicator,
    IndicatorDescription,
    Override,
    StatusChange,
)
from indicators.people import by, may_judge
from indicators.periods import DEFAULT_GRACE_DAYS, period_of
from indicators.states import indicator_state

router = APIRouter()
Writer = Annotated[Principal, require_scope("indicators:write")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe creation")]


def _today(settings: Settings) -> date:
    """Today in the city's time zone: a period that has not started cannot be observed."""
    return service.local_date(utcnow(), service.tz_of(settings))


async def indicator_read(uow: UoW, deps: IndicatorsDeps, *, ind: Indicator, override: Override | None = None,
                         description: str | None = None, now: datetime | None = None) -> schemas.IndicatorRead:
    now = now or utcnow()
    if description is None:
        d = await service.current_description(uow, ind.id)
        description = d.text if d else ""
    status, overridden, _, reason = service.effective_status(ind, override, now)
    latest = (
        period_of(ind.frequency, ind.latest_period_start, deps.settings.fiscal_year_start_month).label
        if ind.latest_period_start else None
    )
    rules = ind.rules or [{"status": r.status, "max_miss": r.max_miss}
                          for r in default_rules(deps.settings.green_within, deps.settings.yellow_within)]
    return schemas.IndicatorRead(
        id=ind.id, code=ind.code, name=ind.name, department_code=ind.department_code, description=description,
        unit=ind.unit, kind=ind.kind, direction=ind.direction, frequency=ind.frequency, additive=ind.additive,
        critical=ind.critical, function_tag=ind.function_tag, owner=ind.owner, data_source=ind.data_source,
        basis=ind.basis, rules=rules, persistence=ind.persistence or deps.settings.persistence,
        recovery_within=ind.recovery_within if ind.recovery_within is not None else deps.settings.recovery_within,
        band_tolerance=ind.band_tolerance, history_window=ind.history_window or deps.settings.history_window,
        history_k=ind.history_k or deps.settings.history_k,
        grace_days=ind.grace_days if ind.grace_days is not None else DEFAULT_GRACE_DAYS[ind.frequency],
        formula=ind.formula, linked_outcome_code=ind.linked_outcome_code, derived_from=ind.derived_from,
        active=ind.active, status=status, status_reason=reason,  # type: ignore[arg-type]
        state=indicator_state(ind, status, overridden, now),
        computed_status=ind.computed_status, missing=status == "grey" and not overridden and (
            ind.missing or (ind.next_due_at is not None and ind.next_due_at <= now)),
        overridden=overridden, override=_override_read(override) if overridden and override else None,
        latest_period=latest, latest_value=ind.latest_value, latest_target=ind.latest_reference,
        episode_id=ind.episode_id, next_due_at=ind.next_due_at, created_at=ind.created_at, updated_at=ind.updated_at,
    )


def _override_read(o: Override) -> schemas.OverrideRead:
    return schemas.OverrideRead(
        id=o.id, status=o.status, reason=o.reason, created_by=o.created_by, created_at=o.created_at,  # type: ignore[arg-type]
        expires_at=o.expires_at, cleared_at=o.cleared_at, cleared_by=o.cleared_by,
        created_by_email=o.created_by_email, cleared_by_email=o.cleared_by_email,
    )


# --- registry ---------------------------------------------------------------------------


@router.post("/indicators", status_code=201, response_model=schemas.IndicatorRead, tags=["indicators"])
async def create_indicator(
    data: schemas.IndicatorCreate, uow: UoW, deps: Deps, who: Writer, request: Request, key: IdemKey = None
) -> Response:
    key = check_key(key)
    fingerprint = request_fingerprint(await request.body())
    if (previous := await replayed(uow, key=key, scope="indicators", fingerprint=fingerprint)) is not None:
        return previous
    ind = await service.create_indicator(uow, deps, actor=by(who), data=data,
                                         directory=deps.directory)
    body = orjson.dumps((await indicator_read(uow, deps, ind=ind, description=data.description)).model_dump(mode="json"))
    await remember(uow, key=key, scope="indicators", fingerprint=fingerprint, status_code=201, body=body,
                   media_type="application/json")
    await uow.commit()
    return Response(body, status_code=201, media_type="application/json")


@router.get("/indicators", response_model=Page[schemas.IndicatorRead], tags=["indicators"])
async def list_indicators(
    uow: ReadUoW, deps: Deps, *, paging: Paging,
    department: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    status: Annotated[schemas.Status | None, Query()] = None,
    critical: bool | None = None,
    derived: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="search in code and name")] = None,
) -> Page[schemas.IndicatorRead]:
    stmt = sa.select(Indicator).order_by(Indicator.department_code, Indicator.code)
    if department:
        stmt = stmt.where(Indicator.department_code == department)  # the city's code, exactly
    if kind:
        stmt = stmt.where(Indicator.kind == kind)
    if status:
        stmt = stmt.where(Indicator.status == status)
    if critical is not None:
        stmt = stmt.where(Indicator.critical.is_(critical))
    if derived is not None:
        stmt = stmt.where(Indicator.derived_from.is_not(None) if derived else Indicator.derived_from.is_(None))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(sa.or_(sa.func.lower(Indicator.code).like(like), sa.func.lower(Indicator.name).like(like)))
    items, total = await paginate(uow.session, stmt, paging)
    now = utcnow()
    ids = [i.id for i in items]
    overrides = await service.active_overrides(uow, ids, now)
    texts = dict((await uow.session.execute(
        sa.select(IndicatorDescription.indicator_id, IndicatorDescription.text)
        .where(IndicatorDescription.indicator_id.in_(ids), IndicatorDescription.valid_to.is_(None))
        .order_by(IndicatorDescription.id)
    )).all()) if ids else {}
    out = [await indicator_read(uow, deps, ind=i, override=overrides.get(i.id), description=texts.get(i.id, ""), now=now)
           for i in items]
    return Page(items=out, total=total, page=paging.page, page_size=paging.page_size)


@router.get("/indicators/{code}", response_model=schemas.IndicatorRead, tags=["indicators"])
async def get_indicator(code: str, uow: ReadUoW, deps: Deps) -> schemas.IndicatorRead:
    ind = await service.get_indicator(uow, code)
    overrides = await service.active_overrides(uow, [ind.id], utcnow())
    return await indicator_read(uow, deps, ind=ind, override=overrides.get(ind.id))


@router.patch("/indicators/{code}", response_model=schemas.IndicatorRead, tags=["indicators"])
async def update_indicator(code: str, data: schemas.IndicatorUpdate, uow: UoW, deps: Deps, who: Writer) -> schemas.IndicatorRead:
    ind = await service.update_indicator(uow, deps, actor=by(who), code=code, data=data)
    overrides = await service.active_overrides(uow, [ind.id], utcnow())
    result = await indicator_read(uow, deps, ind=ind, override=overrides.get(ind.id))
    await uow.commit()
    return result


@router.get("/indicators/{code}/descriptions", response_model=list[schemas.DescriptionRead], tags=["indicators"])
async def descriptions(code: str, uow: ReadUoW) -> list[schemas.DescriptionRead]:
    ind = await service.get_indicator(uow, code)
    rows = (await uow.session.execute(
        sa.select(IndicatorDescription).where(IndicatorDescription.indicator_id == ind.id).order_by(IndicatorDescription.id)
    )).scalars()
    return [schemas.DescriptionRead(text=d.text, valid_from=d.valid_from, valid_to=d.valid_to, changed_by=d.changed_by)
            for d in rows]


# --- targets ----------------------------------------------------------------------------


@router.put("/indicators/{code}/targets", response_model=list[schemas.TargetRead], tags=["targets"],
            summary="Set targets for a period, the rest of its fiscal year, a fiscal year, or onward (`applies`)")
async def put_targets(code: str, data: schemas.TargetsIn, uow: UoW, deps: Deps, who: Writer) -> list[schemas.TargetRead]:
    ind = await service.get_indicator(uow, code)
    await service.set_targets(uow, deps, actor=by(who), ind=ind, targets=data.targets)
    result = await _targets(uow, ind)
    await uow.commit()
    return result


@router.get("/indicators/{code}/targets", response_model=list[schemas.TargetRead], tags=["targets"])
async def get_targets(code: str, uow: ReadUoW) -> list[schemas.TargetRead]:
    return await _targets(uow, await service.get_indicator(uow, code))


async def _targets(uow: UoW, ind: Indicator) -> list[schemas.TargetRead]:
    from indicators.models import Target

    rows = (await uow.session.execute(
        sa.select(Target).where(Target.indicator_id == ind.id).order_by(Target.period_start, Target.applies))).scalars()
    return [schemas.TargetRead(period=t.period_label, period_start=t.period_start, fiscal_year=t.fiscal_year,
                               value=t.value, applies=t.applies, set_by=t.set_by, set_at=t.set_at)  # type: ignore[arg-type]
            for t in rows]


# --- overrides and history --------------------------------------------------------------


def _may_judge(who: Principal, ind: Indicator) -> None:
    if (why := may_judge(who, ind.department_code)) is not None:
        raise HTTPException(403, why)


@router.put("/indicators/{code}/override", response_model=schemas.IndicatorRead, tags=["judgement"],
            summary="Staff judgement: set the status (up or down) with a written reason and an expiry")
async def put_override(code: str, data: schemas.OverrideIn, uow: UoW, deps: Deps, who: Writer) -> schemas.IndicatorRead:
    ind = await service.get_indicator(uow, code)
    _may_judge(who, ind)
    o = await service.set_override(uow, deps, actor=by(who), ind=ind, data=data, by=who.actor())
    result = await indicator_read(uow, deps, ind=ind, override=o)
    await uow.commit()
    return result


@router.delete("/indicators/{code}/override", response_model=schemas.IndicatorRead, tags=["judgement"])
async def delete_override(
    code: str, uow: UoW, deps: Deps, who: Writer,
    reason: Annotated[str, Query(min_length=1, max_length=500)] = "cleared by staff",
) -> schemas.IndicatorRead:
    ind = await service.get_indicator(uow, code)
    _may_judge(who, ind)
    await service.clear_override(uow, deps, actor=by(who), ind=ind, reason=reason, by=who.actor())
    result = await indicator_read(uow, deps, ind=ind, override=None)
    await uow.commit()
    return result


@router.get("/indicators/{code}/overrides", response_model=list[schemas.OverrideRead], tags=["judgement"])
async def list_overrides(code: str, uow: ReadUoW) -> list[schemas.OverrideRead]:
    ind = await service.get_indicator(uow, code)
    rows = (await uow.session.execute(
        sa.select(Override).where(Override.indicator_id == ind.id).order_by(Override.id.desc()))).scalars()
    return [_override_read(o) for o in rows]


@router.get("/indicators/{code}/history", response_model=Page[schemas.StatusChangeRead], tags=["judgement"],
            summary="Published status changes, overrides and their reasons, newest first")
async def status_history(code: str, uow: ReadUoW, paging: Paging) -> Page[schemas.StatusChangeRead]:
    ind = await service.get_indicator(uow, code)
    stmt = sa.select(StatusChange).where(StatusChange.indicator_id == ind.id).order_by(StatusChange.id.desc())
    items, total = await paginate(uow.session, stmt, paging)
    return Page(items=[schemas.StatusChangeRead(
        at=h.at, event=h.event, period=h.period_label, previous_status=h.previous_status, status=h.status,
        value=h.value, target=h.target, magnitude=h.magnitude, basis=h.basis, overridden=h.overridden,
        override_reason=h.override_reason, reason=h.reason, episode_id=h.episode_id, actor=h.actor,
        actor_email=h.actor_email, actor_via=h.actor_via,
    ) for h in items], total=total, page=paging.page, page_size=paging.page_size)


@router.get("/departments", response_model=list[schemas.DepartmentRead], tags=["departments"],
            summary="The local copy of the directory's departments")
async def departments(uow: ReadUoW) -> list[schemas.DepartmentRead]:
    rows = (await uow.session.execute(sa.select(Department).order_by(Department.code))).scalars()
    return [schemas.DepartmentRead(code=d.code, name=d.name, cluster_code=d.cluster_code, cluster_name=d.cluster_name,
                                   active=d.active) for d in rows]
