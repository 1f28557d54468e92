"""Open311 GeoReport v2 routes, mounted at the root and under /open311/v2.

Every route answers in the format of its extension (.xml or .json) and reports errors as the
spec's error document, never as problem+json: parameters are read from the raw query and body
here (no typed FastAPI parameters, so no RequestValidationError can escape), all problems are
collected, and anything unexpected still becomes an ``errors`` document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from citystat_common.asgi import BODY_SCOPE_KEY
from citystat_common.auth import Principal
from citystat_common.db import utcnow
from citystat_common.errors import DomainError, is_database_down
from citystat_common.idempotency import check_key, replayed
from citystat_common.logging import current_correlation_id, get_logger
from citystat_common.web import ReadUoW, get_context
from intake311 import areas, metrics, service
from intake311.channels import first_contact_errors, resolve_channel
from intake311.config import Settings
from intake311.deps import get_deps, get_front_door
from intake311.intake import NewRequestItem, post_response_item
from intake311.models import ServiceRequest
from intake311.open311 import Params, params_from, validate_new_request
from intake311.open311_documents import (
    FORMATS,
    Open311Error,
    attribute_doc,
    error_response,
    render,
    service_doc,
)
from intake311.open311_search import Search, parse_search, run_search

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


@router.get("/services.{fmt}", summary="List the service types (GET Service List)", description=FMT_DOC)
async def list_services(request: Request, fmt: str, uow: ReadUoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        extensions = (params.get("extensions") or "").lower() == "true"
        services = await service.list_services(uow)
        return render(fmt, "services", [service_doc(s, extensions) for s in services])

    return await guarded(fmt, run)


@router.get("/services/{service_code:path}.{fmt}", summary="Service definition (GET Service Definition)", description=FMT_DOC)
async def service_definition(request: Request, service_code: str, fmt: str, uow: ReadUoW) -> Response:
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
    raw = request.scope.get(BODY_SCOPE_KEY)  # already read by the middlewares (citystat_common.asgi)
    if raw is None:
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
async def get_token(request: Request, token: str, fmt: str, uow: ReadUoW) -> Response:
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


@router.get("/requests.{fmt}", summary="Search service requests (GET Service Requests)",
            description="service_request_id (comma list, overrides the rest), service_code, start_date, end_date "
                        "(90 days at most; default the last 90), status. Extensions: legacy_id (an imported request's "
                        "number in the previous system, exactly; overrides the rest), page, page_size, updated_after, "
                        "updated_before, agency_responsible, bbox=min_long,min_lat,max_long,max_lat, lat+long+radius "
                        "(metres), area=LAYER:CODE (repeat or comma list: codes of one layer are alternatives, "
                        "layers all apply; issue 21), extensions=true (adds areas and outside_areas).")
async def list_requests(request: Request, fmt: str, uow: ReadUoW) -> Response:
    async def run() -> Response:
        params = query_params(request)
        check_jurisdiction(request, params)
        settings = _settings(request)
        tz = ZoneInfo(settings.city_timezone)
        search, errors = parse_search(params, utcnow(), tz, settings.max_results)
        if wanted := request.query_params.getlist("area"):  # issue 21: repeated, so not in params
            search.areas, area_errors = areas.parse_area_filter(wanted, await get_front_door(request).areas.layers(uow))
            errors += [(400, e) for e in area_errors]
        if errors:
            raise Open311Error(errors)
        return render(fmt, "service_requests", await run_search(uow, search, tz))

    return await guarded(fmt, run)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request (GET Service Request)",
            description=FMT_DOC + "; extensions=true adds extended_attributes and notes")
async def get_request(request: Request, service_request_id: str, fmt: str, uow: ReadUoW) -> Response:
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
