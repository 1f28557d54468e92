"""Stat by area's pages (issue 21): the dashboard of one area and the map of a layer.

- ``/dashboard?area=LAYER:CODE`` (``dashboard.dashboard`` hands it here): "my district" for a
  council member: the map of the layer with the area outlined, coloured by a chosen figure's status,
  with its text table beside it; the area's own 311 figures; its departments side by side.
- ``/dashboard/areas``: the layers the city keeps Stat by area for; ``/dashboard/areas/{layer}``:
  the map of every area coloured by one figure's status (``metric``, optionally one
  ``department``'s), with the table (area, status, value) beside it for screen readers.

The boundaries come from intake311 through ``deps.area_maps`` (cached); when they cannot be had,
the page says so and keeps its table.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from citystat_common.errors import DomainError
from citystat_common.web import ReadUoW, UoW
from indicators import derived311
from indicators.area_maps import AreaMapUnavailable
from indicators.area_stat import AREA_METRICS, AreaScope, area_prefix, parse_area
from indicators.dashboard import CSS, JS
from indicators.dashboard_tiles import (
    STATUS_FILL,
    STATUS_LABEL,
    STATUS_SYMBOL,
    Tile,
    fmt,
    load_tiles,
    tile_html,
)
from indicators.deps import Deps, IndicatorsDeps
from indicators.map_svg import Shade, map_svg
from indicators.models import Department, Indicator, RequestArea
from indicators.people import PageViewer

router = APIRouter(tags=["dashboard"])
INK = {"red": "#fff", "green": "#fff", "no_report": "#fff", "grey": "#fff", "yellow": "#000", "baseline": "#0b2545"}
MAP_CSS = """
.area-view{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}.area-view figure{margin:0;flex:1 1 420px;max-width:680px}
.area-view figcaption{font-size:.9rem}.area-view .area-table{flex:1 1 320px}.area-table td.num{text-align:right}
tr.chosen th,tr.chosen td{font-weight:800;background:#fff8d6}
"""
Metric = Annotated[str, Query(pattern="^(" + "|".join(AREA_METRICS) + ")$", description="the figure the map colours by")]


def layer_words(layer: str) -> str:
    """'council_district' -> 'Council district' (intake311's layer codes are lower case with _)."""
    return layer.replace("_", " ").capitalize()


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}{MAP_CSS}</style></head>"
        f"<body data-refresh=\"0\">{body}<script>{JS}</script></body></html>", status_code=status)


def refused_page(title: str, why: str, status: int) -> HTMLResponse:
    return _page(title, f'<header><h1>{escape(title)}</h1><a href="/dashboard">Dashboard</a>'
                        f'<a href="/dashboard/areas">Areas</a></header><main><p role="alert">{escape(why)}</p></main>',
                 status)


async def _boundaries(deps: IndicatorsDeps, layer: str) -> tuple[dict[str, Any] | None, str | None]:
    """The layer's FeatureCollection, or None and why not (the page says it)."""
    if deps.area_maps is None:
        return None, "The map is not available: no boundary source is configured."
    try:
        doc = await deps.area_maps.layer(layer)
    except AreaMapUnavailable as exc:
        return None, f"The map is not available now ({exc}); the table below has every figure."
    if doc is None:
        return None, f"intake311 has no boundary layer {layer!r}: there is no map to draw."
    return doc, None


