"""The non-Open311 API (RFC 9457 problem details): catalog admin (scope 311:admin), the staff view
with personal data (scope staff), the request lifecycle (scope 311:write), feedback and bulk export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from citystat_common.auth import Principal, can_see_personal_data, require_scope
from citystat_common.bounds import RANGE_TEXT
from citystat_common.db import utcnow
from citystat_common.directory import DirectoryUnreachable
from citystat_common.errors import Invalid, NotFound
from citystat_common.filters import where_given
from citystat_common.idempotency import create_once
from citystat_common.logging import get_logger
from citystat_common.pagination import Page, Paging, page_of, paginate
from citystat_common.web import ReadUoW, UoW, get_context
from intake311 import actors, areas_store, catalog_admin, lifecycle, metrics, schemas, service
from intake311.deps import Deps, Intake311Deps, get_deps, get_front_door
from intake311.feedback import add_feedback
from intake311.models import Calendar, Department, Feedback, Service, ServiceRequest, StatusNote
from intake311.open311 import MAX_RANGE, parse_datetime
from intake311.open311_documents import fmt_datetime
from intake311.reads import requests_with_names
from intake311.service_definition import service_reads

log = get_logger(__name__)
router = APIRouter()
Admin = Annotated[Principal, require_scope("311:admin")]
Staff = Annotated[Principal, require_scope("staff")]
Writer = Annotated[Principal, require_scope("311:write")]  # the staff lifecycle
Submitter = Annotated[Principal, require_scope("311:submit")]  # resident-facing apps (311:write implies it)
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="retry-safe creation")]


# --- catalog admin --------------------------------------------------------------------------------


async def _rule_departments(request: Request, uow: UoW, rules: list[schemas.DepartmentRule]) -> dict[str, Department]:
    """Each department a rule names, known and active (as the owner is checked)."""
    return {r.department_code: await resolve_department(request, uow, r.department_code, f"department_rules[{i}].department_code")
            for i, r in enumerate(rules)}


async def resolve_department(request: Request, uow: UoW, code: str, field: str = "department_code") -> Department:
    """The owning department: the local copy (from directory.changes), else ask the directory."""
    dept = await service.get_department(uow, code)
    if dept is not None:
        if not dept.active:
            raise Invalid(f"department {code!r} is inactive in the directory", field=field)
        return dept
    directory = get_deps(request).departments
    try:
        if directory is None:
            raise DirectoryUnreachable("this process has no directory client")
        doc = await directory.get(code)
    except DirectoryUnreachable as exc:
        raise Invalid(
            f"department {code!r} is not known locally and the directory could not be asked", field=field
        ) from exc
    if doc is None:
        raise Invalid(f"department {code!r} does not exist in the directory", field=field)
    if not doc.get("active", True):
        raise Invalid(f"department {code!r} is inactive in the directory", field=field)
    # The directory's own event may be landing through the consumer right now: keep whichever
    # row is stored first rather than fail on the key.
    return await uow.add_if_absent(Department, dict(code=doc["code"], name=doc.get("name", code), department_id=doc.get("id"),
                                                    active=True))


@router.get("/admin/services", response_model=list[schemas.ServiceAdminRead], tags=["catalog admin"])
async def admin_list_services(uow: ReadUoW, deps: Intake311Deps, _: Admin, include_inactive: bool = True) -> list[schemas.ServiceAdminRead]:
    return await service_reads(uow, services=await service.list_services(uow, active_only=not include_inactive), now=deps.now())


def catalog_changed(request: Request) -> None:
    """This process's POST path reads the catalog from memory: reload it after a catalog write."""
    get_front_door(request).catalog.invalidate()


