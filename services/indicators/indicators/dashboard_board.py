"""The board leadership reads first (issue 22): what is wrong first, with counts.

Tiles arrive worst first (``board_order.severity``); grouping keeps that order, so the cluster and
the department with the worst figure come first too. 311 figures per service are folded into one
link per department (with their counts) that opens them as a filtered view."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from urllib.parse import urlencode

from indicators.board_order import summary_line
from indicators.dashboard_tiles import STATUS_LABEL, STATUS_SYMBOL, Tile, tile_html
from indicators.states import STATES


def _legend(tiles: list[Tile]) -> str:
    counts: defaultdict[str, int] = defaultdict(int)
    for t in tiles:
        counts[t.state] += 1
    return '<p class="legend" role="status" aria-live="polite">' + " ".join(
        f'<span>{STATUS_SYMBOL[s]} {STATUS_LABEL[s]}: {counts[s]}</span>' for s in STATES) + "</p>"


def _services_link(services: list[Tile], query: dict[str, str], **narrow: str) -> str:
    if not services:
        return ""
    q = urlencode({**query, **narrow, "source": "311", "services": "show"})
    return (f'<p class="services"><a href="/dashboard?{escape(q)}">311 by service: {len(services)} '
            f'figure{"s" if len(services) != 1 else ""} ({escape(summary_line(t.state for t in services))})</a></p>')


def _summary(label: str, tiles: list[Tile]) -> str:
    return f'<p class="summary">{escape(label)}: {escape(summary_line(t.state for t in tiles))}</p>'


def board_html(tiles: list[Tile], *, show_services: bool, query: dict[str, str], side_by_side: bool = False,
               deputies: dict[str, str] | None = None) -> str:
    """Clusters, then departments, each with its summary line; per-service 311 figures folded.
    ``side_by_side`` (one cluster chosen, a deputy mayor's view): one column per department.
    ``deputies``: cluster code -> the deputy mayor's name, shown under the cluster's heading."""
    if not tiles:
        return '<p role="status">No indicators match these filters.</p>'
    clusters: dict[tuple[str, str], dict[tuple[str, str], list[Tile]]] = defaultdict(lambda: defaultdict(list))
    for t in tiles:
        clusters[(t.cluster_code, t.cluster_name)][(t.ind.department_code, t.dept_name)].append(t)
    out = [_legend(tiles)]
    # unassigned departments last; otherwise the order of the worst figure (tiles come sorted)
    for (ccode, cname), depts in sorted(clusters.items(), key=lambda kv: kv[0][0] == "_none"):
        everyone = [t for ts in depts.values() for t in ts]
        deputy = (deputies or {}).get(ccode)
        out.append(f'<section aria-labelledby="c-{escape(ccode)}"><h2 class="cluster" id="c-{escape(ccode)}">{escape(cname)}</h2>'
                   + (f'<p class="deputy" id="deputy-{escape(ccode)}">Deputy mayor: {escape(deputy)}</p>' if deputy else "")
                   + _summary(cname, everyone) + f'<div class="depts{" side" if side_by_side else ""}">')
        for (dcode, dname), ts in depts.items():
            own = [t for t in ts if not t.by_service]
            services = [t for t in ts if t.by_service]
            out.append(
                f'<section aria-labelledby="d-{escape(dcode)}"><h3 class="dept" id="d-{escape(dcode)}">{escape(dname)} '
                f'<a class="muted noprint" href="/dashboard/departments/{escape(dcode)}/report">printable report</a></h3>'
                + _summary(dname, ts)
                + (f'<ul class="tiles">{"".join(tile_html(t) for t in own)}</ul>' if own else ""))
            if services and show_services:
                out.append(f'<h4 class="services">311 by service</h4><ul class="tiles">'
                           f'{"".join(tile_html(t) for t in services)}</ul>')
            elif services:
                out.append(_services_link(services, query, department=dcode))
            out.append("</section>")
        out.append("</div></section>")
    return "".join(out)


def city_board_html(tiles: list[Tile], *, show_services: bool, query: dict[str, str]) -> str:
    """Every department's figures in one list, the city's worst first."""
    if not tiles:
        return '<p role="status">No indicators match these filters.</p>'
    shown = tiles if show_services else [t for t in tiles if not t.by_service]
    folded = [] if show_services else [t for t in tiles if t.by_service]
    return (
        _legend(tiles)
        + '<section aria-labelledby="city"><h2 class="cluster" id="city">Across the city, what is wrong first</h2>'
        + _summary("The city", tiles)
        + f'<ul class="tiles" id="city-tiles">{"".join(tile_html(t, department=True) for t in shown)}</ul>'
        + _services_link(folded, query)
        + "</section>"
    )
