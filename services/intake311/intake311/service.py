"""intake311 domain logic: keyword-only functions over a UnitOfWork. They change rows, write
status notes and emit events; they never commit (the caller does)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from citystat_common.calendar import BusinessCalendar, add_duration
from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.events import (
    DepartmentUpserted,
    RequestClosed,
    RequestCreated,
    RequestFeedback,
    RequestUpdated,
    ServiceRequestData,
)
from citystat_common.uow import UnitOfWork
from intake311 import schemas
from intake311.models import Calendar, Department, Feedback, Service, ServiceRequest, StatusNote
from intake311.open311 import CLOSURE_REASONS, NewRequest, box_around, haversine_m

DETAILED = ("open", "acknowledged", "in_progress", "closed")
UNIT_WORDS = {
    "business_hours": "business hours", "business_days": "business days",
    "calendar_hours": "hours", "calendar_days": "days",
}


# --- calendars and service levels -----------------------------------------------------------


def _hhmm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def business_calendar(cal: Calendar | None, timezone: str) -> BusinessCalendar:
    if cal is None:
        return BusinessCalendar(timezone=timezone)
    return BusinessCalendar(
        timezone=timezone,
        workdays=frozenset(int(d) for d in cal.workdays),
        opens=_hhmm(cal.opens),
        closes=_hhmm(cal.closes),
        holidays=frozenset(date.fromisoformat(d) for d in cal.holidays),
        federal_holidays=cal.federal_holidays,
    )


def expected_datetime(service: Service, requested: datetime, timezone: str) -> datetime:
    """When the service level says the request will be closed."""
    cal = business_calendar(service.calendar, timezone)
    return add_duration(cal, requested, service.sla_amount, service.sla_unit)


def service_level_text(service: Service) -> str:
    amount = service.sla_amount
    n = int(amount) if float(amount).is_integer() else amount
    return f"{n} {UNIT_WORDS.get(service.sla_unit, service.sla_unit)}"


def commitment_text(expected: datetime, agency: str, tz: ZoneInfo) -> str:
    local = expected.astimezone(tz)
    hour = local.strftime("%I:%M %p").lstrip("0")
    return f"Expected by {local.strftime('%A, %B')} {local.day} at {hour} ({agency})."


# --- catalog -------------------------------------------------------------------------------


async def get_service(uow: UnitOfWork, code: str, *, active_only: bool = True) -> Service | None:
    stmt = sa.select(Service).where(Service.service_code == code)
    if active_only:
        stmt = stmt.where(Service.active.is_(True))
    return (await uow.session.execute(stmt)).unique().scalar_one_or_none()


async def require_service(uow: UnitOfWork, code: str) -> Service:
    service = await get_service(uow, code, active_only=False)
    if service is None:
        raise NotFound(f"no service with code {code!r}", field="service_code")
    return service


async def list_services(uow: UnitOfWork, *, active_only: bool = True) -> list[Service]:
    stmt = sa.select(Service).order_by(Service.group_name, Service.service_name)
    if active_only:
        stmt = stmt.where(Service.active.is_(True))
    return list((await uow.session.execute(stmt)).unique().scalars())


async def get_department(uow: UnitOfWork, code: str) -> Department | None:
    return await uow.session.get(Department, code.upper())


async def get_calendar(uow: UnitOfWork, code: str) -> Calendar:
    cal = await uow.session.get(Calendar, code.upper())
    if cal is None:
        raise Invalid(f"no business calendar with code {code!r}", field="service_level.calendar")
    return cal


async def create_service(uow: UnitOfWork, *, data: schemas.ServiceCreate, department: Department) -> Service:
    if await uow.session.get(Service, data.service_code) is not None:
        raise Conflict(f"a service with code {data.service_code!r} exists", field="service_code")
    cal = await get_calendar(uow, data.service_level.calendar)
    service = Service(
        service_code=data.service_code, service_name=data.service_name, description=data.description,
        group_name=data.group, keywords=", ".join(data.keywords), type=data.type, department_code=department.code,
        sla_amount=data.service_level.amount, sla_unit=data.service_level.unit, calendar_code=cal.code,
        service_notice=data.service_notice, attributes=[a.model_dump(mode="json") for a in data.attributes], active=True,
    )
    service.department, service.calendar = department, cal
    uow.session.add(service)
    await uow.flush()
    return service


async def update_service(uow: UnitOfWork, *, code: str, data: schemas.ServiceUpdate, department: Department | None) -> Service:
    service = await require_service(uow, code)
    fields = data.model_dump(exclude_unset=True)
    if "service_name" in fields and data.service_name:
        service.service_name = data.service_name
    if "description" in fields and data.description is not None:
        service.description = data.description
    if "group" in fields and data.group is not None:
        service.group_name = data.group
    if "keywords" in fields and data.keywords is not None:
        service.keywords = ", ".join(data.keywords)
    if "type" in fields and data.type:
        service.type = data.type
    if "service_notice" in fields:
        service.service_notice = data.service_notice
    if "attributes" in fields and data.attributes is not None:
        service.attributes = [a.model_dump(mode="json") for a in data.attributes]
    if "active" in fields and data.active is not None:
        service.active = data.active
    if department is not None:
        service.department_code = department.code
        service.department = department
    if "service_level" in fields and data.service_level is not None:
        cal = await get_calendar(uow, data.service_level.calendar)
        service.sla_amount, service.sla_unit = data.service_level.amount, data.service_level.unit
        service.calendar_code, service.calendar = cal.code, cal
    service.updated_at = utcnow()
    return service


async def put_calendar(uow: UnitOfWork, *, code: str, data: schemas.CalendarPut) -> Calendar:
    cal = await uow.session.get(Calendar, code.upper())
    if cal is None:
        cal = Calendar(code=code.upper())
        uow.session.add(cal)
    cal.name = data.name
    cal.opens, cal.closes = data.opens, data.closes
    cal.workdays = sorted(set(data.workdays))
    cal.holidays = sorted({d.isoformat() for d in data.holidays})
    cal.federal_holidays = data.federal_holidays
    cal.updated_at = utcnow()
    await uow.flush()
    return cal


async def upsert_department(uow: UnitOfWork, data: DepartmentUpserted) -> Department:
    """Keep the local copy of a directory department current (directory.department.upserted)."""
    dept = await uow.session.get(Department, data.code.upper())
    if dept is None:
        dept = Department(code=data.code.upper(), name=data.name, department_id=data.department_id, active=data.active)
        uow.session.add(dept)
    else:
        dept.name, dept.department_id, dept.active = data.name, data.department_id, data.active
        dept.updated_at = utcnow()
    return dept


# --- requests --------------------------------------------------------------------------------


def request_id(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 18 else None


def event_data(req: ServiceRequest, service_name: str, change: str, previous_department: str | None = None) -> dict[str, Any]:
    return {
        "service_request_id": str(req.id),
        "service_code": req.service_code,
        "service_name": service_name,
        "department_code": req.department_code,
        "previous_department_code": previous_department,
        "channel": req.channel,
        "status": req.status,
        "detailed_status": req.detailed_status,
        "requested_datetime": req.requested_datetime,
        "expected_datetime": req.expected_datetime,
        "updated_datetime": req.updated_datetime,
        "closed_datetime": req.closed_datetime,
        "closure_reason": req.closure_reason,
        "first_contact_resolution": req.first_contact_resolution,
        "duplicate_of": str(req.duplicate_of) if req.duplicate_of else None,
        "lat": req.lat,
        "long": req.long,
        "change": change,
    }


def emit(uow: UnitOfWork, cls: type[ServiceRequestData], req: ServiceRequest, service_name: str, change: str,
         previous_department: str | None = None) -> None:
    uow.emit(cls(**event_data(req, service_name, change, previous_department)), subject=str(req.id))


def note(uow: UnitOfWork, req: ServiceRequest, *, kind: str, author: str, text: str | None, at: datetime,
         public: bool = True) -> StatusNote:
    n = StatusNote(request_id=req.id, at=at, kind=kind, status=req.detailed_status, author=author, text=text, public=public)
    uow.session.add(n)
    if public and text:
        req.status_notes = text
    return n


async def find_duplicate(uow: UnitOfWork, *, service_code: str, lat: float | None, long: float | None,
                         address_id: str | None, now: datetime, radius_m: float, window_hours: float) -> int | None:
    """The open request of the same service nearest to the new one, within the radius and window."""
    if radius_m <= 0 or window_hours <= 0 or (lat is None and not address_id):
        return None
    R = ServiceRequest
    stmt = sa.select(R.id, R.lat, R.long).where(
        R.service_code == service_code, R.status == "open", R.pending.is_(False), R.duplicate_of.is_(None),
        R.requested_datetime >= now - timedelta(hours=window_hours),
    )
    if lat is not None and long is not None:
        min_lat, max_lat, min_long, max_long = box_around(lat, long, radius_m)
        stmt = stmt.where(R.lat.between(min_lat, max_lat), R.long.between(min_long, max_long))
    else:
        stmt = stmt.where(R.address_id == address_id)
    rows = (await uow.session.execute(stmt.order_by(R.requested_datetime).limit(50))).all()
    best: tuple[float, int] | None = None
    for rid, rlat, rlong in rows:
        if lat is not None and long is not None:
            d = haversine_m(lat, long, rlat, rlong)
            if d > radius_m:
                continue
        else:
            d = 0.0
        if best is None or d < best[0]:
            best = (d, rid)
    return best[1] if best else None


async def create_request(
    uow: UnitOfWork, *, data: NewRequest, service: Service, channel: str, author: str, timezone: str,
    radius_m: float, window_hours: float, now: datetime | None = None,
) -> ServiceRequest:
    """One transaction: the request row, its first status note and its event(s) in the outbox."""
    now = now or utcnow()
    tz = ZoneInfo(timezone)
    expected = expected_datetime(service, now, timezone)
    agency = service.department.name if service.department else service.department_code
    batch = service.type == "batch"
    duplicate_of = None
    if not data.first_contact_resolution:
        duplicate_of = await find_duplicate(
            uow, service_code=service.service_code, lat=data.lat, long=data.long, address_id=data.address_id,
            now=now, radius_m=radius_m, window_hours=window_hours,
        )
    notices = [n for n in (service.service_notice,) if n]
    if data.first_contact_resolution:
        notices.append("Resolved at first contact.")
    else:
        notices.append(commitment_text(expected, agency, tz))
    if duplicate_of is not None:
        notices.append(
            f"This looks like request {duplicate_of}, already reported nearby; we linked yours to it "
            "and will update both."
        )
    closed = data.first_contact_resolution
    req = ServiceRequest(
        token=str(uuid.uuid4()) if batch else None,
        pending=batch,
        service_code=service.service_code,
        department_code=service.department_code,
        channel=channel,
        status="closed" if closed else "open",
        detailed_status="closed" if closed else "open",
        closure_reason=(data.closure_reason or "no_further_action") if closed else None,
        first_contact_resolution=closed,
        description=data.description,
        lat=data.lat, long=data.long,
        address_string=data.address_string, address_id=data.address_id, zipcode=data.zipcode,
        media_url=data.media_url,
        email=data.email, phone=data.phone, first_name=data.first_name, last_name=data.last_name,
        device_id=data.device_id, account_id=data.account_id,
        attributes=data.attributes,
        service_notice=" ".join(notices),
        status_notes=data.status_notes if closed else None,
        duplicate_of=duplicate_of,
        requested_datetime=now, updated_datetime=now, expected_datetime=expected,
        closed_datetime=now if closed else None,
        created_by=author,
    )
    uow.session.add(req)
    await uow.flush()
    text = f"Request received by {channel}." if not closed else (data.status_notes or "Resolved at first contact.")
    note(uow, req, kind="created" if not closed else "closed", author=author, text=text, at=now, public=True)
    if not closed:
        req.status_notes = None
    if duplicate_of is not None:
        note(uow, req, kind="linked", author="intake311", text=f"Linked as a duplicate of request {duplicate_of}.", at=now)
    if not batch:
        emit(uow, RequestCreated, req, service.service_name, "created")
        if closed:
            emit(uow, RequestClosed, req, service.service_name, "closed")
    return req


async def accept_batch(uow: UnitOfWork, *, limit: int = 500) -> int:
    """Accept the pending requests of batch services: they get their number (visible through
    /tokens/) and their request.created event."""
    R = ServiceRequest
    rows = (
        await uow.session.execute(
            sa.select(R, Service.service_name).join(Service, Service.service_code == R.service_code)
            .where(R.pending.is_(True)).order_by(R.id).limit(limit)
        )
    ).all()
    now = utcnow()
    for req, name in rows:
        req.pending = False
        req.updated_datetime = now
        note(uow, req, kind="accepted", author="intake311", text="Accepted for review.", at=now)
        emit(uow, RequestCreated, req, name, "created")
        if req.status == "closed":
            emit(uow, RequestClosed, req, name, "closed")
    return len(rows)


async def load_request(uow: UnitOfWork, rid: int | str, *, for_update: bool = False) -> tuple[ServiceRequest, Service]:
    num = rid if isinstance(rid, int) else request_id(rid)
    if num is None:
        raise NotFound(f"no service request {rid!r}", field="service_request_id")
    stmt = sa.select(ServiceRequest).where(ServiceRequest.id == num, ServiceRequest.pending.is_(False))
    if for_update and uow.session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    req = (await uow.session.execute(stmt)).scalar_one_or_none()
    if req is None:
        raise NotFound(f"no service request {rid!r}", field="service_request_id")
    service = await get_service(uow, req.service_code, active_only=False)
    assert service is not None
    return req, service


ACTIONS = ("acknowledge", "start", "close", "reopen", "transfer", "note")


async def change(
    uow: UnitOfWork, *, rid: int, action: str, author: str, text: str | None = None, reason: str | None = None,
    department_code: str | None = None, public: bool = True,
) -> ServiceRequest:
    """A lifecycle step: open -> acknowledged -> in_progress -> closed, reopen, transfer, note."""
    req, service = await load_request(uow, rid, for_update=True)
    now = utcnow()
    previous_dept = None
    cls: type[ServiceRequestData] = RequestUpdated
    if action == "acknowledge":
        if req.detailed_status != "open":
            raise Conflict(f"only an open request can be acknowledged; this one is {req.detailed_status}", field="status")
        req.detailed_status = "acknowledged"
        kind, default = "acknowledged", "Your request has been received by the department."
    elif action == "start":
        if req.detailed_status not in ("open", "acknowledged"):
            raise Conflict(f"work cannot start on a request that is {req.detailed_status}", field="status")
        req.detailed_status = "in_progress"
        kind, default = "in_progress", "Work is in progress."
    elif action == "close":
        if req.status == "closed":
            raise Conflict("the request is already closed", field="status")
        if reason not in CLOSURE_REASONS:
            raise Invalid(f"reason must be one of {', '.join(CLOSURE_REASONS)}", field="reason")
        _close(req, reason, now)
        cls = RequestClosed
        kind, default = "closed", f"Closed: {reason.replace('_', ' ')}."
    elif action == "reopen":
        if req.status != "closed":
            raise Conflict("only a closed request can be reopened", field="status")
        req.status, req.detailed_status = "open", "open"
        req.closed_datetime, req.closure_reason = None, None
        req.first_contact_resolution = False
        kind, default = "reopened", "The request has been reopened."
    elif action == "transfer":
        if req.status == "closed":
            raise Conflict("a closed request cannot be transferred; reopen it first", field="status")
        if not department_code:
            raise Invalid("department_code is required", field="department_code")
        dept = await get_department(uow, department_code)
        if dept is None or not dept.active:
            raise Invalid(f"unknown or inactive department {department_code!r}", field="department_code")
        if dept.code == req.department_code:
            raise Conflict(f"the request is already with {dept.code}", field="department_code")
        previous_dept, req.department_code = req.department_code, dept.code
        kind, default = "transferred", f"Transferred to {dept.name}."
    elif action == "note":
        if not text:
            raise Invalid("text is required", field="text")
        kind, default = "note", None
    else:
        raise Invalid(f"unknown action {action!r}", field="action")
    req.updated_datetime = now
    note(uow, req, kind=kind, author=author, text=text or default, at=now, public=public)
    emit(uow, cls, req, service.service_name, kind, previous_dept)
    if action == "close" and reason != "duplicate":
        await _close_duplicates_of(uow, req, service, author, now)
    return req


def _close(req: ServiceRequest, reason: str, now: datetime) -> None:
    req.status, req.detailed_status = "closed", "closed"
    req.closure_reason, req.closed_datetime = reason, now


async def _close_duplicates_of(uow: UnitOfWork, original: ServiceRequest, service: Service, author: str, now: datetime) -> None:
    dups = (
        await uow.session.execute(
            sa.select(ServiceRequest).where(ServiceRequest.duplicate_of == original.id, ServiceRequest.status == "open")
        )
    ).scalars().all()
    for dup in dups:
        _close(dup, "duplicate", now)
        dup.updated_datetime = now
        note(uow, dup, kind="closed", author=author, text=f"Closed with request {original.id}: {original.closure_reason}.", at=now)
        emit(uow, RequestClosed, dup, service.service_name, "closed")


async def link(uow: UnitOfWork, *, rid: int, into: int | None, author: str, text: str | None = None) -> ServiceRequest:
    """Merge ``rid`` into ``into`` (a duplicate, closed as such), or unlink it (``into`` None)."""
    req, service = await load_request(uow, rid, for_update=True)
    now = utcnow()
    if into is None:
        if req.duplicate_of is None:
            raise Conflict("the request is not linked to another", field="duplicate_of")
        previous = req.duplicate_of
        req.duplicate_of = None
        if req.status == "closed" and req.closure_reason == "duplicate":
            req.status, req.detailed_status, req.closed_datetime, req.closure_reason = "open", "open", None, None
        req.updated_datetime = now
        note(uow, req, kind="unlinked", author=author, text=text or f"No longer a duplicate of request {previous}.", at=now)
        emit(uow, RequestUpdated, req, service.service_name, "unlinked")
        return req
    if into == req.id:
        raise Invalid("a request cannot duplicate itself", field="into")
    target, _ = await load_request(uow, into)
    root = target.duplicate_of or target.id  # merge into the original, never into a chain
    if root == req.id:
        raise Conflict(f"request {into} is itself a duplicate of this request", field="into")
    req.duplicate_of = root
    req.updated_datetime = now
    cls: type[ServiceRequestData] = RequestUpdated
    if req.status != "closed":
        _close(req, "duplicate", now)
        cls = RequestClosed
    note(uow, req, kind="merged", author=author, text=text or f"Merged into request {root}.", at=now)
    emit(uow, cls, req, service.service_name, "merged")
    # Requests that pointed at this one now point at the original.
    await uow.session.execute(
        sa.update(ServiceRequest).where(ServiceRequest.duplicate_of == req.id).values(duplicate_of=root)
    )
    return req


async def add_feedback(uow: UnitOfWork, *, rid: int, score: int, comment: str | None, author: str) -> Feedback:
    req, service = await load_request(uow, rid)
    if req.status != "closed":
        raise Conflict("feedback is taken after the request is closed", field="status")
    if await uow.session.get(Feedback, req.id) is not None:
        raise Conflict("feedback for this request was already given", field="service_request_id")
    now = utcnow()
    fb = Feedback(request_id=req.id, score=score, comment=comment, submitted_at=now, submitted_by=author,
                  department_code=req.department_code)
    uow.session.add(fb)
    uow.emit(
        RequestFeedback(
            service_request_id=str(req.id), service_code=req.service_code, department_code=req.department_code,
            score=score, comment=comment, submitted_at=now, closed_datetime=req.closed_datetime,
        ),
        subject=str(req.id),
    )
    return fb


async def notes_for(uow: UnitOfWork, ids: list[int], *, public_only: bool = True) -> dict[int, list[StatusNote]]:
    if not ids:
        return {}
    stmt = sa.select(StatusNote).where(StatusNote.request_id.in_(ids)).order_by(StatusNote.request_id, StatusNote.id)
    if public_only:
        stmt = stmt.where(StatusNote.public.is_(True))
    out: dict[int, list[StatusNote]] = {}
    for n in (await uow.session.execute(stmt)).scalars():
        out.setdefault(n.request_id, []).append(n)
    return out


# --- state for the gauges ---------------------------------------------------------------------


async def backlog(uow: UnitOfWork, now: datetime | None = None) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Open requests and open requests past their expected time, by department."""
    now = now or utcnow()
    R = ServiceRequest
    base = sa.select(R.department_code, sa.func.count()).where(R.status == "open", R.pending.is_(False))
    open_rows = (await uow.session.execute(base.group_by(R.department_code))).all()
    overdue_rows = (
        await uow.session.execute(base.where(R.expected_datetime < now).group_by(R.department_code))
    ).all()
    depts = [d for (d,) in (await uow.session.execute(sa.select(Department.code)))]
    return {d: int(n) for d, n in open_rows}, {d: int(n) for d, n in overdue_rows}, depts
