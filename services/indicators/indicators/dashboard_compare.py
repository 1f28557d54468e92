"""One measure across the departments that report it (issue 22, "views for the people who answer").

``/dashboard/compare?measure=<measure>``: a table, one row per department, the worst first (the
board's order, ``board_order.severity``), with the same figures and words as the department's tiles
(period value, target, state, fiscal year to date beside last year's, trend, the open ticket on a red
or yellow figure). The measure rule is ``indicators.measures``. A form with GET chooses the measure,
so the URL is the bookmark. Read with the board's batched loader, never a query per row."""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from citystat_common.web import ReadUoW
from indicators.board_order import summary_line
from indicators.dashboard import CSS, JS
from indicators.dashboard_tiles import (
    STATUS_LABEL,
    STATUS_SYMBOL,
    Tile,
    fmt,
    load_tiles,
    ticket_html,
    trend_words,
)
from indicators.deps import Deps
from indicators.measures import reporters, shared_measures
from indicators.people import PageViewer

router = APIRouter(tags=["dashboard"])
MEASURE_MAX = 130  # an indicator code (120) with room to spare


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body data-refresh=\"0\">{body}<script>{JS}</script></body></html>", status_code=status)


def _chooser(options: list[tuple[str, str, int]], current: str | None) -> str:
    opts = ['<option value="">Choose a measure</option>'] + [
        f'<option value="{escape(m)}"{" selected" if m == current else ""}>{escape(name)} ({n} departments)</option>'
        for m, name, n in options]
    return ('<form id="filters" class="filters" method="get" action="/dashboard/compare" aria-label="Which figure to compare">'
            f'<label for="f-measure">Measure<select id="f-measure" name="measure" required>{"".join(opts)}</select>'
            '</label><button type="submit">Compare</button></form>')


def _pill(state: str) -> str:
    return f'<span class="pill status-{escape(state)}">{STATUS_SYMBOL[state]} {STATUS_LABEL[state]}</span>'


def _row(t: Tile) -> str:
    ind = t.ind
    # as on the tile: a figure that is owed shows no value as current, its last one is named with its period
    if t.state == "no_report":
        value = "\u2013" + (f' <span class="muted">last figure {escape(t.period)}: {fmt(t.value, ind.unit)}</span>'
                            if t.period and t.value is not None else "")
    else:
        value = fmt(t.value, ind.unit)
    target = "\u2013" if t.target is None else (
        fmt(t.target, ind.unit) + ("" if ind.basis == "target" else ' <span class="muted">(reference)</span>'))
    status = _pill(t.state) + (' <span class="crit">CRITICAL</span>' if ind.critical else "")
    if t.overridden and t.override_reason:
        status += f'<br><span class="muted">Override{escape(" by " + t.override_by if t.override_by else "")}: ' \
                  f'{escape(t.override_reason)}</span>'
    elif t.state in ("no_report", "baseline") and t.reason:
        status += f'<br><span class="muted">{escape(t.reason)}</span>'
    year = t.year if t.year is not None and t.year.periods else None
    ytd = f"FY{year.fiscal_year}: {fmt(year.value, ind.unit)}" if year else "\u2013"
    last = ("\u2013" if year is None else fmt(year.last_year, ind.unit) if year.last_year is not None
            else "none on record")
    if t.ticket is not None and t.ticket_link:
        who = ticket_html(t.ticket, t.ticket_link, css=f"ticket status-{t.state}")
    else:
        who = "no open ticket" if t.state in ("red", "yellow") else ""
    return (f'<tr data-code="{escape(ind.code)}" data-state="{t.state}">'
            f'<th scope="row"><a href="/dashboard/indicators/{escape(ind.code)}">{escape(t.dept_name)}</a></th>'
            f'<td>{escape(t.cluster_name)}</td><td class="period">{escape(t.period or "no figure yet")}</td>'
            f'<td class="value">{value}</td><td class="target">{target}</td><td class="state">{status}</td>'
            f'<td class="ytd">{ytd}</td><td class="last-year">{last}</td>'
            f'<td class="trend">{escape(trend_words(t))}</td><td class="who">{who}</td></tr>')


def table_html(tiles: list[Tile]) -> str:
    """The comparison table; ``tiles`` come worst first and keep that order."""
    return (
        '<table id="compare"><caption class="muted">the worst first: red (critical, then the larger miss), yellow, '
        'no report, building a baseline, green</caption><thead><tr><th scope="col">Department</th>'
        '<th scope="col">Cluster</th><th scope="col">Period</th><th scope="col">Value</th>'
        '<th scope="col">Target</th><th scope="col">Status</th><th scope="col">Fiscal year to date</th>'
        '<th scope="col">Same periods last year</th><th scope="col">Trend</th><th scope="col">Who is on it</th>'
        f'</tr></thead><tbody>{"".join(_row(t) for t in tiles)}</tbody></table>')


def _body(options: list[tuple[str, str, int]], current: str | None, main: str) -> str:
    return ('<header><h1>Compare across departments</h1><a href="/dashboard">\u2190 Dashboard</a></header>'
            + _chooser(options, current) + f"<main>{main}</main>")


@router.get("/dashboard/compare", response_class=HTMLResponse,
            summary="One measure across the departments that report it, the worst first")
async def compare(
    uow: ReadUoW, deps: Deps, *, viewer: PageViewer,
    measure: Annotated[str | None, Query(description="the measure: an indicator's code without its department, "
                                                     "e.g. vacancy or 311.opened")] = None,
) -> HTMLResponse:
    options = await shared_measures(uow)
    if measure is None:
        return _page("Compare across departments - CityStat", _body(options, None, (
            '<p role="status">Choose a measure to see every department that reports it side by side, '
            "the worst first.</p>")))
    measure = measure.strip()
    if not measure or len(measure) > MEASURE_MAX:
        return _page("Choose a measure - CityStat", _body(options, None, (
            '<p role="alert">Choose a measure from the list: '
            + ("none was chosen." if not measure else "that name is longer than any measure.") + "</p>")), 422)
    codes = [code for code, _ in await reporters(uow, measure)]
    tiles = await load_tiles(uow, deps, cluster=None, department=None, kind=None, critical=False,
                             codes=codes) if codes else []
    if not tiles:
        return _page("Measure not found - CityStat", _body(options, None, (
            f'<p role="alert">No department reports a measure called \u201c{escape(measure)}\u201d. '
            "Choose one from the list.</p>")), 404)
    name = Counter(t.ind.name for t in tiles).most_common(1)[0][0]
    departments = len({t.ind.department_code for t in tiles})
    main = (f'<h2 id="measure-name">{escape(name)}</h2>'
            f'<p class="summary">{departments} department{"s" if departments != 1 else ""}: '
            f'{escape(summary_line(t.state for t in tiles))}</p>'
            + ('<p class="muted">Only one department reports this measure.</p>' if departments == 1 else "")
            + table_html(tiles))
    return _page(f"{name}: compared across departments - CityStat", _body(options, measure, main))