def _names(doc: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in (doc or {}).get("features") or []:
        props = f.get("properties") or {}
        if props.get("code") is not None:
            out[str(props["code"])] = str(props.get("name") or props["code"])
    return out


async def layer_figures(uow: UoW, deps: IndicatorsDeps, *, layer: str, metric: str, dept: str | None,
                        codes: set[str]) -> dict[str, Tile]:
    """Area code -> the tile of its figure ``metric`` (one department's, or the area's as a whole)."""
    known = set((await uow.session.execute(
        sa.select(RequestArea.area_code).where(RequestArea.layer == layer).distinct())).scalars())
    wanted = {AreaScope(layer, c, dept).indicator_code(metric): c for c in codes | known}
    tiles = await load_tiles(uow, deps, cluster=None, department=None, kind=None, critical=False, codes=list(wanted))
    return {wanted[t.ind.code]: t for t in tiles}


def _shades(figures: dict[str, Tile], chosen: str | None) -> dict[str, Shade]:
    shades = {code: Shade(fill=STATUS_FILL[t.state], ink=INK.get(t.state, "#000"), label=STATUS_SYMBOL[t.state],
                          title=f"{STATUS_LABEL[t.state]}, {fmt(t.value, t.ind.unit)}", chosen=code == chosen)
              for code, t in figures.items()}
    if chosen is not None and chosen not in shades:
        shades[chosen] = Shade(fill="#ffffff", label="", title="no figure", chosen=True)
    return shades


def _table(layer: str, names: dict[str, str], figures: dict[str, Tile], chosen: str | None, caption: str) -> str:
    rows = []
    for code in sorted(set(names) | set(figures), key=lambda c: (names.get(c, c), c)):
        t = figures.get(code)
        state = t.state if t else None
        link = f'/dashboard?{urlencode({"area": f"{layer}:{code}"})}'
        rows.append(
            f'<tr data-code="{escape(code)}"{" class=chosen" if code == chosen else ""}>'
            f'<th scope="row"><a href="{escape(link)}">{escape(names.get(code, code))}</a>'
            + (f' <span class="muted">({escape(code)})</span>' if names.get(code, code) != code else "") + "</th>"
            + (f'<td class="state"><span class="pill status-{state}">{STATUS_SYMBOL[state]} {STATUS_LABEL[state]}</span></td>'
               if state else '<td class="state">no figure</td>')
            + f'<td class="num">{fmt(t.value, t.ind.unit) if t else "&ndash;"}</td>'
            f'<td>{escape(t.period or "") if t else ""}</td></tr>')
    return (f'<table class="area-table" id="area-table"><caption>{escape(caption)}</caption><thead><tr>'
            '<th scope="col">Area</th><th scope="col">Status</th><th scope="col">Value</th><th scope="col">Period</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _figure_words(metric: str, dept: str | None) -> str:
    return derived311.METRICS[metric].name + (f" ({dept})" if dept else "")


async def map_view(uow: UoW, deps: IndicatorsDeps, *, layer: str, metric: str, dept: str | None,
                   chosen: str | None, dept_name: str | None = None) -> tuple[str, dict[str, str]]:
    """The map and its table side by side; also the areas' names (from the boundaries)."""
    doc, why = await _boundaries(deps, layer)
    names = _names(doc)
    figures = await layer_figures(uow, deps, layer=layer, metric=metric, dept=dept, codes=set(names))
    words = _figure_words(metric, dept_name or dept)
    title = f"{layer_words(layer)}s coloured by {words}"
    states: defaultdict[str, int] = defaultdict(int)
    for t in figures.values():
        states[STATUS_LABEL[t.state].lower()] += 1
    desc = (f"{len(names)} areas; " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            + (f"; {names.get(chosen, chosen)} is outlined" if chosen else "") + ". The table beside the map has every figure.")
    drawn = (f'<figure id="area-map">{map_svg(doc, _shades(figures, chosen), title=title, desc=desc)}'
             f'<figcaption>Each area shows its status symbol and code; white: no figure yet.</figcaption></figure>'
             if doc is not None else f'<p role="status" id="no-map">{escape(why or "")}</p>')
    return (f'<div class="area-view">{drawn}'
            + _table(layer, names, figures, chosen, f"{title}: area, status and latest value") + "</div>"), names


def _choosers(action: str, metric: str, hidden: dict[str, str], dept_opts: list[tuple[str, str]] | None = None,
              dept: str | None = None) -> str:
    opts = "".join(f'<option value="{m}"{" selected" if m == metric else ""}>{escape(derived311.METRICS[m].name)}</option>'
                   for m in AREA_METRICS)
    parts = [f'<form id="filters" class="filters" method="get" action="{escape(action)}" aria-label="Map colours">']
    parts += [f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden.items()]
    parts.append(f'<label for="f-metric">Colour the map by<select id="f-metric" name="metric">{opts}</select></label>')
    if dept_opts is not None:
        d = "".join(f'<option value="{escape(c)}"{" selected" if c == dept else ""}>{escape(n)}</option>' for c, n in dept_opts)
        parts.append(f'<label for="f-department">Department<select id="f-department" name="department">'
                     f'<option value="">All departments</option>{d}</select></label>')
    parts.append('<button type="submit">Show</button></form>')
    return "".join(parts)


def unmarked_layer(deps: IndicatorsDeps, layer: str) -> HTMLResponse | None:
    if layer in deps.settings.stat_area_layers:
        return None
    return refused_page("Area not found - CityStat", f"The city keeps no figures by area for the layer {layer!r} "
                    "(INDICATORS_STAT_AREA_LAYERS names the layers that have them).", 404)


def chosen_area(deps: IndicatorsDeps, area: str) -> tuple[str, str] | HTMLResponse:
    """(layer, code) of ``LAYER:CODE`` in a marked layer, else the page that says why not."""
    try:
        layer, code = parse_area(area)
    except DomainError as exc:
        return refused_page("Choose an area - CityStat", exc.detail, 422)
    return unmarked_layer(deps, layer) or (layer, code)


async def area_dashboard(uow: UoW, deps: IndicatorsDeps, *, area: str, metric: str) -> HTMLResponse:
    """``/dashboard?area=LAYER:CODE``: one area's dashboard."""
    if isinstance(chosen := chosen_area(deps, area), HTMLResponse):
        return chosen
    layer, code = chosen
    view, names = await map_view(uow, deps, layer=layer, metric=metric, dept=None, chosen=code)
    codes = (await uow.session.execute(sa.select(Indicator.code).where(
        Indicator.code.startswith(area_prefix(layer, code), autoescape=True), Indicator.active.is_(True)))).scalars().all()
    tiles = await load_tiles(uow, deps, cluster=None, department=None, kind=None, critical=False, codes=codes)
    own_codes = {AreaScope(layer, code).indicator_code(m) for m in AREA_METRICS}
    own = [t for t in tiles if t.ind.code in own_codes]
    by_dept: dict[str, list[Tile]] = defaultdict(list)
    for t in tiles:
        if t.ind.code not in own_codes:
            by_dept[t.ind.department_code].append(t)  # tiles come worst first: so do the departments
    name = names.get(code, code)
    heading = f"{layer_words(layer)} {name}" + (f" ({code})" if name != code else "")
    q = urlencode({"area": area})
    depts = "".join(
        f'<section aria-labelledby="d-{escape(d)}"><h3 class="dept" id="d-{escape(d)}">{escape(ts[0].dept_name)}</h3>'
        f'<ul class="tiles">{"".join(tile_html(t) for t in ts)}</ul></section>' for d, ts in by_dept.items())
    body = (
        f'<header><h1>{escape(heading)}</h1><a href="/dashboard">Dashboard</a>'
        f'<a href="/dashboard/areas/{escape(layer)}?{urlencode({"metric": metric})}">Every {escape(layer_words(layer).lower())}</a>'
        f'<a href="/dashboard/areas/report?{escape(q)}">Printable report</a></header>'
        + _choosers("/dashboard", metric, {"area": area})
        + f'<main id="board"><h2 class="cluster" id="map-h">Where {escape(name)} stands</h2>{view}'
        f'<h2 class="cluster" id="area-h">311 in {escape(name)}</h2>'
        + (f'<ul class="tiles" id="area-tiles">{"".join(tile_html(t) for t in own)}</ul>' if own
           else '<p role="status">No 311 figures for this area yet.</p>')
        + f'<h2 class="cluster" id="depts-h">Departments in {escape(name)}</h2>'
        + (f'<div class="depts side" id="area-departments">{depts}</div>' if depts
           else '<p role="status">No department has 311 figures in this area yet.</p>')
        + "</main>")
    return _page(f"{heading} - CityStat", body)


@router.get("/dashboard/areas", response_class=HTMLResponse, summary="Stat by area: the city's layers")
async def area_layers(deps: Deps, viewer: PageViewer) -> HTMLResponse:
    layers = deps.settings.stat_area_layers
    items = "".join(f'<li><a href="/dashboard/areas/{escape(layer)}">{escape(layer_words(layer))}s</a></li>' for layer in layers)
    body = ('<header><h1>Stat by area</h1><a href="/dashboard">Dashboard</a></header><main>'
            + (f'<ul id="layers">{items}</ul>' if items else
               '<p role="status">The city keeps no figures by area yet (INDICATORS_STAT_AREA_LAYERS).</p>') + "</main>")
    return _page("Stat by area - CityStat", body)


@router.get("/dashboard/areas/{layer}", response_class=HTMLResponse,
            summary="Map of a layer's areas coloured by a 311 figure's status, with its table")
async def layer_map(layer: str, uow: ReadUoW, deps: Deps, viewer: PageViewer, metric: Metric = "closed_within_sla",
                    department: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
    if (refused := unmarked_layer(deps, layer)) is not None:
        return refused
    dept = department or None
    known = (await uow.session.execute(sa.select(Indicator.department_code).where(
        Indicator.code.startswith(f"311-area.{layer}.", autoescape=True),
        Indicator.department_code != deps.settings.stat_area_department).distinct())).scalars().all()
    named = dict((await uow.session.execute(
        sa.select(Department.code, Department.name).where(Department.code.in_(known)))).all())
    view, _ = await map_view(uow, deps, layer=layer, metric=metric, dept=dept, chosen=None,
                             dept_name=named.get(dept or "", dept))
    heading = f"{layer_words(layer)}s: {_figure_words(metric, named.get(dept or '', dept))}"
    body = (f'<header><h1>{escape(heading)}</h1><a href="/dashboard">Dashboard</a>'
            '<a href="/dashboard/areas">Every layer</a></header>'
            + _choosers(f"/dashboard/areas/{layer}", metric, {},
                        sorted(((c, named.get(c, c)) for c in known), key=lambda x: x[1]), dept)
            + f'<main id="board">{view}</main>')
    return _page(f"{heading} - CityStat", body)
