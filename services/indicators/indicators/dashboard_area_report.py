"""The printable report of one area (issue 21, Stat by area): ``/dashboard/areas/report?area=LAYER:CODE``,
what a council member takes to a meeting about their district. The area's 311 figures, then each
department's in the area, in the department report's table (the Mayor's Management Report layout:
actuals by fiscal year, target, year to date, direction, trend, status), with the map of the layer
coloured by the area's service-level figure and its table."""

from __future__ import annotations

from collections import defaultdict
from html import escape

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from citystat_common.db import utcnow
from citystat_common.web import ReadUoW
from indicators import narratives, service
from indicators.area_stat import AREA_METRICS, AreaScope, area_prefix
from indicators.dashboard_map import MAP_CSS, chosen_area, layer_words, map_view
from indicators.dashboard_report import Month
from indicators.dashboard_tiles import Tile, load_tiles
from indicators.deps import Deps
from indicators.models import Indicator
from indicators.people import PageViewer
from indicators.periods import local_date
from indicators.report_figures import report_figures, report_years
from indicators.report_mmr import REPORT_CSS, Goal, Service, month_end, month_words, table_html

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard/areas/report", response_class=HTMLResponse,
            summary="Printable report of one area: its 311 figures and its departments'")
async def area_report(area: str, uow: ReadUoW, deps: Deps, viewer: PageViewer, period: Month = None) -> HTMLResponse:
    from indicators.dashboard import CSS, JS

    settings = deps.settings
    if isinstance(chosen := chosen_area(deps, area), HTMLResponse):
        return chosen
    layer, code = chosen
    today = local_date(utcnow(), service.tz_of(settings))
    period = narratives.check_month(period, today) if period else f"{today.year}-{today.month:02d}"
    fy0 = settings.fiscal_year_start_month
    fy, years = report_years(month_end(period), fy0)
    months = (int(period[5:7]) - fy0) % 12 + 1
    view, names = await map_view(uow, deps, layer=layer, metric="closed_within_sla", dept=None, chosen=code)
    codes = (await uow.session.execute(sa.select(Indicator.code).where(
        Indicator.code.startswith(area_prefix(layer, code), autoescape=True), Indicator.active.is_(True)))).scalars().all()
    tiles = await load_tiles(uow, deps, cluster=None, department=None, kind=None, critical=False, codes=codes)
    figures = await report_figures(uow, [t.ind for t in tiles], fy0, month_end(period))
    name = names.get(code, code)
    own_codes = {AreaScope(layer, code).indicator_code(m) for m in AREA_METRICS}
    groups: dict[str, list[Tile]] = defaultdict(list)
    for t in tiles:
        groups["" if t.ind.code in own_codes else t.dept_name].append(t)
    sections = [Service(f"{name} as a whole" if g == "" else g, [Goal("", ts)])
                for g, ts in sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0]))]
    heading = f"{layer_words(layer)} {name}" + (f" ({code})" if name != code else "")
    body = (
        f'<header><h1>{escape(heading)}: 311 report</h1><a href="/dashboard?area={escape(area)}">Dashboard of the area</a>'
        '<button class="noprint" type="button" onclick="window.print()">Print</button></header><main class="chapter">'
        f'<p id="report-period"><strong>Report for {escape(month_words(period))}</strong>: fiscal year {fy}. '
        f'<span class="muted">Prepared {utcnow().strftime("%Y-%m-%d %H:%M UTC")}.</span></p>'
        '<form class="period noprint" method="get" aria-label="Report month">'
        f'<input type="hidden" name="area" value="{escape(area)}">'
        f'<label for="period">Report month<input type="month" id="period" name="period" value="{period}" '
        f'max="{today.year}-{today.month:02d}"></label><button type="submit">Show</button></form>'
        + '<h2 id="figures-h">311 figures in the area, by department</h2>'
        + (table_html(sections, figures, fy, years, months) if tiles
           else '<p role="status">No 311 figures for this area yet.</p>')
        + f'<h2 id="map-h">{escape(layer_words(layer))}s by share closed within the service level</h2>{view}</main>')
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(heading)}: report for {escape(month_words(period))}</title>"
        f"<style>{CSS}{REPORT_CSS}{MAP_CSS}</style></head><body data-refresh=\"0\">{body}<script>{JS}</script></body></html>")
