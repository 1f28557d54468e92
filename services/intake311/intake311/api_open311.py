"""Open311 GeoReport v2 routes, mounted at the root and under /open311/v2.

Every route answers in the format of its extension (.xml or .json) and reports errors as the
spec's error document, never as problem+json: parameters are read from the raw query and body
here (no typed FastAPI parameters, so no RequestValidationError can escape), all problems are
collected, and anything unexpected still becomes an ``errors`` document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from citystat_common.auth import Principal
from citystat_common.db import utcnow
from citystat_common.errors import DomainError, is_database_down
from citystat_common.idempotency import check_key, remember, replayed
from citystat_common.logging import current_correlation_id, get_logger
from citystat_common.uow import UnitOfWork
from citystat_common.web import UoW, get_context
from intake311 import actors, metrics, service
from intake311.channels import first_contact_errors, resolve_channel
from intake311.config import Settings
from intake311.deps import Deps, get_deps, get_front_door
from intake311.models import Department, Service, ServiceRequest, StatusNote, covering_cells
from intake311.open311 import (
    FORMATS,
    Open311Error,
    Params,
    Search,
    error_response,
    fmt_datetime,
    params_from,
    parse_search,
    render,
    validate_new_request,
)
from intake311.reads import requests_with_names

log = get_logger(__name__)
router = APIRouter(tags=["Open311 GeoReport v2"])
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-24T00:00:00Z"
FMT_DOC = "xml or json"


def _settings(request: Request) -> Settings:
    return get_deps(request).settings


def _tz(request: Request) -> ZoneInfo:
    return get_deps(request).tz


async def guarded(fmt: str, action: Callable[[], Awaitable[Response]]) -> Response:
    """Run an Open311 route: the spec's error documents for every failure, whatever raised it."""
    if fmt not in FORMATS:
        return error_response("xml", Open311Error([(404, f"unknown format {fmt!r}: use .xml or .json")]))
    try:
        return await action()
    except Open311Error as exc:
        return error_response(fmt, exc)
    except DomainError as exc:
        code = exc.status if exc.status in (403, 404) else 400
        return error_response(fmt, Open311Error([(code, exc.detail)]))
    except Exception as exc:  # noqa: BLE001 - the spec's error document even for our own faults
        if is_database_down(exc):
            log.error("database_unavailable", error=str(exc))
            resp = error_response(fmt, Open311Error([(503, "the service is temporarily unavailable; retry shortly")]))
            resp.headers["Retry-After"] = "5"
            return resp
        log.exception("open311_unhandled_error")
        return error_response(fmt, Open311Error([(500, "an unexpected error; it has been logged")]))


def query_params(request: Request) -> Params:
    return params_from(request.query_params.multi_items())


def check_jurisdiction(request: Request, params: Params) -> None:
    jid = params.get("jurisdiction_id")
    if jid is not None and jid != _settings(request).jurisdiction_id:
        raise Open311Error([(404, f"jurisdiction_id {jid!r} was not found; this endpoint serves "
                                  f"{_settings(request).jurisdiction_id!r}")])


# --- discovery and services ---------------------------------------------------------------------


