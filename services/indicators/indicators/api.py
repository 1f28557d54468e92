"""Indicators REST API: thin routers over ``service``; the router owns the commit."""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime
from operator import itemgetter
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response

from citystat_common.auth import Principal, require_scope
from citystat_common.db import utcnow
from citystat_common.errors import Invalid
from citystat_common.idempotency import check_key, remember, replayed, request_fingerprint
from citystat_common.pagination import Page, Paging, paginate
from citystat_common.web import UoW
from indicators import schemas, service
from indicators import summary as ytd
from indicators.config import Settings
from indicators.deps import Deps, IndicatorsDeps
from indicators.evaluation import default_rules
from indicators.models import (
    Department,
    Indicator,
    IndicatorDescription,
    ObservationRevision,
    Override,
    StatusChange,
)
from indicators.people import by, may_judge
from indicators.periods import DEFAULT_GRACE_DAYS, period_of
from indicators.states import indicator_state, row_state

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
    uow: UoW, deps: Deps, *, paging: Paging,
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
async def get_indicator(code: str, uow: UoW, deps: Deps) -> schemas.IndicatorRead:
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
async def descriptions(code: str, uow: UoW) -> list[schemas.DescriptionRead]:
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
async def get_targets(code: str, uow: UoW) -> list[schemas.TargetRead]:
    return await _targets(uow, await service.get_indicator(uow, code))


async def _targets(uow: UoW, ind: Indicator) -> list[schemas.TargetRead]:
    from indicators.models import Target

    rows = (await uow.session.execute(
        sa.select(Target).where(Target.indicator_id == ind.id).order_by(Target.period_start, Target.applies))).scalars()
    return [schemas.TargetRead(period=t.period_label, period_start=t.period_start, fiscal_year=t.fiscal_year,
                               value=t.value, applies=t.applies, set_by=t.set_by, set_at=t.set_at)  # type: ignore[arg-type]
            for t in rows]


# --- observations -----------------------------------------------------------------------


def _obs_read(r: dict[str, Any]) -> schemas.ObservationRead:
    return schemas.ObservationRead(
        period=r["period_label"], period_start=r["period_start"], period_end=r["period_end"], value=r["value"],
        target=r.get("target"), reference=r["reference"], status=r["status"], raw_status=r["raw_status"],
        state=row_state(r["status"], r["value"]),
        miss=r["miss"], streak=r["streak"], reason=r["reason"], revision=r["revision"], note=r["note"],
        source=r["source"], updated_by=r["updated_by"], updated_at=r["updated_at"],
    )


@router.post("/indicators/{code}/observations", response_model=schemas.ObservationRead, tags=["observations"],
             summary="Store one value; idempotent on (indicator, period): a resubmission replaces it")
async def post_observation(code: str, data: schemas.ObservationIn, uow: UoW, deps: Deps, who: Writer) -> schemas.ObservationRead:
    settings = deps.settings
    ind = await service.get_indicator(uow, code)
    if ind.formula:
        raise Invalid("this indicator is computed by its formula", field="code")
    try:
        p = service._period_cached(ind.frequency, data.period, settings.fiscal_year_start_month)
    except ValueError as exc:
        raise Invalid(str(exc), field="period") from exc
    if p.start > _today(settings):
        raise Invalid(f"{p.label} has not started yet", field="period")
    if (err := service.validate_value(ind.unit, data.value)) is not None:
        raise Invalid(err, field="value")
    await service.record_observations(uow, deps, items=[service.ObsIn(ind, p, data.value, data.note)],
                                      actor=by(who), source="api")
    rows = await service.series(uow, ind, start=p.start, end=p.start, fy0=settings.fiscal_year_start_month)
    await uow.commit()
    return _obs_read(rows[0])


@router.get("/indicators/{code}/observations", response_model=list[schemas.ObservationRead], tags=["observations"],
            summary="The time series with the status at each point")
