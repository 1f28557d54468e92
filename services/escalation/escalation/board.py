"""The ticket board for operations staff: open tickets by level and age, colored by severity
(with text labels), the timeline on click. Server-rendered (Jinja2), no CDN, a few lines of JS."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from citystat_common.web import Context, UoW
from escalation import service
from escalation.api import ticket_detail
from escalation.models import OPEN_STATUSES, Ticket

router = APIRouter(tags=["board"])
SEVERITY = {1: "Critical", 2: "High", 3: "Medium", 4: "Low"}
LEVELS = [(0, "Level 0 · Senior-team partner"), (1, "Level 1 · Department head"), (2, "Level 2 · Deputy mayor"),
          (3, "Level 3 · Managing director")]
_env: Environment | None = None


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


@router.get("/board", response_class=HTMLResponse, summary="Ticket board (HTML)")
async def board(
    uow: UoW, ctx: Context,
    department: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[int | None, Query(ge=1, le=4)] = None,
) -> HTMLResponse:
    now = ctx.extras["clock"]()
    stmt = sa.select(Ticket).where(Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.opened_at, Ticket.id)
    if department:
        stmt = stmt.where(Ticket.department_code == department.upper())
    if severity:
        stmt = stmt.where(Ticket.severity == severity)
    tickets = [service.ticket_read(t, now) for t in (await uow.session.execute(stmt)).scalars()]
    departments = [r[0] for r in await uow.session.execute(
        sa.select(Ticket.department_code).where(Ticket.status.in_(OPEN_STATUSES)).distinct().order_by(Ticket.department_code))]
    columns = [(lvl, label, [t for t in tickets if t.level == lvl]) for lvl, label in LEVELS]
    tz = ctx.extras["deps"].calendar.tz
    html = env().get_template("board.html").render(
        columns=columns, total=len(tickets), departments=departments, department=(department or "").upper(),
        severity=severity, now=_when(now, tz), when=lambda d: _when(d, tz),
    )
    return HTMLResponse(html)


@router.get("/board/tickets/{ticket_id}", response_class=HTMLResponse, summary="One ticket with its timeline (HTML)")
async def board_ticket(ticket_id: str, uow: UoW, ctx: Context, fragment: bool = False) -> HTMLResponse:
    now = ctx.extras["clock"]()
    detail = await ticket_detail(uow, await service.get_ticket(uow, ticket_id), now)
    tz = ctx.extras["deps"].calendar.tz
    html = env().get_template("ticket.html").render(t=detail, fragment=fragment, when=lambda d: _when(d, tz))
    return HTMLResponse(html)
