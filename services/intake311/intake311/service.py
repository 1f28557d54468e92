"""intake311 domain logic: keyword-only functions over a UnitOfWork. They change rows, write
status notes and emit events; they never commit (the caller does)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.calendar import BusinessCalendar
from citystat_common.db import sqlite_fetch_all, utcnow
from citystat_common.errors import NotFound
from citystat_common.events import (
    DepartmentUpserted,
    RequestClosed,
    RequestCreated,
    ServiceRequestData,
)
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from intake311.actors import filed_by, key_actor, note_author
from intake311.areas_store import request_area_rows
from intake311.deps import Deps
from intake311.duplicates import find_duplicates, request_address_key
from intake311.feedback import new_feedback_token
from intake311.models import (
    Calendar,
    Department,
    RequestArea,
    Service,
    ServiceRequest,
    StatusNote,
    grid_cell,
)
from intake311.open311 import NewRequest
from intake311.ownership import owner
from intake311.service_levels import BeyondHorizon, Level, due_datetime, pick_level

log = get_logger(__name__)
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
    """When the service level says the request will be closed (BeyondHorizon: it cannot say)."""
    cal = business_calendar(service.calendar, timezone)
    return due_datetime(cal, requested, service.sla_amount, service.sla_unit)


def service_level_text(service: Service) -> str:
    amount = service.sla_amount
    n = int(amount) if float(amount).is_integer() else amount
    return f"{n} {UNIT_WORDS.get(service.sla_unit, service.sla_unit)}"


def commitment_text(expected: datetime, agency: str, tz: ZoneInfo) -> str:
    local = expected.astimezone(tz)
    hour = local.strftime("%I:%M %p").lstrip("0")
    return f"Expected by {local.strftime('%A, %B')} {local.day} at {hour} ({agency})."


def no_commitment_text(agency: str) -> str:
    return f"{agency} will tell you when to expect it."


def duplicate_text(original: int) -> str:
    return (f"This looks like request {original}, already reported nearby; we linked yours to it "
            "and will update both.")


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
    return await uow.session.get(Department, code)  # the city's code, exactly (citystat_common.codes)


async def upsert_department(uow: UnitOfWork, data: DepartmentUpserted) -> Department:
    """Keep the local copy of a directory department current (directory.department.upserted)."""
    code = data.code
    dept = await uow.session.get(Department, code)
    if dept is None:  # an api may be storing it from the directory at this moment: no key clash either way
        dept = await uow.add_if_absent(Department, dict(code=code, name=data.name, department_id=data.department_id,
                                                        active=data.active))
    dept.name, dept.department_id, dept.active = data.name, data.department_id, data.active
    dept.updated_at = utcnow()
    return dept


# --- requests --------------------------------------------------------------------------------


def request_id(value: str) -> int | None:
    """A request number written as it is issued: ASCII digits, no sign, spaces or leading zeros (an
    id is matched whole, so "7 " or "007" is not request 7)."""
    ok = value.isascii() and value.isdigit() and len(value) < 18 and (value == "0" or value[0] != "0")
    return int(value) if ok else None


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


def note(uow: UnitOfWork, req: ServiceRequest, *, kind: str, actor: Actor | None, text: str | None, at: datetime,
         public: bool = True) -> StatusNote:
    """A step in the request's history, by ``actor`` (None: intake311 itself)."""
    n = StatusNote(request_id=req.id, at=at, kind=kind, status=req.detailed_status, text=text, public=public,
                   **note_author(actor))
    uow.session.add(n)
    if public and text:
        req.status_notes = text
    return n


@dataclass(frozen=True)
class ServiceEntry:
    """A service type as creating a request needs it: a snapshot detached from any session (the
    intake path keeps these in memory, see ``intake311.catalog``)."""

    service_code: str
    service_name: str
    department_code: str
    agency: str  # the department's name, for the service notice
    type: str
    sla_amount: float
    sla_unit: str
    service_notice: str | None
    attributes: list[dict[str, Any]]
    calendar: BusinessCalendar
    sla_rules: tuple[dict[str, Any], ...] = ()
    duplicates: dict[str, Any] | None = None  # duplicates.policy reads it; None: the settings
    department_rules: tuple[dict[str, Any], ...] = ()  # intake311.ownership

    @classmethod
    def of(cls, s: Service, timezone: str) -> ServiceEntry:
        return cls(
            service_code=s.service_code, service_name=s.service_name, department_code=s.department_code,
            agency=s.department.name if s.department else s.department_code, type=s.type,
            sla_amount=float(s.sla_amount), sla_unit=s.sla_unit, service_notice=s.service_notice,
            attributes=list(s.attributes or []), calendar=business_calendar(s.calendar, timezone),
            sla_rules=tuple(s.sla_rules or ()), duplicates=s.duplicate_policy,
            department_rules=tuple(s.department_rules or ()),
        )