async def get_observations(
    code: str, uow: UoW, deps: Deps,
    start: Annotated[str | None, Query(alias="from", description="first period (label or date)")] = None,
    end: Annotated[str | None, Query(alias="to", description="last period (label or date)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[schemas.ObservationRead]:
    settings = deps.settings
    ind = await service.get_indicator(uow, code)
    bounds: list[date | None] = []
    for name, text in (("from", start), ("to", end)):
        try:
            bounds.append(service._period_cached(ind.frequency, text, settings.fiscal_year_start_month).start
                          if text else None)
        except ValueError as exc:
            raise Invalid(str(exc), field=name) from exc
    rows = await service.series(uow, ind, start=bounds[0], end=bounds[1], limit=limit,
                                fy0=settings.fiscal_year_start_month)
    return [_obs_read(r) for r in rows]


@router.get("/indicators/{code}/observations/{period}/revisions", response_model=list[schemas.RevisionRead],
            tags=["observations"])
async def get_revisions(code: str, period: str, uow: UoW, deps: Deps) -> list[schemas.RevisionRead]:
    ind = await service.get_indicator(uow, code)
    try:
        p = service._period_cached(ind.frequency, period, deps.settings.fiscal_year_start_month)
    except ValueError as exc:
        raise Invalid(str(exc), field="period") from exc
    rows = (await uow.session.execute(
        sa.select(ObservationRevision)
        .where(ObservationRevision.indicator_id == ind.id, ObservationRevision.period_start == p.start)
        .order_by(ObservationRevision.id)
    )).scalars()
    return [schemas.RevisionRead(old_value=r.old_value, new_value=r.new_value, changed_by=r.changed_by,
                                 changed_at=r.changed_at, source=r.source) for r in rows]


@router.get("/indicators/{code}/summary", response_model=schemas.SummaryRead, tags=["observations"],
            summary="A period's value and status, fiscal year-to-date, and the same period last year")
async def get_summary(code: str, uow: UoW, deps: Deps,
                      period: Annotated[str | None, Query(description="default: the latest period with data")] = None
                      ) -> schemas.SummaryRead:
    settings = deps.settings
    ind = await service.get_indicator(uow, code)
    fy0 = settings.fiscal_year_start_month
    try:
        if period:
            p = service._period_cached(ind.frequency, period, fy0)
        elif ind.latest_period_start:
            p = period_of(ind.frequency, ind.latest_period_start, fy0)
        else:
            p = period_of(ind.frequency, _today(settings), fy0)
    except ValueError as exc:
        raise Invalid(str(exc), field="period") from exc
    return await ytd.summary(uow, deps, ind=ind, period=p)


BULK_HEADER = "indicator_code,period,value[,note]"


@router.post(
    "/observations/bulk", response_model=schemas.BulkResult, tags=["observations"],
    summary="Many values in one call, all or nothing",
    description=(
        "JSON: a list of {indicator_code, period, value[, note]} or {\"observations\": [...]}; "
        f"CSV (text/csv) with the header `{BULK_HEADER}`. Idempotent on (indicator, period): a "
        "resubmission replaces the value and keeps the revision. Nothing is stored unless every row is valid."
    ),
    responses={422: {"model": schemas.BulkResult}},
)
async def bulk_observations(request: Request, uow: UoW, deps: Deps, who: Writer) -> Response:
    settings = deps.settings
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    docs, errors = _parse_bulk(raw, ctype)
    result = schemas.BulkResult(received=len(docs))
    if len(docs) > settings.bulk_max_rows:
        errors.append({"row": 0, "field": "body", "message": f"at most {settings.bulk_max_rows} rows per call"})
    items: list[service.ObsIn] = []
    if not errors:
        items, errors = await _resolve_bulk(uow, deps, docs=docs)
    if errors:
        result.ok = False
        result.errors = errors[:1000]
        return Response(result.model_dump_json(), status_code=422, media_type="application/json")
    rec = await service.record_observations(uow, deps, items=items, actor=by(who), source="bulk")
    await uow.commit()
    result.inserted, result.updated, result.unchanged, result.indicators = rec.inserted, rec.updated, rec.unchanged, rec.indicators
    return Response(result.model_dump_json(), status_code=200, media_type="application/json")


def _parse_bulk(raw: bytes, ctype: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if ctype in ("text/csv", "application/csv"):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return [], [{"row": 0, "field": "body", "message": "CSV must be UTF-8"}]
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"indicator_code", "period", "value"} <= set(reader.fieldnames):
            return [], [{"row": 0, "field": "body", "message": f"expected the CSV header {BULK_HEADER}"}]
        return list(reader), []
    if ctype in ("application/json", ""):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [], [{"row": 0, "field": "body", "message": f"not JSON: {exc}"}]
        doc = doc.get("observations") if isinstance(doc, dict) else doc
        if not isinstance(doc, list):
            return [], [{"row": 0, "field": "body", "message": "expected a list or {\"observations\": [...]}"}]
        if not doc:
            return [], [{"row": 0, "field": "body", "message": "no rows"}]
        return doc, []
    return [], [{"row": 0, "field": "content-type", "message": "send application/json or text/csv"}]


async def _resolve_bulk(uow: UoW, deps: IndicatorsDeps, *, docs: list[Any]) -> tuple[list[service.ObsIn], list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    try:  # the common case, every row an object with a code; the loop below reports any other
        codes = set(map(itemgetter("indicator_code"), docs))
    except (TypeError, KeyError):
        codes = {c for d in docs if isinstance(d, dict) and isinstance(c := d.get("indicator_code"), str)}
    code_list = [c for c in codes if isinstance(c, str)]
    inds: dict[str, Indicator] = {}
    for i in range(0, len(code_list), 500):
        for ind in (await uow.session.execute(sa.select(Indicator).where(Indicator.code.in_(code_list[i : i + 500])))).scalars():
            inds[ind.code] = ind
    fy0 = deps.settings.fiscal_year_start_month
    # Per indicator once (the loop below runs once per row): its plain attributes, the accepted
    # value range of its unit, and its parsed periods (text -> Period, or the error message).
    facts: dict[str, tuple[Indicator, str, str, bool, float, float, dict[str, Any]]] = {}
    periods: dict[str, dict[str, Any]] = {}
    for ind_code, ind in inds.items():
        lo, hi = service.UNIT_RANGE.get(ind.unit, (-math.inf, math.inf))
        facts[ind_code] = (ind, ind.frequency, ind.unit, bool(ind.formula), lo, hi, periods.setdefault(ind.frequency, {}))
    allowed = {"indicator_code", "period", "value", "note"}
    today = _today(deps.settings)
    isfinite = math.isfinite
    ObsIn = service.ObsIn
    items: list[service.ObsIn] = []
    for n, d in enumerate(docs, start=1):
        if not isinstance(d, dict):
            errors.append({"row": n, "field": "row", "message": "must be an object"})
            continue
        if not (len(d) == 3 and "value" in d and "period" in d and "indicator_code" in d) and (
                len(d) > 4 or not d.keys() <= allowed):  # the usual three fields first: cheaper
            errors.append({"row": n, "field": sorted(set(d) - allowed or {"row"})[0], "message": "unknown field"})
            continue
        code = d.get("indicator_code")
        fact = facts.get(code) if isinstance(code, str) else None
        if fact is None:
            errors.append({"row": n, "field": "indicator_code", "message": f"no indicator {code!r}"})
            continue
        ind, frequency, unit, is_formula, lo, hi, known = fact
        if is_formula:
            errors.append({"row": n, "field": "indicator_code", "message": "computed by its formula"})
            continue
        text = d.get("period", "")
        if type(text) is not str:
            text = str(text)
        if (p := known.get(text)) is None:
            try:
                p = service._period_cached(frequency, text, fy0)
                if p.start > today:
                    p = f"{p.label} has not started yet"
            except ValueError as exc:
                p = str(exc)
            known[text] = p
        if type(p) is str:
            errors.append({"row": n, "field": "period", "message": p})
            continue
        value = d.get("value")
        if type(value) is not float:
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    value = math.nan
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append({"row": n, "field": "value", "message": "must be a number"})
                continue
        if not (lo <= value <= hi and isfinite(value)) and (err := service.validate_value(unit, value)) is not None:
            errors.append({"row": n, "field": "value", "message": err})
            continue
        note = d.get("note") or None
        # p is a Period here (the error texts went on above); no isinstance per row on this path
        items.append(ObsIn(ind, p, float(value), str(note)[:2000] if note else None))  # type: ignore[arg-type]
    return items, errors


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
async def list_overrides(code: str, uow: UoW) -> list[schemas.OverrideRead]:
    ind = await service.get_indicator(uow, code)
    rows = (await uow.session.execute(
        sa.select(Override).where(Override.indicator_id == ind.id).order_by(Override.id.desc()))).scalars()
    return [_override_read(o) for o in rows]


@router.get("/indicators/{code}/history", response_model=Page[schemas.StatusChangeRead], tags=["judgement"],
            summary="Published status changes, overrides and their reasons, newest first")
async def status_history(code: str, uow: UoW, paging: Paging) -> Page[schemas.StatusChangeRead]:
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
async def departments(uow: UoW) -> list[schemas.DepartmentRead]:
    rows = (await uow.session.execute(sa.select(Department).order_by(Department.code))).scalars()
    return [schemas.DepartmentRead(code=d.code, name=d.name, cluster_code=d.cluster_code, cluster_name=d.cluster_name,
                                   active=d.active) for d in rows]
