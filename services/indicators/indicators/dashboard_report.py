"""The department report a city publishes (issue 22): one department's chapter in the layout of the
Mayor's Management Report, its CSV in the layout of the MMR's open dataset (one department, or the
whole city), and the small form by which the department's own staff write the narrative of a
report period (signed in, with the session's CSRF token, post/redirect/get)."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citystat_common.auth import OptionalPrincipal, Principal
from citystat_common.db import utcnow
from citystat_common.errors import DomainError
from citystat_common.signin import check_csrf, csrf_token
from citystat_common.web import ReadUoW, UoW
from indicators import narratives, service
from indicators.config import Settings
from indicators.dashboard import CSS, JS
from indicators.dashboard_tiles import Tile, load_tiles
from indicators.deps import Deps, IndicatorsDeps
from indicators.models import DepartmentNarrative
from indicators.people import PageViewer
from indicators.periods import local_date
from indicators.report_figures import report_figures, report_years
from indicators.report_mmr import (
    CSV_FIELDS,
    REPORT_CSS,
    csv_rows,
    goal_of,
    group,
    month_end,
    month_words,
    narrative_html,
    statement_html,
    table_html,
)
from indicators.schemas_report import MONTH_RE, NarrativeCreate

router = APIRouter(tags=["dashboard"])
FLASH = "indicators.report_flash"
Month = Annotated[str | None, Query(pattern=MONTH_RE.pattern, description="the report month, e.g. 2026-11 "
                                    "(default: the current month)")]


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}{REPORT_CSS}</style></head>"
            f"<body data-refresh=\"0\">{body}<script>{JS}</script></body></html>")


def _period(settings: Settings, period: str | None) -> str:
    """The report month: the one asked for if it has begun, else the current one (city time)."""
    today = local_date(utcnow(), service.tz_of(settings))
    return narratives.check_month(period, today) if period else f"{today.year}-{today.month:02d}"


def _months_to_date(period: str, fy0: int) -> int:
    return (int(period[5:7]) - fy0) % 12 + 1


def _writer(principal: Principal | None, code: str) -> Principal | None:
    """The signed-in person who may write this department's narrative from the page, or None."""
    if principal is None or principal.via != "session" or narratives.may_write_for(principal, code):
        return None
    return principal


def _narrative_form(request: Request, code: str, period: str, current: DepartmentNarrative | None) -> str:
    flash = request.session.pop(FLASH, None) if "session" in request.scope else None
    return (
        '<section aria-labelledby="write-h" class="noprint"><h2 id="write-h">Write the department\'s account</h2>'
        + (f'<p role="alert" id="narrative-error" style="color:#b3261e;font-weight:700">{escape(flash)}</p>'
           if flash else "")
        + f'<form method="post" action="/dashboard/departments/{escape(code)}/report/narrative" id="narrative-form">'
        f'<input type="hidden" name="csrf" value="{escape(csrf_token(request))}">'
        f'<input type="hidden" name="period" value="{escape(period)}">'
        f'<p><label for="narrative-text">How the department performed in {escape(month_words(period))}, in its '
        'own words (what the figures do not say by themselves; a blank line starts a new paragraph)</label><br>'
        f'<textarea id="narrative-text" name="text" rows="8" cols="80" required maxlength="20000">'
        f'{escape(current.text) if current else ""}</textarea></p>'
        '<p><button type="submit">Save the account</button> <span class="muted">Earlier versions are kept.</span></p>'
        "</form></section>")


async def _chapter_tiles(uow: UoW, deps: IndicatorsDeps, *, code: str | None) -> list[Tile]:
    return await load_tiles(uow, deps, cluster=None, department=code, kind=None, critical=False)


@router.get("/dashboard/departments/{code}/report", response_class=HTMLResponse,
            summary="A department's chapter in the layout of the Mayor's Management Report")
