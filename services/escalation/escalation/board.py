"""The ticket board for operations staff: open tickets by level and age, colored by severity
(with text labels), the timeline on click; "My tickets" for the signed-in person; filters by
status, level, department and severity as URL query parameters; each card shows the next
escalation and how long the acknowledgement is overdue. Server-rendered (Jinja2), no CDN; a small
script keeps the columns current and opens the timeline beside them (the page works without it). It
long-polls the columns (``?fragment=true`` with If-None-Match and ``Prefer: wait``,
``citystat_common.longpoll``): a ticket opened, escalated or acted on appears within moments, and
the ages are read again whenever a wait ends with nothing new."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from citystat_common.errors import Invalid
from citystat_common.longpoll import weak_etag
from citystat_common.signin import SessionPerson, csrf_token
from citystat_common.uow import UnitOfWork
from citystat_common.web import LongPollHeaders, ReadUoW
from escalation import page_people, queries, schemas, store
from escalation.deps import Deps, EscalationDeps
from escalation.models import OPEN_STATUSES, PersonCopy, Ticket
from escalation.page_forms import forms_for

router = APIRouter(tags=["board"])
SEVERITY = {1: "Critical", 2: "High", 3: "Medium", 4: "Low"}
LEVELS = [(0, "Level 0 · Senior-team partner"), (1, "Level 1 · Department head"), (2, "Level 2 · Deputy mayor"),
          (3, "Level 3 · Managing director")]
STATUS_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "in_progress": "In progress"}
_env: Environment | None = None


class _Columns(NamedTuple):
    """What the board's columns show, as read."""

    now: datetime
    rows: list[Ticket]
    tickets: list[schemas.TicketRead]
    my_ids: set[str]
    departments: list[str]


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=PackageLoader("escalation", "templates"), autoescape=select_autoescape(["html"]))
        _env.filters["age"] = age_text
        _env.globals["SEVERITY"] = SEVERITY
    return _env


def age_text(hours: float) -> str:
    if hours < 1:
        return f"{int(hours * 60)} min"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} d"


def _when(dt: datetime | None, tz) -> str:  # type: ignore[no-untyped-def]
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if dt else ""


def overdue(t: Ticket, now: datetime) -> str | None:
    """How long the first acknowledgement is overdue (open tickets only), in words."""
    if t.status != "open" or t.ack_due_at is None or t.ack_due_at >= now:
        return None
    return age_text((now - t.ack_due_at).total_seconds() / 3600)


