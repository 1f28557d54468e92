"""A department's queue: its requests, newest first, with their history, filtered by status and
service; what the queue page lists (intake311.pages). No commit, no HTTP."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import sqlalchemy as sa

from citystat_common.pagination import count
from citystat_common.uow import UnitOfWork
from intake311 import service
from intake311.models import Department, Service, ServiceRequest, StatusNote
from intake311.reads import requests_with_names

STATUSES = ("open", "acknowledged", "in_progress", "closed")  # detailed_status
PAGE_SIZE = 25


@dataclass
class QueueItem:
    request: ServiceRequest
    service_name: str
    department_name: str
    notes: list[StatusNote] = field(default_factory=list)


@dataclass
class Queue:
    items: list[QueueItem]
    total: int
    page: int
    pages: int


async def department_queue(
    uow: UnitOfWork, *, departments: Collection[str] | None, status: str | None = None,
    service_code: str | None = None, page: int = 1, page_size: int = PAGE_SIZE,
) -> Queue:
    """The requests of ``departments`` (None: every department's)."""
    R = ServiceRequest
    stmt = (
        requests_with_names()
        .where(R.pending.is_(False))
    )
    if departments is not None:
        stmt = stmt.where(R.department_code.in_(sorted(departments) or [""]))
    if status:
        stmt = stmt.where(R.detailed_status == status)
    if service_code:
        stmt = stmt.where(R.service_code == service_code)
    total = await count(uow.session, stmt)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    rows = (await uow.session.execute(
        stmt.order_by(R.requested_datetime.desc(), R.id.desc()).offset((page - 1) * page_size).limit(page_size))).all()
    notes = await service.notes_for(uow, [r.id for r, _, _ in rows], public_only=False)
    items = [QueueItem(r, name, agency or r.department_code, notes.get(r.id, [])) for r, name, agency in rows]
    return Queue(items=items, total=total, page=page, pages=pages)


async def services_of(uow: UnitOfWork, departments: Collection[str] | None) -> list[tuple[str, str]]:
    """(code, name) of the services a queue can be filtered by: those its departments own."""
    stmt = sa.select(Service.service_code, Service.service_name).order_by(Service.service_name)
    if departments is not None:
        stmt = stmt.where(Service.department_code.in_(sorted(departments) or [""]))
    return [(c, n) for c, n in (await uow.session.execute(stmt)).all()]


async def active_departments(uow: UnitOfWork) -> list[tuple[str, str]]:
    rows = await uow.session.execute(
        sa.select(Department.code, Department.name).where(Department.active.is_(True)).order_by(Department.name))
    return [(c, n) for c, n in rows.all()]
