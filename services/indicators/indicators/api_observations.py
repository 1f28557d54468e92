"""Indicators REST API, observations: one value, the time series, revisions, the summary and the
bulk write (JSON or CSV, all or nothing). The registry, targets and judgement routes are in ``api``."""

from __future__ import annotations

import math
from datetime import date
from operator import itemgetter
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response

from citystat_common.bodies import RowsBody, read_rows
from citystat_common.errors import Invalid
from citystat_common.web import ReadUoW, UoW
from indicators import schemas, service
from indicators import summary as ytd
from indicators.api import Writer, _today
from indicators.deps import Deps, IndicatorsDeps
from indicators.models import Indicator, ObservationRevision
from indicators.people import by
from indicators.periods import period_of
from indicators.states import row_state

router = APIRouter()


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
    # committed before the stored row is read back for the answer: the status event leaves as
    # soon as it is stored, not after the read (the breach-to-ticket path starts here)
    await uow.commit()
    rows = await service.series(uow, ind, start=p.start, end=p.start, fy0=settings.fiscal_year_start_month)
    return _obs_read(rows[0])


@router.get("/indicators/{code}/observations", response_model=list[schemas.ObservationRead], tags=["observations"],
            summary="The time series with the status at each point")
async def get_observations(
    code: str, uow: ReadUoW, deps: Deps,
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
async def get_revisions(code: str, period: str, uow: ReadUoW, deps: Deps) -> list[schemas.RevisionRead]:
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
async def get_summary(code: str, uow: ReadUoW, deps: Deps,
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
BULK_BODY = RowsBody(key="observations", header=BULK_HEADER, required=frozenset({"indicator_code", "period", "value"}),
                     empty="no rows")


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
    docs, problem = read_rows(await request.body(), request.headers.get("content-type"), BULK_BODY)
    errors = [problem] if problem else []
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
