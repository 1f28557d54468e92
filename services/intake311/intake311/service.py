"""intake311 domain logic: keyword-only functions over a UnitOfWork. They change rows, write
status notes and emit events; they never commit (the caller does)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
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
from intake311.models import (
    Calendar,
    Department,
    Feedback,
    Service,
    ServiceRequest,
    StatusNote,
    covering_cells,
    grid_cell,
)
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
    code = data.code.upper()
    dept = await uow.session.get(Department, code)
    if dept is None:  # an api may be storing it from the directory at this moment: no key clash either way
        dept = await uow.add_if_absent(Department, dict(code=code, name=data.name, department_id=data.department_id,
                                                        active=data.active))
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

    @classmethod
    def of(cls, s: Service, timezone: str) -> ServiceEntry:
        return cls(
            service_code=s.service_code, service_name=s.service_name, department_code=s.department_code,
            agency=s.department.name if s.department else s.department_code, type=s.type,
            sla_amount=float(s.sla_amount), sla_unit=s.sla_unit, service_notice=s.service_notice,
            attributes=list(s.attributes or []), calendar=business_calendar(s.calendar, timezone),
        )


@dataclass
class RequestDraft:
    """One validated POST /requests, waiting to be written (possibly with others, see create_requests)."""

    data: NewRequest
    service: ServiceEntry
    channel: str
    author: str
    correlation_id: str | None = None


@dataclass(frozen=True)
class CreatedRequest:
    id: int
    token: str | None
    pending: bool
    service_notice: str
    account_id: str | None
    duplicate_of: int | None


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
            top = (await uow.session.execute(sa.select(sa.func.max(ServiceRequest.id)))).scalar() or 0
            return list(range(top + 1, top + n + 1))
        if len(self._pool) < n:
            rows = await uow.session.execute(_PG_NEXT_IDS, {"n": max(n - len(self._pool), self.block)})
            self._pool.extend(sorted(r[0] for r in rows))
        taken, self._pool = self._pool[:n], self._pool[n:]
        return taken


_PG_NEXT_IDS = sa.text("SELECT nextval(pg_get_serial_sequence('service_requests', 'id')) FROM generate_series(1, :n)")

# PostgreSQL: every draft's duplicate candidates in one statement of fixed text (prepared once):
# the duplicate predicates (see _candidates), per (draft, grid cell) through lateral joins over arrays. No ORDER BY
# ... LIMIT inside (it would tempt the planner to walk a time index instead of the cell one); a
# 50 m circle holds few open requests, and Python keeps the first 50 in time order.
_PG_CANDIDATES = sa.text("""
SELECT q.i, r.id, r.lat, r.long, r.requested_datetime
FROM unnest(CAST(:draft AS INTEGER[]), CAST(:codes AS VARCHAR[]), CAST(:cells AS BIGINT[]),
            CAST(:min_lat AS FLOAT8[]), CAST(:max_lat AS FLOAT8[]), CAST(:min_long AS FLOAT8[]),
            CAST(:max_long AS FLOAT8[]), CAST(:address_ids AS VARCHAR[]))
     AS q(i, code, cell, min_lat, max_lat, min_long, max_long, address_id)