@router.post("/admin/services", status_code=201, response_model=schemas.ServiceAdminRead, tags=["catalog admin"])
async def admin_create_service(
    data: schemas.ServiceCreate, uow: UoW, deps: Intake311Deps, who: Admin, request: Request, key: IdemKey = None
) -> Response:
    created: list[Service] = []  # empty when the key replays an earlier creation

    async def build() -> schemas.ServiceAdminRead:
        dept = await resolve_department(request, uow, data.department_code)
        s = await catalog_admin.create_service(uow, deps, data=data, department=dept, actor=who.actor(),
                                               rule_departments=await _rule_departments(request, uow, data.department_rules))
        created.append(s)
        (read,) = await service_reads(uow, services=[s], now=deps.now())
        return read

    response = await create_once(uow, request, key=key, scope="admin:services", build=build)
    if created:
        catalog_changed(request)
        log.info("service_created", service_code=created[0].service_code, by=who.actor().label)
    return response


@router.get("/admin/services/{service_code:path}", response_model=schemas.ServiceAdminRead, tags=["catalog admin"])
async def admin_get_service(service_code: str, uow: ReadUoW, deps: Intake311Deps, _: Admin) -> schemas.ServiceAdminRead:
    (read,) = await service_reads(uow, services=[await service.require_service(uow, service_code)], now=deps.now())
    return read


@router.patch("/admin/services/{service_code:path}", response_model=schemas.ServiceAdminRead, tags=["catalog admin"])
async def admin_update_service(
    service_code: str, data: schemas.ServiceUpdate, uow: UoW, deps: Intake311Deps, who: Admin, request: Request
) -> schemas.ServiceAdminRead:
    dept = await resolve_department(request, uow, data.department_code) if data.department_code else None
    s = await catalog_admin.update_service(uow, deps, code=service_code, data=data, department=dept, actor=who.actor(),
                                           rule_departments=await _rule_departments(request, uow, data.department_rules or []))
    (result,) = await service_reads(uow, services=[s], now=deps.now())
    await uow.commit()
    catalog_changed(request)
    return result


@router.delete("/admin/services/{service_code:path}", status_code=204, tags=["catalog admin"],
               summary="Retire a service (hidden from /services; its requests are kept)")
async def admin_retire_service(service_code: str, uow: UoW, deps: Intake311Deps, who: Admin, request: Request) -> Response:
    await catalog_admin.update_service(uow, deps, code=service_code, data=schemas.ServiceUpdate(active=False), department=None,
                                       actor=who.actor())
    await uow.commit()
    catalog_changed(request)
    return Response(status_code=204)


def calendar_read(c: Calendar) -> schemas.CalendarRead:
    return schemas.CalendarRead(code=c.code, name=c.name, opens=c.opens, closes=c.closes, workdays=c.workdays,
                                holidays=c.holidays, federal_holidays=c.federal_holidays,
                                changed_by=schemas.ActorRead(**c.changed_by) if c.changed_by else None)


@router.get("/admin/calendars", response_model=list[schemas.CalendarRead], tags=["catalog admin"])
async def admin_calendars(uow: ReadUoW, _: Admin) -> list[schemas.CalendarRead]:
    rows = (await uow.session.execute(sa.select(Calendar).order_by(Calendar.code))).scalars()
    return [calendar_read(c) for c in rows]


@router.put("/admin/calendars/{code}", response_model=schemas.CalendarRead, tags=["catalog admin"],
            summary="Create or replace a business calendar (working hours, days, holidays)")
async def admin_put_calendar(
    code: str, data: schemas.CalendarPut, uow: UoW, deps: Intake311Deps, who: Admin, request: Request
) -> schemas.CalendarRead:
    if not schemas.CALENDAR_RE.match(code.upper()):
        raise Invalid("calendar code: 2-40 letters, digits and _", field="code")
    result = calendar_read(await catalog_admin.put_calendar(uow, deps, code=code, data=data, actor=who.actor()))
    await uow.commit()
    catalog_changed(request)
    return result


@router.get("/admin/departments", response_model=list[schemas.DepartmentRead], tags=["catalog admin"],
            summary="The local copy of the directory's departments")
async def admin_departments(uow: ReadUoW, _: Admin) -> list[schemas.DepartmentRead]:
    rows = (await uow.session.execute(sa.select(Department).order_by(Department.code))).scalars()
    return [schemas.DepartmentRead.model_validate(d) for d in rows]


# --- staff view and lifecycle ---------------------------------------------------------------------


