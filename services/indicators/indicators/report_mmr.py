"""A department's chapter in the layout of New York's Mayor's Management Report (MMR), and the same
figures in the layout of the MMR's open dataset. Pure: the routers read, this lays out.

The chapter: the department's name and what it does, its services and goals, then one table of its
indicators grouped by service and goal (desired direction, a star for a critical indicator, the
actuals of the last fiscal years, the target, the prior year to date and the year to date, the
trend, the status), then the department's narrative of the report period."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from typing import Any

from indicators.board_order import per_service_311
from indicators.dashboard_tiles import STATUS_LABEL, STATUS_SYMBOL, Tile, fmt
from indicators.models import DepartmentNarrative, DepartmentStatement, Indicator
from indicators.periods import fiscal_year_start
from indicators.report_figures import ReportFigures

SERVICE_311 = "Service requests from residents (311)"
OTHER = "Other indicators"
DIRECTION_WORDS = {"up": "Up", "down": "Down", "band": "Neutral"}
DIRECTION_ARROW = {"up": "\u21e7", "down": "\u21e9", "band": "\u21d4"}  # ⇧ ⇩ ⇔
MEASUREMENT_TYPE = {"count": "Number", "percentage": "Percent", "currency": "Dollars", "duration": "Duration",
                    "score": "Score"}

REPORT_CSS = """
.chapter{max-width:1100px}.chapter h2{font-size:1.3rem;margin:1.2rem 0 .4rem;border-bottom:2px solid #0b2545}
ol.services{margin:.2rem 0 .6rem 1.2rem;padding:0}ol.services ul{margin:.1rem 0 .3rem 1rem;padding:0}
table.mmr{width:100%;table-layout:auto}table.mmr th,table.mmr td{font-size:.9rem;padding:.25rem .35rem}
table.mmr th[scope=row]{overflow-wrap:anywhere}table.mmr td.num{text-align:right;white-space:nowrap}
table.mmr th.fy{white-space:nowrap}
table.mmr tr.service th{background:#0b2545;color:#fff}table.mmr tr.goal th{background:#dfe6ef;font-style:italic}
.star{color:#7a5b00;font-weight:800}.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;
 overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
.narrative p{margin:.3rem 0}form.period{display:flex;gap:.6rem;align-items:flex-end;margin:.6rem 0}
form.period label{display:flex;flex-direction:column;font-weight:600;font-size:.9rem}
@media print{@page{margin:12mm}.chapter{max-width:none}main{padding:0}
 table.mmr{font-size:7.5pt;width:100%}table.mmr th,table.mmr td{font-size:7.5pt;padding:1pt 1.5pt}.arrow{display:none}
 form.period{display:none}table.mmr thead{display:table-header-group}
 table.mmr tr{break-inside:avoid}table.mmr tr.service th,table.mmr tr.goal th{background:none;color:#000;
 border-top:2px solid #000}.pill{padding:0 1pt}h2{break-after:avoid}}
"""


@dataclass
class Goal:
    goal: str
    tiles: list[Tile]


@dataclass
class Service:
    service: str
    goals: list[Goal]


def month_words(period: str) -> str:
    """'2026-11' -> 'November 2026'."""
    return f"{calendar.month_name[int(period[5:7])]} {period[:4]}"


def month_end(period: str) -> date:
    y, m = int(period[:4]), int(period[5:7])
    return date(y, m, calendar.monthrange(y, m)[1])


def fy_label(fy: int) -> str:
    """FY2026 -> 'FY26', the MMR's column heading."""
    return f"FY{fy % 100:02d}"


def goal_of(statement: DepartmentStatement | None) -> dict[str, tuple[str, str]]:
    """Indicator code -> (service, goal) as the department's statement places it."""
    out: dict[str, tuple[str, str]] = {}
    for s in (statement.services if statement else []) or []:
        for g in s.get("goals", []):
            for code in g.get("indicators", []):
                out.setdefault(code, (s["service"], g["goal"]))
    return out


def place(ind: Indicator, placed: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """Where an indicator stands in the chapter: its goal, else 311 figures together, else the rest."""
    if ind.code in placed:
        return placed[ind.code]
    if ind.derived_from == "311" or per_service_311(ind.code, ind.derived_from):
        return SERVICE_311, ""
    return OTHER, ""


def group(tiles: Sequence[Tile], statement: DepartmentStatement | None) -> list[Service]:
    """Services and goals in the statement's order (each goal's indicators in the order it names
    them), then 311 figures, then indicators no goal names (the board's order: what is wrong first)."""
    placed = goal_of(statement)
    order = {code: k for k, code in enumerate(placed)}
    services: dict[str, dict[str, list[Tile]]] = {}
    for s in (statement.services if statement else []) or []:
        services.setdefault(s["service"], {})
        for g in s.get("goals", []):
            services[s["service"]].setdefault(g["goal"], [])
    for t in tiles:
        svc, goal = place(t.ind, placed)
        services.setdefault(svc, {}).setdefault(goal, []).append(t)
    out = []
    for svc in sorted(services, key=lambda s: (s == OTHER, s == SERVICE_311 and s not in _named(statement))):
        goals = [Goal(g, sorted(ts, key=lambda t: order.get(t.ind.code, len(order)))) for g, ts in services[svc].items()]
        out.append(Service(svc, goals))
    return out


def _named(statement: DepartmentStatement | None) -> set[str]:
    return {s["service"] for s in (statement.services if statement else []) or []}


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _pill(state: str) -> str:
    return f'<span class="pill status-{escape(state)}">{STATUS_SYMBOL.get(state, "")} {STATUS_LABEL.get(state, state)}</span>'


def _trend(t: Tile) -> str:
    if t.trend is None:
        return "too few periods"
    word = {"up": "Up", "down": "Down", "neutral": "Neutral"}[t.trend.direction]
    judged = "" if t.trend.desirable is None else (" (desirable)" if t.trend.desirable else " (not desirable)")
    return f"{word}{judged}"


def _row(t: Tile, f: ReportFigures | None, years: list[int]) -> str:
    ind, unit = t.ind, t.ind.unit
    star = ('<span class="star" aria-hidden="true">\u2605</span><span class="sr-only"> (critical indicator)</span>'
            if ind.critical else "")
    cells = [f'<th scope="row"><a href="/dashboard/indicators/{escape(ind.code)}">{escape(ind.name)}</a>{star}</th>']
    cells += [f'<td class="num">{fmt(f.actuals.get(y) if f else None, unit)}</td>' for y in years]
    cells.append(f'<td class="num">{fmt(f.target if f else None, unit)}</td>')
    cells.append(f'<td class="num">{fmt(f.prior_ytd if f else None, unit)}</td>')
    cells.append(f'<td class="num">{fmt(f.ytd if f else None, unit)}</td>')
    cells.append(f'<td><span class="arrow" aria-hidden="true">{DIRECTION_ARROW.get(ind.direction, "")}</span> '
                 f'{DIRECTION_WORDS.get(ind.direction, ind.direction)}</td>')
    cells.append(f"<td>{escape(_trend(t))}</td><td>{_pill(t.state)}</td>")
    return f'<tr data-code="{escape(ind.code)}">{"".join(cells)}</tr>'


def table_html(services: list[Service], figures: dict[str, ReportFigures], fy: int, years: list[int],
               months: int) -> str:
    ncol = len(years) + 7
    head = (
        '<table class="mmr" id="indicators"><caption class="muted">Actuals are whole fiscal years; the year to '
        'date runs through the report month, beside the same periods of the year before. '
        '<span aria-hidden="true">\u2605</span> marks a critical indicator.</caption><thead>'
        '<tr><th scope="col" rowspan="2">Performance indicator</th>'
        f'<th scope="colgroup" colspan="{len(years)}">Actual</th><th scope="col" rowspan="2">Target {fy_label(fy)}</th>'
        f'<th scope="colgroup" colspan="2">Fiscal year to date ({months} month{"s" if months != 1 else ""})</th>'
        '<th scope="col" rowspan="2">Desired direction</th><th scope="col" rowspan="2">Trend</th>'
        '<th scope="col" rowspan="2">Status</th></tr><tr>'
        + "".join(f'<th scope="col" class="fy">{fy_label(y)}</th>' for y in years)
        + f'<th scope="col" class="fy">{fy_label(fy - 1)}</th><th scope="col" class="fy">{fy_label(fy)}</th></tr></thead>'
    )
    body = []
    for n, s in enumerate(services, start=1):
        rows = [f'<tr class="service"><th scope="colgroup" colspan="{ncol}">{escape(s.service)}</th></tr>']
        for g in s.goals:
            if g.goal:
                rows.append(f'<tr class="goal"><th scope="colgroup" colspan="{ncol}">Goal: {escape(g.goal)}</th></tr>')
            if not g.tiles:
                rows.append(f'<tr><td colspan="{ncol}" class="muted">No indicator answers this goal yet.</td></tr>')
            rows += [_row(t, figures.get(t.ind.id), years) for t in g.tiles]
        body.append(f'<tbody id="service-{n}">{"".join(rows)}</tbody>')
    return head + "".join(body) + "</table>"


def statement_html(statement: DepartmentStatement | None, name: str) -> str:
    if statement is None:
        return ('<section aria-labelledby="what-h"><h2 id="what-h">What we do</h2>'
                f'<p id="what-we-do" class="muted">{escape(name)} has not yet written what it does.</p></section>')
    services = "".join(
        f'<li>{escape(s["service"])}<ul>'
        + "".join(f'<li>Goal: {escape(g["goal"])}</li>' for g in s.get("goals", []))
        + "</ul></li>" for s in statement.services or [])
    return ('<section aria-labelledby="what-h"><h2 id="what-h">What we do</h2>'
            f'<div id="what-we-do">{_paragraphs(statement.what_we_do)}</div>'
            + (f'<h2 id="services-h">Our services and goals</h2><ol class="services">{services}</ol>' if services else "")
            + "</section>")


def narrative_html(narrative: DepartmentNarrative | None, period: str, name: str, versions: int) -> str:
    head = f'<h2 id="narrative-h">How we performed in {escape(month_words(period))}</h2>'
    if narrative is None:
        return (f'<section aria-labelledby="narrative-h" id="narrative">{head}'
                f'<p class="muted">{escape(name)} has not written its account of {escape(month_words(period))}.</p>'
                "</section>")
    earlier = versions - 1
    return (f'<section aria-labelledby="narrative-h" id="narrative">{head}'
            f'<div class="narrative">{_paragraphs(narrative.text)}</div>'
            f'<p class="muted" id="narrative-by">Written by {escape(narrative.written_by)}, '
            f'{narrative.written_at.strftime("%Y-%m-%d %H:%M UTC")}'
            + (f"; {earlier} earlier version{'s' if earlier != 1 else ''} kept" if earlier > 0 else "")
            + ".</p></section>")


# --- the open dataset's layout -------------------------------------------------------------

CSV_FIELDS = ["agency", "agency_code", "service", "goal", "indicator", "indicator_code", "critical",
              "desired_direction", "measurement_type", "frequency", "fiscal_year", "accepted_value",
              "accepted_value_ytd", "ytd_through", "ytd_periods", "target", "report_period"]


def number(v: float | None) -> str:
    """A figure as data: full precision, no thousands separators, empty when there is none."""
    if v is None:
        return ""
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def csv_rows(agency: str, inds: Iterable[Indicator], placed: dict[str, tuple[str, str]],
             figures: dict[str, ReportFigures], period: str, fy0: int) -> Iterable[list[Any]]:
    """One row per indicator and fiscal year, as the MMR's open dataset has them: the earlier
    fiscal years with their accepted (whole-year) value, the year before also with its value to the
    same point, and the report's fiscal year with its year to date (its accepted value once ended)."""
    through = month_end(period)
    prior_through = f"{int(period[:4]) - 1}{period[4:]}"
    for ind in inds:
        f = figures.get(ind.id)
        if f is None:
            continue
        svc, goal = place(ind, placed)
        common = [agency, ind.department_code, svc, goal, ind.name, ind.code, "Y" if ind.critical else "N",
                  DIRECTION_WORDS.get(ind.direction, ind.direction),
                  "Ratio" if ind.formula else MEASUREMENT_TYPE.get(ind.unit, ind.unit), ind.frequency]
        for y in sorted(f.actuals):
            prior = y == f.fiscal_year - 1
            yield [*common, y, number(f.actuals[y]), number(f.prior_ytd) if prior else "",
                   prior_through if prior else "", f.ytd_periods if prior else "", number(f.targets.get(y)), period]
        ended = through >= fiscal_year_start(f.fiscal_year + 1, fy0) - timedelta(days=1)
        yield [*common, f.fiscal_year, number(f.ytd) if ended else "", number(f.ytd), period, f.ytd_periods,
               number(f.target), period]