async def department_report(code: str, request: Request, uow: ReadUoW, deps: Deps, viewer: PageViewer,
                            principal: OptionalPrincipal, period: Month = None) -> HTMLResponse:
    settings = deps.settings
    code = code.upper()
    name = await narratives.department_name(uow, code)
    period = _period(settings, period)
    fy0 = settings.fiscal_year_start_month
    through = month_end(period)
    fy, years = report_years(through, fy0)
    tiles = await _chapter_tiles(uow, deps, code=code)
    figures = await report_figures(uow, [t.ind for t in tiles], fy0, through)
    statement = (await narratives.current_statements(uow, [code])).get(code)
    current = await narratives.current_narrative(uow, code, period)
    versions = (await uow.session.execute(
        sa.select(sa.func.count()).select_from(narratives.narratives_query(code, period).order_by(None).subquery())
    )).scalar_one()
    today = local_date(utcnow(), service.tz_of(settings))
    body = (
        f'<header><h1>{escape(name)}</h1><a href="/dashboard?department={escape(code)}">Dashboard</a>'
        f'<a href="/dashboard/departments/{escape(code)}/report.csv?period={period}">Download the figures (CSV)</a>'
        '<button class="noprint" type="button" onclick="window.print()">Print</button></header>'
        '<main class="chapter">'
        f'<p id="report-period"><strong>Report for {escape(month_words(period))}</strong>: fiscal year {fy}, '
        f'{_months_to_date(period, fy0)} month{"s" if _months_to_date(period, fy0) != 1 else ""} to date. '
        f'<span class="muted">Prepared {utcnow().strftime("%Y-%m-%d %H:%M UTC")}.</span></p>'
        '<form class="period noprint" method="get" aria-label="Report month">'
        f'<label for="period">Report month<input type="month" id="period" name="period" value="{period}" '
        f'max="{today.year}-{today.month:02d}"></label><button type="submit">Show</button></form>'
        + statement_html(statement, name)
        + '<h2 id="figures-h">Performance indicators</h2>'
        + table_html(group(tiles, statement), figures, fy, years, _months_to_date(period, fy0))
        + narrative_html(current, period, name, versions)
        + (_narrative_form(request, code, period, current) if _writer(principal, code) else "")
        + "</main>"
    )
    return HTMLResponse(_page(f"{name}: report for {month_words(period)}", body))


def _csv(rows: list[list[object]], filename: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_FIELDS)
    w.writerows(rows)
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _report_rows(uow: UoW, deps: IndicatorsDeps, *, code: str | None, period: str) -> list[list[object]]:
    """The chapters' indicators (one department's, or every department's) in the MMR dataset layout."""
    fy0 = deps.settings.fiscal_year_start_month
    tiles = await _chapter_tiles(uow, deps, code=code)
    figures = await report_figures(uow, [t.ind for t in tiles], fy0, month_end(period))
    by_dept: dict[str, list[Tile]] = {}
    for t in tiles:
        by_dept.setdefault(t.ind.department_code, []).append(t)
    statements = await narratives.current_statements(uow, list(by_dept))
    rows: list[list[object]] = []
    for dcode in sorted(by_dept):
        ts, statement = by_dept[dcode], statements.get(dcode)
        inds = [t.ind for s in group(ts, statement) for g in s.goals for t in g.tiles]
        rows += csv_rows(ts[0].dept_name, inds, goal_of(statement), figures, period, fy0)
    return rows


@router.get("/dashboard/departments/{code}/report.csv",
            summary="A department's figures in the layout of the Mayor's Management Report's open dataset")
async def department_report_csv(code: str, uow: ReadUoW, deps: Deps, viewer: PageViewer,
                                period: Month = None) -> Response:
    code = code.upper()
    await narratives.department_name(uow, code)
    period = _period(deps.settings, period)
    return _csv(await _report_rows(uow, deps, code=code, period=period), f"{code}-report-{period}.csv")


@router.get("/dashboard/report.csv",
            summary="Every department's figures in the layout of the Mayor's Management Report's open dataset")
async def city_report_csv(uow: ReadUoW, deps: Deps, *, viewer: PageViewer, period: Month = None) -> Response:
    period = _period(deps.settings, period)
    return _csv(await _report_rows(uow, deps, code=None, period=period), f"city-report-{period}.csv")


def _refused(title: str, why: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(why)}</p>"
        "<p><a href=\"/dashboard\">Back to the dashboard</a></p></main></body></html>", status_code=403)


@router.post("/dashboard/departments/{code}/report/narrative", include_in_schema=False)
async def write_narrative_from_page(
    code: str, request: Request, uow: UoW, deps: Deps, principal: OptionalPrincipal,
    csrf: Annotated[str, Form()] = "", period: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "",
) -> Response:
    code = code.upper()
    try:
        check_csrf(request, csrf)
    except HTTPException as exc:
        return _refused("This form has expired", str(exc.detail))
    if principal is None or principal.via != "session":
        return _refused("You may not write this report", "sign in to write a department's report")
    if (why := narratives.may_write_for(principal, code)) is not None:
        return _refused("You may not write this report", why)
    await narratives.department_name(uow, code)
    back = f"/dashboard/departments/{code}/report"
    try:
        data = NarrativeCreate(period=period, text=text)
        _period(deps.settings, data.period)
        await narratives.write_narrative(uow, code=code, period=data.period, text=data.text, principal=principal)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = {"text": "The account", "period": "The report month"}.get(str(first["loc"][0]) if first["loc"] else "",
                                                                         "The form")
        request.session[FLASH] = f"{field}: {str(first['msg']).removeprefix('Value error, ')}"
        again = f"?period={period}" if MONTH_RE.match(period) else ""
        return RedirectResponse(f"{back}{again}#write-h", status_code=303)
    except DomainError as exc:
        request.session[FLASH] = exc.detail
        return RedirectResponse(f"{back}#write-h", status_code=303)
    await uow.commit()
    return RedirectResponse(f"{back}?period={data.period}#narrative", status_code=303)