def staff_read(r: ServiceRequest, service_name: str, agency: str | None, *, personal: bool,
               notes: list[StatusNote] | None = None, feedback: Feedback | None = None) -> schemas.StaffRequestRead:
    now = utcnow()
    hide = (lambda v: v) if personal else (lambda v: None)
    return schemas.StaffRequestRead(
        service_request_id=str(r.id), token=r.token, status=r.status, detailed_status=r.detailed_status,
        closure_reason=r.closure_reason, first_contact_resolution=r.first_contact_resolution,
        service_code=r.service_code, service_name=service_name, department_code=r.department_code,
        agency_responsible=agency or r.department_code, channel=r.channel, description=r.description,
        status_notes=r.status_notes, service_notice=r.service_notice, lat=r.lat, long=r.long,
        address=r.address_string, address_id=r.address_id, zipcode=r.zipcode, media_url=r.media_url,
        attributes=r.attributes or {}, email=hide(r.email), phone=hide(r.phone), first_name=hide(r.first_name),
        last_name=hide(r.last_name), device_id=hide(r.device_id), account_id=hide(r.account_id),
        duplicate_of=str(r.duplicate_of) if r.duplicate_of else None,
        requested_datetime=r.requested_datetime, updated_datetime=r.updated_datetime,
        expected_datetime=r.expected_datetime, closed_datetime=r.closed_datetime,
        overdue=bool(r.status == "open" and r.expected_datetime and r.expected_datetime < now),
        created_by=r.created_by, created_by_kind=r.created_by_kind,  # type: ignore[arg-type]
        created_by_email=r.created_by_email, filed_by=actors.label(r.created_by, r.created_by_kind),
        notes=[note_read(n) for n in notes or []],
        feedback=schemas.FeedbackRead(service_request_id=str(r.id), score=feedback.score, comment=feedback.comment,
                                      submitted_at=feedback.submitted_at) if feedback else None,
    )


def note_read(n: StatusNote) -> schemas.NoteRead:
    return schemas.NoteRead(
        datetime=n.at, type=n.kind, status=n.status, author=n.author, author_kind=n.author_kind,  # type: ignore[arg-type]
        author_email=n.author_email, author_via=n.author_via, by=actors.label(n.author, n.author_kind),  # type: ignore[arg-type]
        summary=actors.history_line(n.kind, n.author, n.author_kind), description=n.text, public=n.public,
    )


def _rid(value: str) -> int:
    rid = service.request_id(value)
    if rid is None:
        raise NotFound(f"no service request {value!r}", field="service_request_id")
    return rid


async def full_read(uow: UoW, rid: int, *, personal: bool) -> schemas.StaffRequestRead:
    req, svc = await service.load_request(uow, rid)
    dept = await service.get_department(uow, req.department_code)
    notes = (await service.notes_for(uow, [req.id], public_only=False)).get(req.id, [])
    fb = await uow.session.get(Feedback, req.id)
    return staff_read(req, svc.service_name, dept.name if dept else None, personal=personal, notes=notes, feedback=fb)


@router.get("/staff/requests", response_model=Page[schemas.StaffRequestRead], tags=["staff"],
            summary="Service requests with personal data (staff scope)")
async def staff_list(
    uow: ReadUoW, paging: Paging, _: Staff,
    status: Literal["open", "closed"] | None = None,
    detailed_status: Literal["open", "acknowledged", "in_progress", "closed"] | None = None,
    department: Annotated[str | None, Query(max_length=40)] = None,
    service_code: Annotated[str | None, Query(max_length=40)] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    overdue: bool | None = None,
    duplicates_of: Annotated[str | None, Query(max_length=20, description="requests linked to this one")] = None,
) -> Page[schemas.StaffRequestRead]:
    R = ServiceRequest
    stmt = (
        requests_with_names()
        .order_by(R.requested_datetime.desc(), R.id.desc())
    )
    stmt = where_given(stmt, (R.status, status), (R.detailed_status, detailed_status),
                       (R.department_code, department), (R.service_code, service_code), (R.channel, channel))
    if overdue is not None:
        late = sa.and_(R.status == "open", R.expected_datetime < utcnow())
        stmt = stmt.where(late if overdue else sa.not_(late))
    if duplicates_of:
        stmt = stmt.where(R.duplicate_of == _rid(duplicates_of))
    rows, total = await paginate(uow.session, stmt, paging)
    return page_of([staff_read(r, name, agency, personal=True) for r, name, agency in rows], total, paging)


