"""The department's own words in its report, through the API: its statement (what it does, its
services and goals) and its narrative per report month, each kept with every earlier version.
Thin: ``indicators.narratives`` holds the rules; the router owns the commit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from citystat_common.auth import OptionalPrincipal, Principal
from citystat_common.db import utcnow
from citystat_common.errors import NotFound
from citystat_common.pagination import Page, Paging, paginate
from citystat_common.web import ReadUoW, UoW
from indicators import narratives, service
from indicators.deps import Deps, IndicatorsDeps
from indicators.models import DepartmentNarrative, DepartmentStatement
from indicators.periods import local_date
from indicators.schemas_report import (
    MONTH_RE,
    Month,
    NarrativeCreate,
    NarrativeRead,
    NarrativeUpdate,
    ServiceIn,
    StatementRead,
    StatementUpdate,
)

router = APIRouter(tags=["department report"])
DeptPath = Annotated[str, Path(max_length=40)]


async def department_writer(code: DeptPath, principal: OptionalPrincipal) -> Principal:
    """The caller, if they may write the department's statement and narratives: 401 without
    credentials, 403 with the reason otherwise (before the body is read)."""
    if principal is None:
        raise HTTPException(401, "an X-API-Key header or a bearer token is required",
                            headers={"WWW-Authenticate": "ApiKey"})
    if (why := narratives.may_write_for(principal, code)) is not None:
        raise HTTPException(403, why)
    return principal


Writer = Annotated[Principal, Depends(department_writer)]


def _narrative_read(n: DepartmentNarrative) -> NarrativeRead:
    return NarrativeRead(department_code=n.department_code, period=n.period, text=n.text, written_by=n.written_by,
                         written_by_email=n.written_by_email, written_at=n.written_at,
                         superseded_at=n.superseded_at, current=n.superseded_at is None)


def _statement_read(s: DepartmentStatement) -> StatementRead:
    return StatementRead(department_code=s.department_code, what_we_do=s.what_we_do,
                         services=[ServiceIn.model_validate(x) for x in s.services or []], written_by=s.written_by,
                         written_by_email=s.written_by_email, written_at=s.written_at, valid_to=s.valid_to)


async def _write(uow: UoW, deps: IndicatorsDeps, *, code: str, period: str, text: str, who: Principal) -> NarrativeRead:
    code = await narratives.resolve_code(uow, code)
    narratives.check_month(period, local_date(utcnow(), service.tz_of(deps.settings)))
    row = await narratives.write_narrative(uow, code=code, period=period, text=text, principal=who)
    result = _narrative_read(row)
    await uow.commit()
    return result


@router.post("/departments/{code}/narratives", status_code=201, response_model=NarrativeRead,
             summary="Write the department's narrative of a report month (an earlier one is kept)")
async def create_narrative(code: DeptPath, data: NarrativeCreate, uow: UoW, deps: Deps, who: Writer) -> NarrativeRead:
    return await _write(uow, deps, code=code, period=data.period, text=data.text, who=who)


@router.put("/departments/{code}/narratives/{period}", response_model=NarrativeRead,
            summary="Replace the department's narrative of a report month (the earlier one is kept)")
async def put_narrative(code: DeptPath, period: Annotated[str, Path(pattern=MONTH_RE.pattern)],
                        data: NarrativeUpdate, uow: UoW, deps: Deps, who: Writer) -> NarrativeRead:
    return await _write(uow, deps, code=code, period=period, text=data.text, who=who)


@router.get("/departments/{code}/narratives", response_model=Page[NarrativeRead],
            summary="The department's narratives, every version, newest month and newest version first")
async def list_narratives(code: DeptPath, uow: ReadUoW, paging: Paging,
                          period: Annotated[Month | None, Query(description="one report month")] = None
                          ) -> Page[NarrativeRead]:
    code = await narratives.resolve_code(uow, code)
    items, total = await paginate(uow.session, narratives.narratives_query(code, period), paging)
    return Page(items=[_narrative_read(n) for n in items], total=total, page=paging.page, page_size=paging.page_size)


@router.put("/departments/{code}/statement", response_model=StatementRead,
            summary="Write what the department does: its services, their goals and the indicators answering each")
async def put_statement(code: DeptPath, data: StatementUpdate, uow: UoW, who: Writer) -> StatementRead:
    code = await narratives.resolve_code(uow, code)
    row = await narratives.write_statement(uow, code=code, data=data, principal=who)
    result = _statement_read(row)
    await uow.commit()
    return result


@router.get("/departments/{code}/statement", response_model=StatementRead,
            summary="What the department does, as it last wrote it")
async def get_statement(code: DeptPath, uow: ReadUoW) -> StatementRead:
    code = await narratives.resolve_code(uow, code)
    row = (await narratives.current_statements(uow, [code])).get(code)
    if row is None:
        raise NotFound(f"{code} has not written its statement yet", field="code")
    return _statement_read(row)


@router.get("/departments/{code}/statements", response_model=Page[StatementRead],
            summary="Every version of the department's statement, newest first")
async def list_statements(code: DeptPath, uow: ReadUoW, paging: Paging) -> Page[StatementRead]:
    code = await narratives.resolve_code(uow, code)
    items, total = await paginate(uow.session, narratives.statements_query(code), paging)
    return Page(items=[_statement_read(s) for s in items], total=total, page=paging.page, page_size=paging.page_size)

