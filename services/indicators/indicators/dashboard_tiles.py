"""A dashboard tile: what one indicator shows leadership, read for a whole board in batched queries
(latest figures, sparkline points, overrides, years to date), never one query per tile."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import sqlalchemy as sa

from citystat_common.db import utcnow
from indicators import service
from indicators.board_order import per_service_311, severity
from indicators.deps import IndicatorsDeps
from indicators.models import Department, Indicator, TicketCopy, observations
from indicators.periods import period_of
from indicators.states import State, indicator_state
from indicators.ticket_copy import open_tickets, ticket_url, ticket_words
from indicators.trend import Trend, desired_words, trend_of
from indicators.year_to_date import YearToDate, years_to_date

# keyed by state (indicators.states) and by stored status: a stored grey row reads as no report
STATUS_LABEL = {"red": "RED", "yellow": "YELLOW", "green": "GREEN", "grey": "NO REPORT", "no_report": "NO REPORT",
                "baseline": "BUILDING A BASELINE"}
STATUS_SYMBOL = {"red": "\u25b2", "yellow": "\u25c6", "green": "\u25cf", "grey": "\u25cb", "no_report": "\u25cb",
                 "baseline": "\u25cc"}  # ▲ ◆ ● ○ ◌
STATUS_FILL = {"red": "#b3261e", "yellow": "#f5c518", "green": "#1e7b34", "grey": "#5f6368", "no_report": "#5f6368",
               "baseline": "#e8f0fe"}
SPARK_POINTS = 12


def fmt(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "\u2013"
    if unit == "percentage":
        return f"{value:.1f}%"
    if unit == "currency":
        return f"${value:,.2f}" if abs(value) < 100 else f"${value:,.0f}"
    if unit == "duration":
        return f"{value:,.1f}"
    if unit == "score":
        return f"{value:.2f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def sparkline(points: list[tuple[float, str]], *, width: int = 220, height: int = 40, label: str = "") -> str:
    if len(points) < 2:
        return f'<svg width="{width}" height="{height}" role="img" aria-label="{escape(label)}: not enough points for a trend"></svg>'
    vals = [v for v, _ in points]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    step = (width - 8) / (len(points) - 1)
    xy = [(4 + i * step, height - 4 - (v - lo) / span * (height - 8)) for i, v in enumerate(vals)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    last_x, last_y = xy[-1]
    trend = "rising" if vals[-1] > vals[0] else "falling" if vals[-1] < vals[0] else "flat"
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)} trend over {len(vals)} periods: {trend}">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2.5" points="{path}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="4" fill="currentColor"/></svg>'
    )


@dataclass
class Tile:
    ind: Indicator
    status: str
    state: State
    overridden: bool
    override_reason: str | None
    reason: str | None
    period: str | None
    value: float | None
    target: float | None
    spark: list[tuple[float, str]]
    dept_name: str
    cluster_code: str
    cluster_name: str
    year: YearToDate | None = None
    trend: Trend | None = None
    override_by: str | None = None  # who set the override in force (a person's name, or "key <name>")
    ticket: TicketCopy | None = None  # the open ticket on a red or yellow figure, from the local copy
    ticket_link: str | None = None  # its page in the escalation service

    # what board_order.severity ranks by
    @property
    def code(self) -> str:
        return self.ind.code

    @property
    def critical(self) -> bool:
        return bool(self.ind.critical)

    @property
    def miss(self) -> float | None:
        return self.ind.latest_miss

    @property
    def by_service(self) -> bool:
        return per_service_311(self.ind.code, self.ind.derived_from)


async def load_tiles(uow: Any, deps: IndicatorsDeps, *, cluster: str | None, department: str | None, kind: str | None,
                 critical: bool, source: str | None = None, codes: Sequence[str] | None = None) -> list[Tile]:
    """``codes``: only these indicators (the comparison of one measure across departments)."""
    stmt = (
        sa.select(Indicator, Department.name, Department.cluster_code, Department.cluster_name)
        .outerjoin(Department, Department.code == Indicator.department_code)
        .where(Indicator.active.is_(True))
        .order_by(Indicator.department_code, Indicator.derived_from.is_not(None), Indicator.code)
    )
    if cluster:
        stmt = stmt.where(Department.cluster_code == cluster) if cluster != "_none" else stmt.where(Department.cluster_code.is_(None))
    if department:
        stmt = stmt.where(Indicator.department_code == department)
    if kind:
        stmt = stmt.where(Indicator.kind == kind)
    if critical:
        stmt = stmt.where(Indicator.critical.is_(True))
    if codes is not None:
        stmt = stmt.where(Indicator.code.in_(list(codes)))
    else:  # Stat by area's figures have their own pages (dashboard_map), not the departments' board
        stmt = stmt.where(sa.or_(Indicator.derived_from.is_(None), Indicator.derived_from != "311-area"))
    if source == "reported":
        stmt = stmt.where(Indicator.derived_from.is_(None))
    elif source == "311":
        stmt = stmt.where(Indicator.derived_from == "311")
    rows = (await uow.session.execute(stmt)).all()
    ids = [r[0].id for r in rows]
    now = utcnow()
    overrides = await service.active_overrides(uow, ids, now)
    spark: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for i in range(0, len(ids), 400):
        chunk = ids[i : i + 400]
        rn = sa.func.row_number().over(partition_by=observations.c.indicator_id,
                                       order_by=observations.c.period_start.desc()).label("rn")
        sub = sa.select(observations.c.indicator_id, observations.c.period_start, observations.c.value,
                        observations.c.status, rn).where(observations.c.indicator_id.in_(chunk)).subquery()
        res = await uow.session.execute(
            sa.select(sub.c.indicator_id, sub.c.value, sub.c.status).where(sub.c.rn <= SPARK_POINTS)
            .order_by(sub.c.indicator_id, sub.c.period_start)
        )
        for iid, value, status in res:
            spark[iid].append((value, status))
    tiles = []
    fy0 = deps.settings.fiscal_year_start_month
    years = await years_to_date(uow, [r[0] for r in rows], fy0)
    tickets = await open_tickets(uow, ids)
    for ind, dname, ccode, cname in rows:
        override = overrides.get(ind.id)
        status, overridden, oreason, reason = service.effective_status(ind, override, now)
        state = indicator_state(ind, status, overridden, now)
        ticket = tickets.get(ind.id) if state in ("red", "yellow") else None
        tiles.append(Tile(
            ind=ind, status=status, state=state, overridden=overridden, override_reason=oreason, reason=reason,
            period=period_of(ind.frequency, ind.latest_period_start, fy0).label if ind.latest_period_start else None,
            value=ind.latest_value, target=ind.latest_reference, spark=spark.get(ind.id, []),
            dept_name=dname or ind.department_code, cluster_code=ccode or "_none", cluster_name=cname or "Unassigned",
            year=years.get(ind.id), trend=trend_of([v for v, _ in spark.get(ind.id, [])], ind.direction),
            override_by=override.created_by if overridden and override else None, ticket=ticket,
            ticket_link=ticket_url(deps.settings.escalation_url, ticket.ticket_id) if ticket else None,
        ))
    tiles.sort(key=severity)  # what is wrong first; pages group this order, never re-sort it
    return tiles


def year_words(t: Tile) -> str:
    """'FY2027 to date 1,234 (last year 1,100)', last year being the same periods; empty before any figure."""
    if t.year is None or not t.year.periods:
        return ""
    unit = t.ind.unit
    last = f"last year {fmt(t.year.last_year, unit)}" if t.year.last_year is not None else "none on record last year"
    return f"FY{t.year.fiscal_year} to date {fmt(t.year.value, unit)} ({last})"


def trend_words(t: Tile) -> str:
    """'lower is better; trend down (desirable) over 12 periods'."""
    trend = t.trend.words if t.trend else "too few periods for a trend"
    return f"{desired_words(t.ind.direction)}; trend {trend}"


def tile_html(t: Tile, *, department: bool = False) -> str:
    """``department``: name the department too (the city view mixes them)."""
    ind = t.ind
    label = STATUS_LABEL[t.state]
    # a figure that is owed shows no value: the last one it had is older than the period owed
    shown = None if t.state == "no_report" else t.value
    year = year_words(t)
    parts = [
        f'<li><a class="tile status-{t.state}" href="/dashboard/indicators/{escape(ind.code)}" '
        # no aria-label: the tile's own words (status, name, value, target) are its accessible name
        f'data-code="{escape(ind.code)}" data-status="{t.status}" data-state="{t.state}">',
        f'<div class="badge">{STATUS_SYMBOL[t.state]} {label}'
        + (' <span class="crit">CRITICAL</span>' if ind.critical else "")
        + (' <span class="crit">OVERRIDE</span>' if t.overridden else "") + "</div>",
        f'<div class="name">{escape(ind.name)}</div>'
        + (f'<div class="dept-of">{escape(t.dept_name)}</div>' if department else ""),
        f'<div><span class="val">{fmt(shown, ind.unit)}</span> '
        + (f'<span class="tgt">{escape(t.period or "no report yet")}' if shown is not None
           else f'<span class="tgt">{"last figure " + escape(t.period) + ": " + fmt(t.value, ind.unit) if t.period and t.value is not None else "no figure yet"}')
        + (f" &middot; {'target' if ind.basis == 'target' else 'ref'} {fmt(t.target, ind.unit)}" if t.target is not None else "")
        + "</span></div>",
        (f'<div class="ytd">{escape(year)}</div>' if year else ""),
        f'<div class="trend">{escape(trend_words(t))}</div>',
        sparkline([(v, s) for v, s in t.spark], label=ind.name),
    ]
    if t.overridden and t.override_reason:
        author = f" by {t.override_by}" if t.override_by else ""
        parts.append(f'<div class="ovr">Override{escape(author)}: {escape(t.override_reason)}</div>')
    elif t.state in ("no_report", "baseline") and t.reason:
        parts.append(f'<div class="ovr">{escape(t.reason)}</div>')
    parts.append("</a>")
    if t.ticket is not None and t.ticket_link:
        # beside the tile, not inside it: a link in a link is not allowed (nor reachable by keyboard)
        parts.append(ticket_html(t.ticket, t.ticket_link, css=f"ticket status-{t.state}"))
    parts.append("</li>")
    return "".join(parts)


def ticket_html(ticket: TicketCopy, link: str, *, css: str = "ticket") -> str:
    """Who is on it: the open ticket's status, holder, level and last action, linking to its page."""
    words = ticket_words(ticket)
    return (f'<a class="{css}" href="{escape(link)}" data-ticket="{escape(ticket.ticket_id)}">'
            f'<span class="ticket-status">{escape(words[0])}</span>'
            + "".join(f'<span class="ticket-{k}">{escape(w)}</span>'
                      for k, w in zip(("holder", "level", "action"), words[1:], strict=True)) + "</a>")