CROSS JOIN LATERAL (
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.cell IS NOT NULL AND s.cell = q.cell AND s.status = 'open' AND s.requested_datetime >= CAST(:since AS TIMESTAMPTZ)
     AND s.lat BETWEEN q.min_lat AND q.max_lat AND s.long BETWEEN q.min_long AND q.max_long
     AND s.service_code = q.code AND NOT s.pending AND s.duplicate_of IS NULL LIMIT 2000)
  UNION ALL
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.cell IS NULL AND q.min_lat IS NOT NULL
     AND s.lat BETWEEN q.min_lat AND q.max_lat AND s.long BETWEEN q.min_long AND q.max_long
     AND s.service_code = q.code AND s.status = 'open' AND NOT s.pending AND s.duplicate_of IS NULL
     AND s.requested_datetime >= CAST(:since AS TIMESTAMPTZ) LIMIT 2000)
  UNION ALL
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.min_lat IS NULL AND s.address_id = q.address_id
     AND s.service_code = q.code AND s.status = 'open' AND NOT s.pending AND s.duplicate_of IS NULL
     AND s.requested_datetime >= CAST(:since AS TIMESTAMPTZ) LIMIT 2000)
) r
""")  # the arrays are bound as they are: asyncpg encodes lists by the CASTs' types


def _nearest(lat: float | None, long: float | None, candidates: list[tuple[int, float | None, float | None]],
             radius_m: float) -> int | None:
    """The choice among candidates in requested order: the nearest within the
    radius (by position), else the first (same address id)."""
    best: tuple[float, int] | None = None
    for rid, rlat, rlong in candidates[:50]:
        if lat is not None and long is not None:
            if rlat is None or rlong is None:
                continue
            d = haversine_m(lat, long, rlat, rlong)
            if d > radius_m:
                continue
        else:
            d = 0.0
        if best is None or d < best[0]:
            best = (d, rid)
    return best[1] if best else None


async def find_duplicates(uow: UnitOfWork, *, drafts: Sequence[RequestDraft], ids: Sequence[int], now: datetime,
                          radius_m: float, window_hours: float) -> list[int | None]:
    """For each new request of a batch, in order, the open request of the same service it
    duplicates: the nearest within the radius and window (an earlier request of the same batch
    counts too: it was reported a moment before), or the first with the same address id."""
    out: list[int | None] = [None] * len(drafts)
    if radius_m <= 0 or window_hours <= 0:
        return out
    looked = [i for i, d in enumerate(drafts)
              if not d.data.first_contact_resolution and (d.data.lat is not None or d.data.address_id)]
    if not looked:
        return out
    since = now - timedelta(hours=window_hours)
    stored: dict[int, list[tuple[int, float | None, float | None]]] = {i: [] for i in looked}
    if uow.dialect == "postgresql":
        lookups: list[tuple[Any, ...]] = []  # (draft, code, cell, min_lat, max_lat, min_long, max_long, address_id)
        for i in looked:
            d, code = drafts[i].data, drafts[i].service.service_code
            if d.lat is not None and d.long is not None:
                around = box_around(d.lat, d.long, radius_m)
                cells: Sequence[int | None] = covering_cells(*around) or [None]
                lookups += [(i, code, cell, *around, d.address_id) for cell in cells]
            else:
                lookups.append((i, code, None, None, None, None, None, d.address_id))
        names = ("draft", "codes", "cells", "min_lat", "max_lat", "min_long", "max_long", "address_ids")
        q = {name: list(column) for name, column in zip(names, zip(*lookups, strict=True), strict=True)}
        found: dict[int, list[tuple[datetime, int, float | None, float | None]]] = {i: [] for i in looked}
        for i, rid, rlat, rlong, at in await uow.session.execute(_PG_CANDIDATES, q | {"since": since}):
            found[i].append((at, rid, rlat, rlong))
        for i, rows in found.items():
            stored[i] = [(rid, rlat, rlong) for _, rid, rlat, rlong in sorted(rows)[:50]]
    else:  # SQLite: in-process, a query per draft costs no round trip
        for i in looked:
            d = drafts[i].data
            stored[i] = await _candidates(uow, service_code=drafts[i].service.service_code, lat=d.lat, long=d.long,
                                          address_id=d.address_id, since=since, radius_m=radius_m)
    for i in looked:
        d, code = drafts[i].data, drafts[i].service.service_code
        box = box_around(d.lat, d.long, radius_m) if d.lat is not None and d.long is not None else None
        same_batch = []  # earlier drafts of this batch that are open originals themselves
        for j in range(i):
            o = drafts[j].data
            if (out[j] is not None or o.first_contact_resolution or drafts[j].service.type == "batch"
                    or drafts[j].service.service_code != code):
                continue
            if box is None:
                near = o.address_id == d.address_id
            else:
                near = o.lat is not None and o.long is not None and box[0] <= o.lat <= box[1] and box[2] <= o.long <= box[3]
            if near:
                same_batch.append((ids[j], o.lat, o.long))
        out[i] = _nearest(d.lat, d.long, stored[i] + same_batch, radius_m)
    return out


async def _candidates(uow: UnitOfWork, *, service_code: str, lat: float | None, long: float | None,
                      address_id: str | None, since: datetime, radius_m: float) -> list[tuple[int, float | None, float | None]]:
    R = ServiceRequest
    stmt = sa.select(R.id, R.lat, R.long).where(
        R.service_code == service_code, R.status == "open", R.pending.is_(False), R.duplicate_of.is_(None),
        R.requested_datetime >= since,
    )
    if lat is not None and long is not None:
        min_lat, max_lat, min_long, max_long = box_around(lat, long, radius_m)
        stmt = stmt.where(R.lat.between(min_lat, max_lat), R.long.between(min_long, max_long))
        cells = covering_cells(min_lat, max_lat, min_long, max_long)
        if cells is not None:  # 1-4 cells of the index on (cell, requested_datetime, ...)
            stmt = stmt.where(R.cell.in_(cells))
    else:
        stmt = stmt.where(R.address_id == address_id)
    return [tuple(r) for r in (await uow.session.execute(stmt.order_by(R.requested_datetime).limit(50))).all()]  # type: ignore[misc]


async def create_requests(
    uow: UnitOfWork, *, drafts: Sequence[RequestDraft], timezone: str, radius_m: float, window_hours: float,
    now: datetime | None = None, numbers: RequestNumbers | None = None,
) -> list[CreatedRequest]:
    """New requests, in one transaction with their first status notes and their events in the
    outbox: rows written with one statement per table however many requests there are."""
    now = now or utcnow()
    tz = ZoneInfo(timezone)
    ids = await (numbers or RequestNumbers()).take(uow, len(drafts))
    duplicates = await find_duplicates(uow, drafts=drafts, ids=ids, now=now, radius_m=radius_m, window_hours=window_hours)
    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    created: list[CreatedRequest] = []
    commitments: dict[str, tuple[datetime, str]] = {}  # one batch, one "now": one per service type
    for draft, rid, duplicate_of in zip(drafts, ids, duplicates, strict=True):
        data, svc = draft.data, draft.service
        if svc.service_code not in commitments:
            due = add_duration(svc.calendar, now, svc.sla_amount, svc.sla_unit)
            commitments[svc.service_code] = (due, commitment_text(due, svc.agency, tz))
        expected, commitment = commitments[svc.service_code]
        batch = svc.type == "batch"
        closed = data.first_contact_resolution
        notices = [n for n in (svc.service_notice,) if n]
        notices.append("Resolved at first contact." if closed else commitment)
        if duplicate_of is not None:
            notices.append(
                f"This looks like request {duplicate_of}, already reported nearby; we linked yours to it "
                "and will update both."
            )
        status = "closed" if closed else "open"
        row: dict[str, Any] = {
            "id": rid, "token": str(uuid.uuid4()) if batch else None, "pending": batch,
            "service_code": svc.service_code, "department_code": svc.department_code, "channel": draft.channel,
            "status": status, "detailed_status": status,
            "closure_reason": (data.closure_reason or "no_further_action") if closed else None,
            "first_contact_resolution": closed, "description": data.description, "lat": data.lat, "long": data.long,
            "cell": grid_cell(data.lat, data.long),
            "address_string": data.address_string, "address_id": data.address_id, "zipcode": data.zipcode,
            "media_url": data.media_url, "email": data.email, "phone": data.phone, "first_name": data.first_name,
            "last_name": data.last_name, "device_id": data.device_id, "account_id": data.account_id,
            "attributes": data.attributes, "service_notice": " ".join(notices),
            "status_notes": (data.status_notes or "Resolved at first contact.") if closed else None,
            "duplicate_of": duplicate_of, "requested_datetime": now, "updated_datetime": now,
            "expected_datetime": expected, "closed_datetime": now if closed else None, "created_by": draft.author,
        }
        rows.append(row)
        text = row["status_notes"] if closed else f"Request received by {draft.channel}."
        notes.append(_note_row(rid, kind="closed" if closed else "created", status=status, author=draft.author,
                               text=text, at=now))
        if duplicate_of is not None:
            notes.append(_note_row(rid, kind="linked", status=status, author="intake311",
                                   text=f"Linked as a duplicate of request {duplicate_of}.", at=now))
        if not batch:
            view = SimpleNamespace(**row)
            uow.emit(RequestCreated(**event_data(view, svc.service_name, "created")),  # type: ignore[arg-type]
                     subject=str(rid), correlation_id=draft.correlation_id)
            if closed:
                uow.emit(RequestClosed(**event_data(view, svc.service_name, "closed")),  # type: ignore[arg-type]
                         subject=str(rid), correlation_id=draft.correlation_id)
        created.append(CreatedRequest(id=rid, token=row["token"], pending=batch, service_notice=row["service_notice"],
                                      account_id=data.account_id, duplicate_of=duplicate_of))
    await uow.insert(ServiceRequest.__table__, rows)  # type: ignore[arg-type]
    await uow.insert(StatusNote.__table__, notes)  # type: ignore[arg-type]
    return created


def _note_row(rid: int, *, kind: str, status: str, author: str, text: str | None, at: datetime) -> dict[str, Any]:
    return {"request_id": rid, "at": at, "kind": kind, "status": status, "author": author, "text": text, "public": True}


async def create_request(
    uow: UnitOfWork, *, data: NewRequest, service: Service | ServiceEntry, channel: str, author: str, timezone: str,
    radius_m: float, window_hours: float, now: datetime | None = None,
) -> ServiceRequest:
    """One new request (create_requests with a batch of one), loaded as its row."""
    entry = service if isinstance(service, ServiceEntry) else ServiceEntry.of(service, timezone)
    draft = RequestDraft(data=data, service=entry, channel=channel, author=author)
    (created,) = await create_requests(uow, drafts=[draft], timezone=timezone, radius_m=radius_m,
                                       window_hours=window_hours, now=now)
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
    if for_update and uow.dialect == "postgresql":
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