@router.get("/staff/requests/{service_request_id}", response_model=schemas.StaffRequestRead, tags=["staff"])
async def staff_get(service_request_id: str, uow: ReadUoW, _: Staff) -> schemas.StaffRequestRead:
    return await full_read(uow, _rid(service_request_id), personal=True)


async def _act(uow: UoW, deps: Deps, *, who: Principal, service_request_id: str, action: str,
               **kw: Any) -> schemas.StaffRequestRead:
    rid = _rid(service_request_id)
    await lifecycle.change(uow, deps, rid=rid, action=action, who=who, **kw)
    await uow.commit()
    return await full_read(uow, rid, personal=can_see_personal_data(who))


@router.post("/staff/requests/{service_request_id}/acknowledge", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def acknowledge(service_request_id: str, uow: UoW, deps: Intake311Deps, who: Writer,
                     body: schemas.ActionBody | None = None) -> schemas.StaffRequestRead:
    body = body or schemas.ActionBody()
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="acknowledge", text=body.text, public=body.public)


@router.post("/staff/requests/{service_request_id}/start", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def start(service_request_id: str, uow: UoW, deps: Intake311Deps, who: Writer,
               body: schemas.ActionBody | None = None) -> schemas.StaffRequestRead:
    body = body or schemas.ActionBody()
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="start", text=body.text, public=body.public)


@router.post("/staff/requests/{service_request_id}/close", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def close(service_request_id: str, body: schemas.CloseBody, uow: UoW, deps: Intake311Deps, who: Writer) -> schemas.StaffRequestRead:
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="close", text=body.text, reason=body.reason, public=body.public)


@router.post("/staff/requests/{service_request_id}/reopen", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def reopen(service_request_id: str, uow: UoW, deps: Intake311Deps, who: Writer,
                body: schemas.ActionBody | None = None) -> schemas.StaffRequestRead:
    body = body or schemas.ActionBody()
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="reopen", text=body.text, public=body.public)


@router.post("/staff/requests/{service_request_id}/transfer", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def transfer(
    service_request_id: str, body: schemas.TransferBody, uow: UoW, deps: Intake311Deps, who: Writer, request: Request
) -> schemas.StaffRequestRead:
    await resolve_department(request, uow, body.department_code)
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="transfer", text=body.text, department_code=body.department_code,
                      public=body.public)


@router.post("/staff/requests/{service_request_id}/notes", response_model=schemas.StaffRequestRead, tags=["lifecycle"])
async def add_note(service_request_id: str, body: schemas.NoteBody, uow: UoW, deps: Intake311Deps, who: Writer) -> schemas.StaffRequestRead:
    return await _act(uow, deps, who=who, service_request_id=service_request_id, action="note", text=body.text, public=body.public)


@router.post("/staff/requests/{service_request_id}/merge", response_model=schemas.StaffRequestRead, tags=["duplicates"],
             summary="Mark as a duplicate of another request (closed as duplicate)")
async def merge(service_request_id: str, body: schemas.MergeBody, uow: UoW, who: Writer) -> schemas.StaffRequestRead:
    rid = _rid(service_request_id)
    into = service.request_id(body.into)
    if into is None:
        raise Invalid(f"no service request {body.into!r}", field="into")
    await lifecycle.link(uow, rid=rid, into=into, who=who, text=body.text)
    await uow.commit()
    return await full_read(uow, rid, personal=can_see_personal_data(who))


@router.post("/staff/requests/{service_request_id}/unlink", response_model=schemas.StaffRequestRead, tags=["duplicates"],
             summary="No longer a duplicate (reopened if it was closed as one)")
async def unlink(service_request_id: str, uow: UoW, who: Writer) -> schemas.StaffRequestRead:
    rid = _rid(service_request_id)
    await lifecycle.link(uow, rid=rid, into=None, who=who)
    await uow.commit()
    return await full_read(uow, rid, personal=can_see_personal_data(who))