@dataclass
class RequestDraft:
    """One validated POST /requests, waiting to be written (possibly with others, see create_requests)."""

    data: NewRequest
    service: ServiceEntry
    channel: str
    author: str  # a key's name, when no actor is given
    correlation_id: str | None = None
    actor: Actor | None = None  # who filed it: a person (a call-taker's page) or the key
    # geography (issue 21), set by areas_index.AreaIndex.locate: layer -> (version id, area code or
    # None: outside every area); None: no layer loaded. location_note: how an address-only report was placed
    areas: dict[str, tuple[int, str | None]] | None = None
    location_note: str | None = None

    @property
    def filer(self) -> Actor:
        return self.actor or key_actor(self.author)


@dataclass(frozen=True)
class CreatedRequest:
    id: int
    token: str | None
    pending: bool
    service_notice: str
    account_id: str | None
    duplicate_of: int | None
    feedback_token: str | None = None  # returned once to the reporter; only its hash is stored


class RequestNumbers:
    """New request numbers, in order, before the rows exist (a duplicate in the same batch names its
    original's number in its notice). PostgreSQL: drawn from the table's sequence in blocks, so a
    process asks once per ``block`` requests (numbers of a block never used are skipped, as a
    sequence always allows). SQLite: max + 1 under the transaction's write lock (BEGIN IMMEDIATE)."""

    def __init__(self, block: int = 1):
        self.block = block
        self._pool: list[int] = []

    async def take(self, uow: UnitOfWork, n: int) -> list[int]:
        if uow.dialect != "postgresql":
            top = (await sqlite_fetch_all(uow.session, _MAX_ID))[0][0] or 0
            return list(range(top + 1, top + n + 1))
        if len(self._pool) < n:
            rows = await uow.session.execute(_PG_NEXT_IDS, {"n": max(n - len(self._pool), self.block)})
            self._pool.extend(sorted(r[0] for r in rows))
        taken, self._pool = self._pool[:n], self._pool[n:]
        return taken


_MAX_ID = sa.text("SELECT max(id) FROM service_requests")  # fixed text: no statement built per batch
_PG_NEXT_IDS = sa.text("SELECT nextval(pg_get_serial_sequence('service_requests', 'id')) FROM generate_series(1, :n)")

async def create_requests(
    uow: UnitOfWork, deps: Deps, *, drafts: Sequence[RequestDraft], now: datetime | None = None,
    numbers: RequestNumbers | None = None,
) -> list[CreatedRequest]:
    """New requests, in one transaction with their first status notes and their events in the
    outbox: rows written with one statement per table however many requests there are."""
    now = now or deps.now()
    tz = deps.tz
    ids = await (numbers or RequestNumbers()).take(uow, len(drafts))
    duplicates = await find_duplicates(uow, drafts=drafts, ids=ids, now=now, radius_m=deps.settings.duplicate_radius_m,
                                       window_hours=deps.settings.duplicate_window_hours)
    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    area_rows: list[dict[str, Any]] = []
    created: list[CreatedRequest] = []
    # one batch, one "now": one commitment per service type and level (its own or a rule's)
    commitments: dict[tuple[str, int, str], tuple[datetime | None, str]] = {}
    for draft, rid, duplicate_of in zip(drafts, ids, duplicates, strict=True):
        data, svc = draft.data, draft.service
        level, rule = pick_level(Level(svc.sla_amount, svc.sla_unit), svc.sla_rules, data.attributes)
        dept_code, agency = owner((svc.department_code, svc.agency), svc.department_rules, data.attributes,
                                  area_codes(draft.areas))  # the areas as tagged now, at intake
        if (svc.service_code, rule, dept_code) not in commitments:
            commitments[(svc.service_code, rule, dept_code)] = _commitment(svc, level, now, tz, agency)
        expected, commitment = commitments[(svc.service_code, rule, dept_code)]
        batch = svc.type == "batch"
        closed = data.first_contact_resolution
        notices = [n for n in (svc.service_notice,) if n]
        notices.append("Resolved at first contact." if closed else commitment)
        if duplicate_of is not None:
            notices.append(duplicate_text(duplicate_of))
        status = "closed" if closed else "open"
        token, token_hash = new_feedback_token()
        row: dict[str, Any] = {
            "id": rid, "token": str(uuid.uuid4()) if batch else None, "pending": batch,
            "service_code": svc.service_code, "department_code": dept_code, "channel": draft.channel,
            "status": status, "detailed_status": status,
            "closure_reason": (data.closure_reason or "no_further_action") if closed else None,
            "first_contact_resolution": closed, "description": data.description, "lat": data.lat, "long": data.long,
            "cell": grid_cell(data.lat, data.long),
            "address_string": data.address_string, "address_id": data.address_id,
            "address_key": request_address_key(data), "zipcode": data.zipcode,
            "media_url": data.media_url, "email": data.email, "phone": data.phone, "first_name": data.first_name,
            "last_name": data.last_name, "device_id": data.device_id, "account_id": data.account_id,
            "attributes": data.attributes, "service_notice": " ".join(notices),
            "status_notes": (data.status_notes or "Resolved at first contact.") if closed else None,
            "duplicate_of": duplicate_of, "requested_datetime": now, "updated_datetime": now,
            "expected_datetime": expected, "closed_datetime": now if closed else None, **filed_by(draft.filer),
            "feedback_token_hash": token_hash,
        }
        rows.append(row)
        text = row["status_notes"] if closed else f"Request received by {draft.channel}."
        notes.append(_note_row(rid, kind="closed" if closed else "created", status=status, actor=draft.filer,
                               text=text, at=now))
        if draft.location_note:  # issue 21: placed from the address list, or why not
            notes.append(_note_row(rid, kind="located" if data.lat is not None else "not_located", status=status,
                                   actor=None, text=draft.location_note, at=now))
        area_rows += request_area_rows(rid, draft.areas or {})
        if duplicate_of is not None:
            notes.append(_note_row(rid, kind="linked", status=status, actor=None,
                                   text=f"Linked as a duplicate of request {duplicate_of}.", at=now))
        if not batch:
            view = SimpleNamespace(**row)
            areas = area_codes(draft.areas)
            uow.emit(RequestCreated(**event_data(view, svc.service_name, "created"), areas=areas),  # type: ignore[arg-type]
                     subject=str(rid), correlation_id=draft.correlation_id)
            if closed:
                uow.emit(RequestClosed(**event_data(view, svc.service_name, "closed"), areas=areas),  # type: ignore[arg-type]
                         subject=str(rid), correlation_id=draft.correlation_id)
        created.append(CreatedRequest(id=rid, token=row["token"], pending=batch, service_notice=row["service_notice"],
                                      account_id=data.account_id, duplicate_of=duplicate_of, feedback_token=token))
    await uow.insert(ServiceRequest.__table__, rows)  # type: ignore[arg-type]
    await uow.insert(StatusNote.__table__, notes)  # type: ignore[arg-type]
    await uow.insert(RequestArea.__table__, area_rows)  # type: ignore[arg-type]
    return created