@router.get("/discovery.{fmt}", summary="Service discovery", description=FMT_DOC)
async def discovery(request: Request, fmt: str) -> Response:
    async def run() -> Response:
        settings = _settings(request)
        base = str(request.base_url).rstrip("/")
        doc = {
            "changeset": CHANGESET,
            "contact": settings.contact,
            "key_service": settings.key_service,
            "endpoints": [
                {
                    "specification": SPEC_URL,
                    "url": f"{base}/open311/v2",
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return render(fmt, "discovery", doc)

    return await guarded(fmt, run)


def service_doc(s: Service, extensions: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "service_code": s.service_code,
        "service_name": s.service_name,
        "description": s.description,
        "metadata": s.metadata_flag,
        "type": s.type,
        "keywords": s.keywords,
        "group": s.group_name,
    }
    if extensions:
        doc["extended_attributes"] = {
            "department_code": s.department_code,
            "agency_responsible": s.department.name if s.department else s.department_code,
            "service_level": service.service_level_text(s),
        }
    return doc


@router.get("/services.{fmt}", summary="List the service types (GET Service List)", description=FMT_DOC)
async def list_services(request: Request, fmt: str, uow: UoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        extensions = (params.get("extensions") or "").lower() == "true"
        services = await service.list_services(uow)
        return render(fmt, "services", [service_doc(s, extensions) for s in services])

    return await guarded(fmt, run)


def attribute_doc(a: dict[str, Any]) -> dict[str, Any]:
    doc = {
        "variable": a.get("variable", True),
        "code": a["code"],
        "datatype": a["datatype"],
        "required": a.get("required", False),
        "datatype_description": a.get("datatype_description"),
        "order": a.get("order"),
        "description": a.get("description"),
    }
    if a["datatype"] in ("singlevaluelist", "multivaluelist"):
        doc["values"] = [{"key": v["key"], "name": v["name"]} for v in a.get("values") or []]
    return doc


@router.get("/services/{service_code:path}.{fmt}", summary="Service definition (GET Service Definition)", description=FMT_DOC)
async def service_definition(request: Request, service_code: str, fmt: str, uow: UoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        s = await service.get_service(uow, service_code)
        if s is None:
            raise Open311Error([(404, f"service_code {service_code!r} was not found")])
        attrs = sorted(s.attributes or [], key=lambda a: (a.get("order") or 0, a["code"]))
        return render(fmt, "service_definition", {"service_code": s.service_code,
                                                   "attributes": [attribute_doc(a) for a in attrs]})

    return await guarded(fmt, run)


# --- POST /requests ----------------------------------------------------------------------------


async def body_params(request: Request) -> tuple[list[tuple[str, Any]], bytes, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if not raw.strip():
        return [], raw, ctype
    if ctype in ("application/x-www-form-urlencoded", "", "text/plain"):
        try:
            text = raw.decode("utf-8")
            return parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=2000), raw, ctype
        except (UnicodeDecodeError, ValueError) as exc:
            raise Open311Error([(400, f"the form body could not be read: {type(exc).__name__}")]) from exc
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=10, max_fields=2000)
        except Exception as exc:  # noqa: BLE001 - malformed multipart
            raise Open311Error([(400, "the multipart body could not be read")]) from exc
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)], raw, ctype
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Open311Error([(400, f"the JSON body could not be read: {exc}")]) from exc
        if not isinstance(doc, dict):
            raise Open311Error([(400, "the JSON body must be an object of parameters")])
        return list(doc.items()), raw, ctype
    raise Open311Error([(400, f"unsupported content type {ctype!r}: send application/x-www-form-urlencoded "
                              "(the spec's encoding), multipart/form-data or application/json")])


def authenticate(request: Request, params: Params) -> Principal:
    raw = params.get("api_key") or request.headers.get("x-api-key")
    if not raw:
        raise Open311Error([(403, "api_key is required to create a service request")])
    principal = request.app.state.keystore.authenticate(raw)
    if principal is None:
        raise Open311Error([(403, "invalid api_key received -- can't proceed with create_request")])
    if not principal.has("311:submit"):
        raise Open311Error([(403, "this api_key may not create service requests")])
    return principal


def post_response_item(req: service.CreatedRequest, *, with_feedback_token: bool = True) -> dict[str, Any]:
    """The spec's fields, then ``feedback_token``: the reporter's, to rate the request once it is
    closed. Shown once: an Idempotency-Key replay answers without it (only its hash is kept)."""
    item: dict[str, Any] = {}
    if req.pending:
        item["token"] = req.token
    else:
        item["service_request_id"] = str(req.id)
    item["service_notice"] = req.service_notice
    item["account_id"] = req.account_id
    if with_feedback_token:
        item["feedback_token"] = req.feedback_token
    return item


@dataclass
class NewRequestItem:
    """What the POST hands to the group commit: the draft and, with an Idempotency-Key, how to
    remember the answer (in the same transaction as the request)."""

    draft: service.RequestDraft
    idempotency: tuple[str, str, str] | None = None  # key, scope, fingerprint


async def write_new_requests(uow: UnitOfWork, deps: Deps, *, items: Sequence[NewRequestItem],
                             numbers: service.RequestNumbers | None = None) -> list[service.CreatedRequest]:
    """The group commit's write: every waiting POST's request in one unit of work (the caller commits)."""
    created = await service.create_requests(uow, deps, drafts=[i.draft for i in items], numbers=numbers)
    for item, req in zip(items, created, strict=True):
        if item.idempotency:
            key, scope, fingerprint = item.idempotency
            await remember(uow, key=key, scope=scope, fingerprint=fingerprint, status_code=201,
                           body=orjson.dumps([post_response_item(req, with_feedback_token=False)]),
                           media_type="application/json")
    return created


@router.post("/requests.{fmt}", summary="Create a service request (POST Service Request)", status_code=201,
             description="Form-encoded (the spec) or JSON. api_key in the query, the body or X-API-Key. "
                         "Idempotency-Key header for safe retries.")
async def post_request(request: Request, fmt: str) -> Response:
    async def run() -> Response:
        pairs, raw, ctype = await body_params(request)
        params = params_from([*pairs, *request.query_params.multi_items()])
        principal = authenticate(request, params)
        check_jurisdiction(request, params)
        ctx = get_context(request)
        deps, front = get_deps(request), get_front_door(request)
        settings = deps.settings
        key = check_key(request.headers.get("idempotency-key"))
        scope = f"open311:requests:{principal.name}"
        fingerprint = ""
        if key:
            fingerprint = hashlib.sha256(ctype.encode() + b"\n" + request.url.query.encode() + b"\n" + raw).hexdigest()
            async with ctx.uow() as uow:
                previous = await replayed(uow, key=key, scope=scope, fingerprint=fingerprint)
            if previous is not None:
                return _replay(fmt, previous)
        code = params.get("service_code")
        svc = await front.catalog.get(code) if code else None
        data, errors = validate_new_request(params, svc, deps.tz, channels=settings.channels,
                                            closure_reasons=settings.closure_reasons)
        channel, channel_errors = resolve_channel(principal, data.channel if data else params.get("channel"),
                                                  settings.default_channel)
        if data is not None:
            channel_errors += first_contact_errors(channel, data.first_contact_resolution)
        errors += channel_errors
        if errors or data is None or svc is None:
            raise Open311Error(errors)
        draft = service.RequestDraft(data=data, service=svc, channel=channel, author=principal.name, actor=principal.actor(),
                                     correlation_id=current_correlation_id())
        try:
            req = await front.intake.submit(
                NewRequestItem(draft=draft, idempotency=(key, scope, fingerprint) if key else None))
        except IntegrityError:
            if key:  # a concurrent retry with the same key won the race: answer what it stored
                async with ctx.uow() as uow:
                    previous = await replayed(uow, key=key, scope=scope, fingerprint=fingerprint)
                if previous is not None:
                    return _replay(fmt, previous)
            raise
        metrics.REQUESTS_CREATED.labels(svc.service_code, channel, svc.department_code).inc()
        return render(fmt, "service_requests", [post_response_item(req)], status=201)

    return await guarded(fmt, run)


async def post_request_hot(request: Request) -> Response:
    """POST /requests.{fmt} as ``web.HotRoute`` serves it: the same handler, without FastAPI's routing."""
    return await post_request(request, request.path_params["fmt"])


def _replay(fmt: str, previous: Response) -> Response:
    doc = orjson.loads(previous.body)
    return render(fmt, "service_requests", doc, status=previous.status_code, headers={"Idempotent-Replay": "true"})


# --- tokens -------------------------------------------------------------------------------------


@router.get("/tokens/{token}.{fmt}", summary="Service request id from a token (GET request_id from a token)",
            description=FMT_DOC)
async def get_token(request: Request, token: str, fmt: str, uow: UoW) -> Response:
    async def run() -> Response:
        check_jurisdiction(request, query_params(request))
        # matched whole: a token is 36 characters, and "<token>garbage" is not that token
        row = None if len(token) != 36 else (
            await uow.session.execute(
                sa.select(ServiceRequest.id, ServiceRequest.pending).where(ServiceRequest.token == token)
            )
        ).first()
        if row is None:
            raise Open311Error([(404, f"token {token!r} was not found")])
        item: dict[str, Any] = {} if row.pending else {"service_request_id": str(row.id)}
        item["token"] = token
        return render(fmt, "service_requests", [item])

    return await guarded(fmt, run)


# --- GET /requests ------------------------------------------------------------------------------


def public_request(r: ServiceRequest, service_name: str, agency: str | None, tz: ZoneInfo,
                   notes: list[StatusNote] | None, extensions: bool) -> dict[str, Any]:
    """The public shape: no personal data (email, phone, names, device and account ids) ever."""
    doc: dict[str, Any] = {
        "service_request_id": str(r.id),
        "status": r.status,
        "status_notes": r.status_notes,
        "service_name": service_name,
        "service_code": r.service_code,
        "description": r.description,
        "agency_responsible": agency or r.department_code,
        "service_notice": r.service_notice,
        "requested_datetime": fmt_datetime(r.requested_datetime, tz),
        "updated_datetime": fmt_datetime(r.updated_datetime, tz),
        "expected_datetime": fmt_datetime(r.expected_datetime, tz),
        "address": r.address_string,
        "address_id": r.address_id,
        "zipcode": r.zipcode,
        "lat": r.lat,
        "long": r.long,
        "media_url": r.media_url,
    }
    if extensions:
        doc["extended_attributes"] = {
            "channel": r.channel,
            "detailed_status": r.detailed_status,
            "duplicate_of": str(r.duplicate_of) if r.duplicate_of else None,
            "closure_reason": r.closure_reason,
            "first_contact_resolution": r.first_contact_resolution,
            "department_code": r.department_code,
            "closed_datetime": fmt_datetime(r.closed_datetime, tz),
            "legacy_id": r.legacy_id,
        }
        doc["notes"] = [
            {"datetime": fmt_datetime(n.at, tz), "type": n.kind, "status": n.status,
             "author": actors.public_author(n.author, n.author_kind),
             "description": n.text}
            for n in notes or []
        ]
    return doc


def search_stmt(s: Search, now: datetime) -> sa.Select:  # type: ignore[type-arg]
    import math

    R = ServiceRequest
    stmt = (
        requests_with_names()
        .where(R.pending.is_(False))
    )
    if s.ids is not None:
        return stmt.where(R.id.in_(s.ids or [-1])).order_by(R.id)
    if s.legacy_id is not None:
        return stmt.where(R.legacy_id == s.legacy_id).order_by(R.id)
    conds: list[Any] = []  # the filters on service_requests alone: also those of the per-cell queries below
    if s.service_codes is not None:
        conds.append(R.service_code.in_(s.service_codes or [""]))
    if s.start is not None:
        conds.append(R.requested_datetime >= s.start)
    if s.end is not None:
        conds.append(R.requested_datetime <= s.end)
    if s.statuses:
        conds.append(R.status.in_(s.statuses))
    if s.updated_after is not None:
        conds.append(R.updated_datetime > s.updated_after)
    if s.updated_before is not None:
        conds.append(R.updated_datetime <= s.updated_before)
    cells: set[int] | None = None  # covering every area given; None: no area, or a large one

    def also_in(more: list[int] | None) -> set[int] | None:
        # bbox and lat/long/radius together: either cell list covers their intersection
        return cells if more is None else set(more) if cells is None else cells & set(more)

    if s.bbox:
        min_long, min_lat, max_long, max_lat = s.bbox
        conds += [R.lat.between(min_lat, max_lat), R.long.between(min_long, max_long)]
        cells = also_in(covering_cells(min_lat, max_lat, min_long, max_long))
    if s.near:
        lat, lon, radius = s.near
        kx = 111_320.0 * math.cos(math.radians(lat))
        ky = 110_574.0
        dlat, dlon = radius / ky, radius / max(1.0, kx)
        conds += [
            R.lat.between(lat - dlat, lat + dlat), R.long.between(lon - dlon, lon + dlon),
            ((R.lat - lat) * ky) * ((R.lat - lat) * ky) + ((R.long - lon) * kx) * ((R.long - lon) * kx) <= radius * radius,
        ]
        cells = also_in(covering_cells(lat - dlat, lat + dlat, lon - dlon, lon + dlon))
    if s.agency:
        # without the join (departments.code is unique), so the per-cell queries below can use it too
        conds.append(sa.or_(R.department_code == s.agency, R.department_code.in_(
            sa.select(Department.code).where(sa.func.lower(Department.name) == s.agency.lower()))))
    stmt = stmt.where(*conds)
    if (s.updated_after or s.updated_before) and s.start is None and s.end is None:
        return stmt.order_by(R.updated_datetime, R.id)  # incremental sync: stable, oldest change first
    order = (R.requested_datetime.desc(), R.id.desc())
    wanted = s.page * s.page_size
    if cells is not None and not cells:
        return stmt.where(sa.false()).order_by(*order)  # the bbox and the circle do not meet
    if cells is not None and wanted <= 1_000:  # deeper pages read the area through the plain predicates
        # Area search: the newest `wanted` matches of each covering cell through the index on (cell,
        # requested_datetime, id, ...), merged; the page is the newest `wanted` of those. Reads
        # about `wanted` rows whatever the table size, where one index range over the area would
        # read (and sort) every match in it. Built per request: Core columns, one shared WHERE and
        # columns named as text, because SQLAlchemy's column collections of a many-armed union
        # cost about a millisecond.
        t, m = R.__table__.c, sa.literal_column
        where = sa.and_(R.pending.is_(False), *conds)
        per_cell: list[Any] = [sa.select(m("*")).select_from(
                        sa.select(t.id, t.requested_datetime).where(t.cell == c, where)
                        .order_by(t.requested_datetime.desc(), t.id.desc()).limit(wanted).subquery())
                    for c in sorted(cells)]
        merged = sa.union_all(*per_cell).subquery("merged") if len(per_cell) > 1 else per_cell[0].subquery("merged")
        newest: Any = (sa.select(m("merged.id")).select_from(merged)
                  .order_by(m("merged.requested_datetime").desc(), m("merged.id").desc()).limit(wanted))
        stmt = stmt.where(R.id.in_(newest))
    elif cells is not None:
        stmt = stmt.where(R.cell.in_(sorted(cells)))
    return stmt.order_by(*order)


async def run_search(uow: UoW, s: Search, tz: ZoneInfo) -> list[dict[str, Any]]:
    stmt = search_stmt(s, utcnow()).offset((s.page - 1) * s.page_size).limit(s.page_size)
    rows = (await uow.session.execute(stmt)).all()
    notes = await service.notes_for(uow, [r[0].id for r in rows]) if s.extensions else {}
    return [public_request(r, name, agency, tz, notes.get(r.id), s.extensions) for r, name, agency in rows]


@router.get("/requests.{fmt}", summary="Search service requests (GET Service Requests)",
            description="service_request_id (comma list, overrides the rest), service_code, start_date, end_date "
                        "(90 days at most; default the last 90), status. Extensions: legacy_id (an imported request's "
                        "number in the previous system, exactly; overrides the rest), page, page_size, updated_after, "
                        "updated_before, agency_responsible, bbox=min_long,min_lat,max_long,max_lat, lat+long+radius "
                        "(metres), extensions=true.")
async def list_requests(request: Request, fmt: str, uow: UoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        settings = _settings(request)
        tz = ZoneInfo(settings.city_timezone)
        search, errors = parse_search(params, utcnow(), tz, settings.max_results)
        if errors:
            raise Open311Error(errors)
        return render(fmt, "service_requests", await run_search(uow, search, tz))

    return await guarded(fmt, run)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request (GET Service Request)",
            description=FMT_DOC + "; extensions=true adds extended_attributes and notes")
async def get_request(request: Request, service_request_id: str, fmt: str, uow: UoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        rid = service.request_id(service_request_id)
        extensions = (params.get("extensions") or "").lower() == "true"
        docs = await run_search(uow, Search(ids=[rid] if rid is not None else [], extensions=extensions), _tz(request))
        if not docs:
            raise Open311Error([(404, f"service_request_id {service_request_id!r} was not found")])
        return render(fmt, "service_requests", docs)

    return await guarded(fmt, run)
