"""The color-coded dashboard: server-rendered HTML with inline SVG, no CDN, a little vanilla JS.

- ``/dashboard``: departments by cluster, one tile per indicator (status colour *and* a text
  label and symbol, value, target, sparkline, override reason), filters (cluster, department,
  kind, critical only); tiles are links, so Tab/Enter work; it refreshes itself.
- ``/dashboard/indicators/{code}``: the drill-down: history chart with target line and status
  bands, the table of values, the status history with overrides.
- ``/dashboard.csv`` and ``/dashboard/indicators/{code}.csv``: CSV of either view.
- the department report (MMR layout) and its CSV: ``indicators.dashboard_report``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from citystat_common.auth import OptionalPrincipal
from citystat_common.db import utcnow
from citystat_common.web import ReadUoW
from indicators import service
from indicators.cluster_leads import deputy_mayors
from indicators.dashboard_board import board_html, city_board_html
from indicators.dashboard_judgement import override_section
from indicators.dashboard_tiles import (
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_SYMBOL,
    fmt,
    load_tiles,
    ticket_html,
)
from indicators.deps import Deps
from indicators.evaluation import default_rules, validate_rules
from indicators.measures import compare_link_for
from indicators.models import Department, FormulaInput, Indicator, StatusChange
from indicators.people import PageViewer
from indicators.reader_words import event_words, judged_words
from indicators.states import indicator_state, row_state
from indicators.ticket_copy import open_tickets, ticket_url

router = APIRouter(tags=["dashboard"])


CSS = """
:root{--red:#b3261e;--yellow:#f5c518;--green:#1e7b34;--grey:#5f6368;--ink:#111;--bg:#fff}
*{box-sizing:border-box}body{font-family:system-ui,Segoe UI,Roboto,Arial,sans-serif;margin:0;color:var(--ink);background:var(--bg);font-size:18px}
header{background:#0b2545;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header h1{font-size:1.6rem;margin:0}header a{color:#fff}
.legend span{margin-right:.8rem;font-weight:700}
form.filters{display:flex;flex-wrap:wrap;gap:.8rem;padding:.6rem 1rem;background:#eef1f5;align-items:flex-end}
form.filters label{display:flex;flex-direction:column;font-size:.9rem;font-weight:600}
select,button,input{font-size:1rem;padding:.3rem}
main{padding:0 1rem 2rem}
h2.cluster{font-size:1.5rem;margin:1.2rem 0 .3rem;border-bottom:3px solid #0b2545}
h3.dept{font-size:1.2rem;margin:.8rem 0 .4rem}
.depts{display:flex;flex-wrap:wrap;gap:.2rem 2rem}
.tiles{display:flex;flex-wrap:wrap;gap:.7rem;list-style:none;margin:0;padding:0}
a.tile{display:block;width:250px;border-radius:8px;padding:.6rem .7rem;text-decoration:none;border:3px solid transparent;min-height:9rem}
a.tile:focus,a.tile:hover{outline:4px solid #1a73e8;outline-offset:2px;border-color:#000}
.status-red{background:var(--red);color:#fff}.status-yellow{background:var(--yellow);color:#000}
.status-green{background:var(--green);color:#fff}.status-grey,.status-no_report{background:var(--grey);color:#fff}
.status-baseline{background:#e8f0fe;color:#0b2545;border:3px dashed #0b2545}
.tile .badge{font-weight:800;font-size:1rem;letter-spacing:.05em}
.tile .name{font-weight:700;font-size:1.05rem;margin:.2rem 0;line-height:1.2}
.tile .val{font-size:1.7rem;font-weight:800}.tile .tgt{font-size:.95rem}
.tile .ovr{font-size:.9rem;font-style:italic;border-top:1px solid currentColor;margin-top:.3rem;padding-top:.2rem}
.tile svg{display:block;margin-top:.3rem}
a.ticket{display:block;width:250px;margin-top:3px;border-radius:0 0 8px 8px;padding:.35rem .7rem;font-size:.85rem;line-height:1.25;border:3px solid transparent}
a.ticket:focus,a.ticket:hover{outline:4px solid #1a73e8;outline-offset:2px;border-color:#000}
a.ticket span{display:block}.ticket-status{font-weight:800}
p.deputy{margin:.1rem 0 .2rem;font-weight:600}
section#ticket a.ticket{width:auto;max-width:40rem;border-radius:8px}
.crit{font-size:.8rem;border:1px solid currentColor;border-radius:4px;padding:0 .3rem;margin-left:.3rem}
table{border-collapse:collapse;margin:.6rem 0;width:100%}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;font-size:.95rem}
th{background:#eef1f5}.pill{font-weight:800;padding:.1rem .4rem;border-radius:4px;display:inline-block;line-height:1.3}
.muted{color:#444;font-size:.9rem}
p.summary{margin:.1rem 0 .4rem;font-weight:600}.tile .ytd,.tile .trend,.tile .dept-of{font-size:.85rem;line-height:1.2}
h4.services{font-size:1rem;margin:.6rem 0 .3rem}
.depts.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(270px,1fr));gap:.5rem 1rem}
.depts.side>section{border-left:4px solid #0b2545;padding-left:.5rem}.depts.side ul.tiles{flex-direction:column}
@media print{header,form.filters,.noprint{display:none}body{font-size:12pt}a{color:inherit;text-decoration:none}
 .pill{border:1px solid #000}}
"""

JS = """
(function(){
  var f=document.getElementById('filters');
  if(f){f.addEventListener('change',function(){f.submit();});}
  var secs=parseInt(document.body.dataset.refresh||'0',10);
  if(!secs){return;}
  setInterval(function(){
    var active=document.activeElement, code=active&&active.dataset?active.dataset.code:null;
    fetch(window.location.href,{headers:{'X-Partial':'board'}}).then(function(r){return r.ok?r.text():null;})
    .then(function(html){
      if(html===null){return;}
      var board=document.getElementById('board'); board.innerHTML=html;
      if(code){var el=board.querySelector('[data-code="'+code.replace(/"/g,'')+'"]'); if(el){el.focus();}}
      var s=document.getElementById('updated'); if(s){s.textContent='updated '+new Date().toLocaleTimeString();}
    }).catch(function(){});
  }, secs*1000);
})();
"""


def _page(title: str, body: str, *, refresh: int = 0) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body data-refresh=\"{refresh}\">{body}<script>{JS}</script></body></html>"
    )


def _select(name: str, label: str, options: list[tuple[str, str]], current: str | None, *, everything: str = "All") -> str:
    opts = [f'<option value="">{escape(everything)}</option>'] + [
        f'<option value="{escape(v)}"{" selected" if v == current else ""}>{escape(t)}</option>' for v, t in options
    ]
    return f'<label for="f-{name}">{label}<select id="f-{name}" name="{name}">{"".join(opts)}</select></label>'


def _filters(cluster: str | None, department: str | None, kind: str | None, critical: bool,
             source: str | None = None, view: str | None = None, services: str | None = None) -> dict[str, str]:
    q = {"view": view or "", "cluster": cluster or "", "department": department or "", "kind": kind or "",
         "source": source or "", "services": services or ""}
    if critical:
        q["critical"] = "true"
    return {k: v for k, v in q.items() if v}


@router.get("/dashboard", response_class=HTMLResponse, summary="The color-coded dashboard")
async def dashboard(
    request: Request, uow: ReadUoW, deps: Deps, viewer: PageViewer,
    cluster: Annotated[str | None, Query(max_length=40)] = None,
    department: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    critical: bool = False,
    source: Annotated[str | None, Query(pattern="^(|reported|311)$", description="reported or 311 (derived)")] = None,
    refresh: Annotated[int | None, Query(ge=0, le=3600)] = None,
    view: Annotated[str | None, Query(pattern="^(|departments|city)$",
                                      description="city: every department's figures, the worst first")] = None,
    services: Annotated[str | None, Query(pattern="^(|show)$", description="show: unfold 311 by service")] = None,
    area: Annotated[str | None, Query(max_length=141, description="LAYER:CODE: one area's dashboard (Stat by area)")] = None,
    metric: Annotated[str | None, Query(max_length=40, description="with area: the figure the map colours by")] = None,
) -> HTMLResponse:
    settings = deps.settings
    if area:
        from indicators.dashboard_map import area_dashboard  # it builds on this module's page parts

        return await area_dashboard(uow, deps, area=area, metric=metric or "closed_within_sla")
    cluster, department, kind, source = cluster or None, department or None, kind or None, source or None
    view, services = (None if view in (None, "", "departments") else view), services or None
    tiles = await load_tiles(uow, deps, cluster=cluster, department=department, kind=kind, critical=critical,
                             source=source)
    query = _filters(cluster, department, kind, critical, source, view, services)
    if view == "city":
        board = city_board_html(tiles, show_services=bool(services), query=query)
    else:  # one cluster chosen: the deputy mayor's departments side by side, unless narrowed to one
        board = board_html(tiles, show_services=bool(services), query=query,
                           side_by_side=bool(cluster) and not department, deputies=await deputy_mayors(uow))
    if request.headers.get("x-partial") == "board":
        return HTMLResponse(board)
    depts = (await uow.session.execute(sa.select(Department).order_by(Department.name))).scalars().all()
    known = {d.code for d in depts}
    extra = (await uow.session.execute(sa.select(Indicator.department_code).distinct())).scalars().all()
    dept_opts = [(d.code, d.name) for d in depts] + [(c, c) for c in sorted(set(extra) - known)]
    cl_opts = sorted({(d.cluster_code, d.cluster_name or d.cluster_code) for d in depts if d.cluster_code}, key=lambda x: x[1])
    kinds = [(k, k) for k in ("input", "output", "outcome", "efficiency", "quality")]
    q = urlencode(query)
    body = (
        '<header><h1>CityStat performance dashboard</h1>'
        '<span class="legend" aria-hidden="true"><span>\u25b2 RED</span><span>\u25c6 YELLOW</span>'
        '<span>\u25cf GREEN</span><span>\u25cc BUILDING A BASELINE</span><span>\u25cb NO REPORT</span></span>'
        f'<a href="/dashboard.csv{"?" + q if q else ""}">Export CSV</a>'
        + ('<a href="/dashboard/areas">By area</a>' if settings.stat_area_layers else "") +
        f'<span id="updated" class="muted" style="color:#fff">updated {utcnow().strftime("%H:%M UTC")}</span></header>'
        '<form id="filters" class="filters" method="get" action="/dashboard" aria-label="Filters">'
        + _select("view", "View", [("city", "The city: what is wrong first")], view, everything="By department")
        + _select("cluster", "Cluster", cl_opts, cluster)  # type: ignore[arg-type]
        + _select("department", "Department", dept_opts, department)
        + _select("kind", "Kind", kinds, kind)
        + _select("source", "Source", [("reported", "Reported by departments"), ("311", "Derived from 311")], source)
        + f'<label for="f-critical">Critical only<input id="f-critical" type="checkbox" name="critical" value="true"'
        f'{" checked" if critical else ""}></label>'
        f'<label for="f-services">Show 311 by service<input id="f-services" type="checkbox" name="services" value="show"'
        f'{" checked" if services else ""}></label><button type="submit">Apply</button></form>'
        f'<main id="board" aria-live="off">{board}</main>'
    )
    secs = settings.dashboard_refresh_seconds if refresh is None else refresh
    return HTMLResponse(_page("CityStat dashboard", body, refresh=secs))


@router.get("/dashboard.csv", summary="CSV of the dashboard view (same filters)")
async def dashboard_csv(
    uow: ReadUoW, deps: Deps, *, viewer: PageViewer,
    cluster: Annotated[str | None, Query(max_length=40)] = None,
    department: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    critical: bool = False,
    source: Annotated[str | None, Query(pattern="^(|reported|311)$")] = None,
) -> Response:
    tiles = await load_tiles(uow, deps, cluster=cluster or None, department=department or None,
                         kind=kind or None, critical=critical, source=source or None)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["cluster", "department_code", "department", "indicator_code", "indicator", "kind", "unit", "critical",
                "period", "value", "target", "status", "state", "overridden", "override_reason", "trend",
                "fiscal_year", "fytd_value", "fytd_last_year", "desired_direction", "trend_direction", "trend_desirable"])
    for t in tiles:
        w.writerow([t.cluster_name, t.ind.department_code, t.dept_name, t.ind.code, t.ind.name, t.ind.kind, t.ind.unit,
                    t.ind.critical, t.period or "", _num(t.value), _num(t.target), t.status, t.state, t.overridden,
                    t.override_reason or "", " ".join(_num(v) for v, _ in t.spark),
                    t.year.fiscal_year if t.year else "", _num(t.year.value if t.year else None),
                    _num(t.year.last_year if t.year else None), t.ind.direction, t.trend.direction if t.trend else "",
                    "" if t.trend is None or t.trend.desirable is None else t.trend.desirable])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="citystat-dashboard.csv"'})


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def history_chart(ind: Indicator, rows: list[dict[str, Any]], rules: list[dict[str, Any]], band_tol: float,
                  *, width: int = 900, height: int = 320) -> str:
    """Value line with the reference/target line and per-period status bands (green, yellow, red)."""
    if not rows:
        return '<p>No observations yet.</p>'
    pad_l, pad_r, pad_t, pad_b = 60, 20, 20, 40
    vals = [r["value"] for r in rows] + [r["reference"] for r in rows if r["reference"] is not None]
    lo, hi = min(vals), max(vals)
    margin = (hi - lo) * 0.25 or abs(hi) * 0.25 or 1.0
    lo, hi = lo - margin, hi + margin
    n = len(rows)
    colw = (width - pad_l - pad_r) / n

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return pad_t + (hi - v) / (hi - lo) * (height - pad_t - pad_b)

    def x(i: int) -> float:
        return pad_l + colw * (i + 0.5)

    parts = [f'<svg width="100%" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc">',
             f'<title id="chart-title">{escape(ind.name)}: history</title>',
             f'<desc id="chart-desc">{n} periods from {escape(rows[0]["period_label"])} to {escape(rows[-1]["period_label"])}; '
             'the shaded bands show where each status begins; the dashed line is the target or reference.</desc>']
    bounds = [r.get("max_miss") for r in rules]
    for i, r in enumerate(rows):
        ref = r["reference"]
        if ref is None:
            continue
        scale = abs(ref) if abs(ref) > 1e-12 else 1.0
        x0 = pad_l + colw * i
        # green up to the first bound, yellow up to the next, red beyond (on the wrong side of the reference)
        edges = [0.0] + [b for b in bounds if b is not None]
        colours = [STATUS_FILL[rl["status"]] for rl in rules]
        for k, colour in enumerate(colours):
            a = edges[k] if k < len(edges) else edges[-1]
            b = edges[k + 1] if k + 1 < len(edges) else 10.0
            if ind.direction in ("up", "band"):
                top, bottom = ref - a * scale, ref - b * scale
                parts.append(f'<rect x="{x0:.1f}" y="{y(top):.1f}" width="{colw:.1f}" height="{max(0.0, y(bottom) - y(top)):.1f}" '
                             f'fill="{colour}" fill-opacity="0.18"/>')
            if ind.direction in ("down", "band"):
                top, bottom = ref + b * scale, ref + a * scale
                parts.append(f'<rect x="{x0:.1f}" y="{y(top):.1f}" width="{colw:.1f}" height="{max(0.0, y(bottom) - y(top)):.1f}" '
                             f'fill="{colour}" fill-opacity="0.18"/>')
        if ind.direction == "up":
            parts.append(f'<rect x="{x0:.1f}" y="{pad_t}" width="{colw:.1f}" height="{max(0.0, y(ref) - pad_t):.1f}" '
                         f'fill="{STATUS_FILL["green"]}" fill-opacity="0.18"/>')
        elif ind.direction == "down":
            parts.append(f'<rect x="{x0:.1f}" y="{y(ref):.1f}" width="{colw:.1f}" height="{max(0.0, height - pad_b - y(ref)):.1f}" '
                         f'fill="{STATUS_FILL["green"]}" fill-opacity="0.18"/>')
    refs = [(x(i), y(r["reference"])) for i, r in enumerate(rows) if r["reference"] is not None]
    if len(refs) >= 2:
        parts.append('<polyline fill="none" stroke="#000" stroke-width="2" stroke-dasharray="6 4" points="'
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in refs) + '"/>')
    parts.append('<polyline fill="none" stroke="#0b2545" stroke-width="3" points="'
                 + " ".join(f"{x(i):.1f},{y(r['value']):.1f}" for i, r in enumerate(rows)) + '"/>')
    for i, r in enumerate(rows):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(r["value"]):.1f}" r="6" fill="{STATUS_FILL.get(r["status"], "#000")}" '
                     f'stroke="#000"><title>{escape(r["period_label"])}: {fmt(r["value"], ind.unit)} '
                     f'({STATUS_LABEL.get(r["status"], r["status"])})</title></circle>')
    for v in (lo + margin, hi - margin):
        parts.append(f'<text x="{pad_l - 6}" y="{y(v) + 5:.1f}" text-anchor="end" font-size="13">{fmt(v, ind.unit)}</text>')
    every = max(1, n // 8)
    for i, r in enumerate(rows):
        if i % every == 0 or i == n - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" font-size="13">{escape(r["period_label"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _pill(status: str) -> str:
    return f'<span class="pill status-{escape(status)}">{STATUS_SYMBOL.get(status, "")} {STATUS_LABEL.get(status, status)}</span>'


@router.get("/dashboard/indicators/{code}", response_class=HTMLResponse, summary="Drill-down: an indicator's history")
async def drilldown(code: str, request: Request, uow: ReadUoW, deps: Deps, viewer: PageViewer,
                    principal: OptionalPrincipal) -> HTMLResponse:
    settings = deps.settings
    ind = await service.get_indicator(uow, code)
    now = utcnow()
    override = (await service.active_overrides(uow, [ind.id], now)).get(ind.id)
    status, overridden, oreason, reason = service.effective_status(ind, override, now)
    rows = await service.series(uow, ind, limit=60, fy0=settings.fiscal_year_start_month)
    desc = await service.current_description(uow, ind.id)
    hist = (await uow.session.execute(
        sa.select(StatusChange).where(StatusChange.indicator_id == ind.id).order_by(StatusChange.id.desc()).limit(20)
    )).scalars().all()
    rules = ind.rules or [{"status": r.status, "max_miss": r.max_miss}
                          for r in default_rules(settings.green_within, settings.yellow_within)]
    validate_rules(rules)
    links = await _links(uow, ind)
    compare = await compare_link_for(uow, ind)  # only where more than one department reports the measure
    dept = await uow.session.get(Department, ind.department_code)
    state = indicator_state(ind, status, overridden, now)
    ticket = (await open_tickets(uow, [ind.id])).get(ind.id) if state in ("red", "yellow") else None
    ticket_part = (
        '<section id="ticket" aria-labelledby="ticket-h"><h2 id="ticket-h">Who is on it</h2>'
        + ticket_html(ticket, ticket_url(settings.escalation_url, ticket.ticket_id), css=f"ticket status-{state}")
        + "</section>") if ticket is not None else ""
    table = "".join(
        f"<tr><td>{escape(r['period_label'])}</td><td>{fmt(r['value'], ind.unit)}</td><td>{fmt(r['target'], ind.unit)}</td>"
        f"<td>{fmt(r['reference'], ind.unit)}</td><td>{_pill(row_state(r['status'], r['value']))}</td><td>{escape(r['reason'] or '')}</td>"
        f"<td>{r['revision']}</td></tr>" for r in reversed(rows))
    htable = "".join(
        f"<tr><td>{h.at.strftime('%Y-%m-%d %H:%M')}</td><td>{escape(h.period_label or '')}</td>"
        f"<td>{_pill(h.previous_status) if h.previous_status else ''}</td><td>{_pill(h.status)}</td><td>{escape(event_words(h.event))}</td>"
        f"<td>{escape(h.override_reason or h.reason or '')}</td><td>{escape(h.actor or '')}</td></tr>" for h in hist)
    body = (
        f'<header><h1>{escape(ind.name)}</h1><a href="/dashboard" id="back">\u2190 Dashboard</a>'
        f'<a href="/dashboard/indicators/{escape(ind.code)}/export.csv">Export CSV</a>'
        f'<a href="/dashboard/departments/{escape(ind.department_code)}/report">Department report</a>'
        + (f'<a href="{escape(compare)}" id="compare-link">Compare across departments</a>' if compare else "")
        + '</header><main>'
        f'<p id="current-status">Status: {_pill(indicator_state(ind, status, overridden, now))}'
        + (f" (override by {escape(override.created_by)}: {escape(oreason or '')}, until "
           f"{override.expires_at.strftime('%Y-%m-%d')})" if overridden and override else "")
        + (f" &mdash; {escape(reason)}" if reason and not overridden else "") + "</p>"
        f'<p class="muted" id="about">{escape(judged_words(ind, rules, dept.name if dept else None))}</p>'
        f'<p>{escape(desc.text if desc else "")}</p>'
        + ticket_part
        + links
        + f'<figure id="history-chart">{history_chart(ind, rows, rules, ind.band_tolerance)}</figure>'
        '<h2>Values</h2><table><caption class="muted">newest first</caption><thead><tr><th scope="col">Period</th>'
        '<th scope="col">Value</th><th scope="col">Target</th><th scope="col">Reference</th><th scope="col">Status</th>'
        f'<th scope="col">Why</th><th scope="col">Revision</th></tr></thead><tbody>{table}</tbody></table>'
        + override_section(request, principal, ind, override if overridden else None, settings)
        + '<h2 id="history">Status history and overrides</h2><table><thead><tr><th scope="col">When (UTC)</th><th scope="col">Period</th>'
        '<th scope="col">From</th><th scope="col">To</th><th scope="col">Event</th><th scope="col">Reason</th>'
        f'<th scope="col">By</th></tr></thead><tbody>{htable}</tbody></table></main>'
    )
    return HTMLResponse(_page(f"{ind.name} - CityStat", body))


async def _links(uow: Any, ind: Indicator) -> str:
    """Formula inputs and the outcome a spending indicator buys, as links named as people read them."""
    codes = [c for c in ((ind.formula or {}).get("numerator"), (ind.formula or {}).get("denominator"),
                         ind.linked_outcome_code) if c]
    named = {i.code: i for i in (await uow.session.execute(
        sa.select(Indicator).where(Indicator.code.in_(codes)))).scalars()} if codes else {}

    def link(code: str) -> str:
        other = named.get(code)
        return f'<a href="/dashboard/indicators/{escape(code)}">{escape(other.name if other else code)}</a>'

    parts = []
    if ind.formula:
        parts.append(f'Computed: {link(ind.formula["numerator"])} &divide; {link(ind.formula["denominator"])} '
                     "for the same period.")
    if ind.linked_outcome_code:
        other = named.get(ind.linked_outcome_code)
        state = f" (now {_pill(other.status)} {fmt(other.latest_value, other.unit)})" if other else " (not registered yet)"
        parts.append(f"Buys the outcome {link(ind.linked_outcome_code)}{state}.")
    users = (await uow.session.execute(
        sa.select(Indicator.code, Indicator.name).join(FormulaInput, FormulaInput.formula_indicator_id == Indicator.id)
        .where(FormulaInput.input_indicator_id == ind.id))).all()
    if users:
        parts.append("Used by: " + ", ".join(f'<a href="/dashboard/indicators/{escape(c)}">{escape(n)}</a>'
                                             for c, n in users))
    return "".join(f"<p>{p}</p>" for p in parts)


@router.get("/dashboard/indicators/{code}/export.csv", summary="CSV of an indicator's history")
async def drilldown_csv(code: str, uow: ReadUoW, deps: Deps, viewer: PageViewer) -> Response:
    ind = await service.get_indicator(uow, code)
    rows = await service.series(uow, ind, fy0=deps.settings.fiscal_year_start_month)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["indicator_code", "period", "period_start", "value", "target", "reference", "status", "state", "miss",
                "reason", "revision"])
    for r in rows:
        w.writerow([ind.code, r["period_label"], r["period_start"].isoformat(), _num(r["value"]), _num(r["target"]),
                    _num(r["reference"]), r["status"], row_state(r["status"], r["value"]), _num(r["miss"]),
                    r["reason"] or "", r["revision"]])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{ind.code}.csv"'})


__all__ = ["router", "datetime"]