def area_codes(tags: dict[str, tuple[int, str | None]] | None) -> dict[str, str | None] | None:
    """The event's ``areas``: layer -> code (None: outside); None when no layer is loaded."""
    return None if tags is None else {layer: code for layer, (_, code) in tags.items()}


def _commitment(svc: ServiceEntry, level: Level, now: datetime, tz: ZoneInfo, agency: str) -> tuple[datetime | None, str]:
    try:
        due = due_datetime(svc.calendar, now, level.amount, level.unit)
    except BeyondHorizon:
        # a level saved before the checks (or edited in the database): take the request, promise nothing
        log.warning("service_level_beyond_horizon", service_code=svc.service_code, amount=level.amount, unit=level.unit)
        return None, no_commitment_text(agency)
    return due, commitment_text(due, agency, tz)


def _note_row(rid: int, *, kind: str, status: str, actor: Actor | None, text: str | None, at: datetime) -> dict[str, Any]:
    return {"request_id": rid, "at": at, "kind": kind, "status": status, **note_author(actor), "text": text, "public": True}


async def create_request(
    uow: UnitOfWork, deps: Deps, *, data: NewRequest, service: Service | ServiceEntry, channel: str, author: str,
    now: datetime | None = None, actor: Actor | None = None,
) -> ServiceRequest:
    """One new request (create_requests with a batch of one), loaded as its row."""
    entry = service if isinstance(service, ServiceEntry) else ServiceEntry.of(service, deps.timezone)
    draft = RequestDraft(data=data, service=entry, channel=channel, author=author, actor=actor)
    (created,) = await create_requests(uow, deps, drafts=[draft], now=now)
    req = await uow.session.get(ServiceRequest, created.id)
    assert req is not None
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
        note(uow, req, kind="accepted", actor=None, text="Accepted for review.", at=now)
        emit(uow, RequestCreated, req, name, "created")
        if req.status == "closed":
            emit(uow, RequestClosed, req, name, "closed")
    return len(rows)


async def load_request(uow: UnitOfWork, rid: int | str, *, for_update: bool = False) -> tuple[ServiceRequest, Service]:
    num = rid if isinstance(rid, int) else request_id(rid)
    if num is None:
        raise NotFound(f"no service request {rid!r}", field="service_request_id")
    stmt = sa.select(ServiceRequest).where(ServiceRequest.id == num, ServiceRequest.pending.is_(False))
    if for_update and uow.dialect == "postgresql":
        stmt = stmt.with_for_update()
    req = (await uow.session.execute(stmt)).scalar_one_or_none()
    if req is None:
        raise NotFound(f"no service request {rid!r}", field="service_request_id")
    service = await get_service(uow, req.service_code, active_only=False)
    assert service is not None
    return req, service


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