@router.get("/board", response_class=HTMLResponse, summary="Ticket board (HTML)")
async def board(
    request: Request, uow: ReadUoW, deps: EscalationDeps, person: page_people.Viewer, poll: LongPollHeaders,
    department: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[int | None, Query(ge=1, le=4)] = None,
    status: Annotated[list[str] | None, Query(description="open, acknowledged, in_progress; repeatable")] = None,
    level: Annotated[list[int] | None, Query(description="0..3, repeatable")] = None,
    mine: bool = False,
    fragment: bool = False,
) -> HTMLResponse:
    if status and any(s not in STATUS_LABELS for s in status):
        raise Invalid("status is open, acknowledged or in_progress", field="status")
    if level and any(not 0 <= lv <= 3 for lv in level):
        raise Invalid("level is 0..3", field="level")
    stmt = sa.select(Ticket).where(Ticket.status.in_(status or OPEN_STATUSES)).order_by(Ticket.opened_at, Ticket.id)
    if department:
        stmt = stmt.where(Ticket.department_code == department.upper())
    if severity:
        stmt = stmt.where(Ticket.severity == severity)
    if level:
        stmt = stmt.where(Ticket.level.in_(level))

    async def view() -> _Columns:
        now = deps.now()
        rows = list((await uow.session.execute(stmt)).scalars())
        principal = await page_people.viewer_principal(request, person)
        my_ids: set[str] = set()
        if principal is not None and principal.is_person:
            who, _ = await page_people.asker_of(uow, principal)
            my_ids = {t.id for t in rows if await page_people.is_mine(uow, who, t)}
        if mine:
            rows = [t for t in rows if t.id in my_ids]
        tickets = [queries.ticket_read(t, now) for t in rows]
        departments = [r[0] for r in await uow.session.execute(
            sa.select(Ticket.department_code).where(Ticket.status.in_(OPEN_STATUSES)).distinct()
            .order_by(Ticket.department_code))]
        return _Columns(now, rows, tickets, my_ids, departments)

    async def read() -> tuple[_Columns, str]:
        v = await view()
        # what the columns show that only a commit changes (ages and "overdue" move with the clock;
        # the script re-reads for those every time a long poll ends without a change)
        stored = orjson.dumps([[t.model_dump(mode="json", exclude={"age_hours"}) for t in v.tickets],
                               sorted(v.my_ids), v.departments])
        return v, weak_etag(stored)

    headers: dict[str, str] | None = None  # the page itself is not cached: ages and forms are as of now
    if fragment:
        v, tag, changed = await poll.read(uow, read)
        if not changed:  # the script's long poll (If-None-Match, Prefer: wait): nothing new on the board
            return poll.not_modified(tag)  # type: ignore[return-value]
        headers = {"ETag": tag, "Cache-Control": "no-store"}
    else:
        v = await view()
    now, tickets, my_ids, departments = v.now, v.tickets, v.my_ids, v.departments
    late = {t.id: overdue(t, now) for t in v.rows}
    columns = [(lvl, label, [t for t in tickets if t.level == lvl]) for lvl, label in LEVELS
               if not level or lvl in level]
    tz = deps.calendar.tz
    html = env().get_template("board.html").render(
        columns=columns, total=len(tickets), departments=departments, department=(department or "").upper(),
        severity=severity, statuses=status or [], levels=level or [], mine=mine, person=person,
        mine_ids=my_ids, late=late, now=_when(now, tz), when=lambda d: _when(d, tz), fragment=fragment,
        STATUS_LABELS=STATUS_LABELS, LEVELS=LEVELS, query=request.url.query,
        csrf=csrf_token(request) if person is not None and "session" in request.scope else None,
    )
    return HTMLResponse(html, headers=headers)


async def ticket_page(request: Request, uow: UnitOfWork, deps: Deps, person: SessionPerson | None, ticket_id: str, *, fragment: bool = False,
                      error: str | None = None, status_code: int = 200) -> HTMLResponse:
    now = deps.now()
    t = await store.get_ticket(uow, ticket_id)
    detail = await queries.ticket_detail(uow, t, now)
    tz = deps.calendar.tz
    principal = await page_people.viewer_principal(request, person)
    decision = await page_people.decision(uow, principal, t)
    people: list[PersonCopy] = []
    if decision:
        people = list((await uow.session.execute(
            sa.select(PersonCopy).where(PersonCopy.active.is_(True)).order_by(PersonCopy.name).limit(1000))).scalars())
    me = None
    if principal is not None and principal.is_person:
        _, author = await page_people.asker_of(uow, principal)
        me = author.person_id
    html = env().get_template("ticket.html").render(
        t=detail, fragment=fragment, when=lambda d: _when(d, tz), person=person, may=decision,
        forms=forms_for(detail.status, detail.muted_until is not None, detail.project_id is not None) if decision else [],
        csrf=csrf_token(request) if person is not None and "session" in request.scope else None,
        people=people, me=me, error=error, overdue=overdue(t, now),
    )
    return HTMLResponse(html, status_code=status_code)


@router.get("/board/tickets/{ticket_id}", response_class=HTMLResponse, summary="One ticket with its timeline (HTML)")
async def board_ticket(request: Request, ticket_id: str, uow: ReadUoW, deps: EscalationDeps, person: page_people.Viewer,
                       fragment: bool = False) -> HTMLResponse:
    return await ticket_page(request, uow, deps, person, ticket_id, fragment=fragment)