@router.post("/requests/{service_request_id}/feedback", status_code=201, response_model=schemas.FeedbackRead,
             tags=["feedback"], summary="The resident's satisfaction (1-5) and comment, after closure")
async def feedback(service_request_id: str, body: schemas.FeedbackBody, uow: UoW, who: Submitter) -> schemas.FeedbackRead:
    fb = await add_feedback(uow, rid=_rid(service_request_id), token=body.feedback_token, score=body.score,
                            comment=body.comment, author=who.name)
    await uow.commit()
    metrics.FEEDBACK_SCORE.labels(fb.department_code).observe(fb.score)
    return schemas.FeedbackRead(service_request_id=str(fb.request_id), score=fb.score, comment=fb.comment,
                                submitted_at=fb.submitted_at)


# --- bulk export -------------------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "service_request_id", "requested_datetime", "updated_datetime", "expected_datetime", "closed_datetime",
    "status", "detailed_status", "closure_reason", "first_contact_resolution", "service_code", "service_name",
    "agency_responsible", "department_code", "channel", "description", "address", "address_id", "zipcode",
    "lat", "long", "media_url", "duplicate_of",
]
MAX_EXPORT_RANGE = timedelta(days=366)


def _safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/export/requests.csv", tags=["export"], response_class=StreamingResponse,
            summary="Bulk CSV of requests by requested date (GeoReport bulk style, no personal data), streamed")
async def export_csv(
    request: Request,
    start_date: Annotated[str | None, Query(description="ISO 8601; default end_date minus 90 days")] = None,
    end_date: Annotated[str | None, Query(description="ISO 8601; default now")] = None,
) -> StreamingResponse:
    ctx = get_context(request)
    tz = get_deps(request).tz
    try:
        end = parse_datetime(end_date, tz) if end_date else utcnow()
        start = parse_datetime(start_date, tz) if start_date else end - MAX_RANGE
    except ValueError as exc:
        raise Invalid(f"start_date and end_date must be ISO 8601 dates or times {RANGE_TEXT}", field="start_date") from exc
    if end < start:
        raise Invalid("end_date must not be before start_date", field="end_date")
    if end - start > MAX_EXPORT_RANGE:
        raise Invalid("an export may span at most 366 days", field="end_date")
    R = ServiceRequest
    async with ctx.uow() as uow:  # issue 21: a column per boundary layer, area_<layer>
        layers = await areas_store.layer_names(uow)
    stmt = areas_store.export_area_columns(
        requests_with_names()
        .where(R.pending.is_(False), R.requested_datetime >= start, R.requested_datetime <= end)
        .order_by(R.requested_datetime, R.id)
        .execution_options(yield_per=500), layers)

    # The query starts before the response does: a database that is down is a 503, not a 200 with
    # an empty file (once rows are flowing, a failure can only cut the file short).
    session = ctx.sessions()
    try:
        result = await session.stream(stmt)
    except BaseException:
        await session.close()
        raise

    async def rows() -> AsyncIterator[bytes]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXPORT_COLUMNS + [f"area_{layer}" for layer in layers])
        async with session:
            async for r, name, agency, *area_codes in result:
                writer.writerow([
                    r.id, fmt_datetime(r.requested_datetime, tz), fmt_datetime(r.updated_datetime, tz),
                    fmt_datetime(r.expected_datetime, tz), fmt_datetime(r.closed_datetime, tz), r.status,
                    r.detailed_status, r.closure_reason or "", "true" if r.first_contact_resolution else "false",
                    r.service_code, name, agency or r.department_code, r.department_code, r.channel,
                    _safe(r.description or ""), _safe(r.address_string or ""), _safe(r.address_id or ""), r.zipcode or "",
                    "" if r.lat is None else r.lat, "" if r.long is None else r.long, r.media_url or "",
                    r.duplicate_of or "", *(code or "" for code in area_codes),
                ])
                if buf.tell() > 64 * 1024:
                    yield buf.getvalue().encode()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue().encode()

    filename = f"requests-{start.date().isoformat()}-{end.date().isoformat()}.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})

