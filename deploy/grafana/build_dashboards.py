"""Generate the Grafana dashboards provisioned by docker-compose.yml.

    .venv/bin/python deploy/grafana/build_dashboards.py          # rewrite deploy/grafana/dashboards/*.json
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if a JSON file is stale

The JSON files are what Grafana loads; this file is what people edit. tests/deploy checks that
the files are up to date and that every PromQL expression names only metrics the services
export (the list in tests/deploy/metric_catalog.py).

Conventions in the queries: counters are summed over instances; state gauges (backlogs, open
tickets, statuses) are set by every replica of a worker from the same database, so they are
combined with max by (...) first and only then summed across departments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SERVICE_JOBS = "intake311|indicators|escalation|directory"

Panel = dict[str, Any]


# ----------------------------------------------------------------------------- panel builders


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, fmt: str = "time_series") -> dict:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
        "format": fmt,
    }


def _targets(queries: list[tuple[str, str]], **kw: Any) -> list[dict]:
    return [_target(expr, legend, chr(ord("A") + i), **kw) for i, (expr, legend) in enumerate(queries)]


def _thresholds(steps: list[tuple[float | None, str]]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    stack: bool = False,
    bars: bool = False,
    thresholds: list[tuple[float | None, str]] | None = None,
    w: int = 12,
    h: int = 8,
) -> Panel:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if (stack or bars) else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    if thresholds:
        custom["thresholdsStyle"] = {"mode": "line"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": custom,
                "thresholds": _thresholds(thresholds or [(None, "green")]),
                "color": {"mode": "palette-classic"},
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (w, h),
    }


def stat(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[dict] | None = None,
    decimals: int | None = None,
    w: int = 6,
    h: int = 4,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": _thresholds(thresholds or [(None, "blue")]),
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
        "_size": (w, h),
    }


def bargauge(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[float | None, str]] | None = None,
    minimum: float | None = 0,
    maximum: float | None = None,
    w: int = 12,
    h: int = 8,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": _thresholds(thresholds or [(None, "blue")]),
        "color": {"mode": "thresholds"},
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        },
        "_size": (w, h),
    }


def matrix(
    title: str,
    expr: str,
    *,
    rows: str,
    columns: str,
    description: str = "",
    colors: dict[str, str] | None = None,
    w: int = 12,
    h: int = 10,
) -> Panel:
    """A table with one row per value of ``rows`` and one column per value of ``columns``."""
    overrides = [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [
                {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            ],
        }
        for name, color in (colors or {}).items()
    ]
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, "", "A", instant=True, fmt="table")],
        "transformations": [
            {"id": "groupingToMatrix", "options": {"rowField": rows, "columnField": columns, "valueField": "Value"}},
        ],
        "fieldConfig": {"defaults": {"unit": "short", "noValue": "0"}, "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "_size": (w, h),
    }


def table(title: str, expr: str, *, description: str = "", w: int = 12, h: int = 8) -> Panel:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, "", "A", instant=True, fmt="table")],
        "transformations": [
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "count"}}},
        ],
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "_size": (w, h),
    }


def heatmap(title: str, expr: str, *, unit: str = "short", description: str = "", w: int = 12, h: int = 8) -> Panel:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, "{{le}}", "A", fmt="heatmap")],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": unit},
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "cellGap": 1,
            "tooltip": {"show": True, "yHistogram": True},
        },
        "_size": (w, h),
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[dict], tags: list[str]) -> dict:
    x = y = row_height = 0
    laid_out = []
    for panel_id, panel in enumerate(panels, start=1):
        w, h = panel.pop("_size")
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        panel = {"id": panel_id, **panel, "gridPos": {"x": x, "y": y, "w": w, "h": h}}
        laid_out.append(panel)
        x += w
        row_height = max(row_height, h)
        if panel["type"] == "row":
            x, y, row_height = 0, y + h, 0
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["citystat", *tags],
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["citystat"], "asDropdown": True, "title": "CityStat", "includeVars": False}
        ],
        "panels": laid_out,
    }


# ----------------------------------------------------------------------------- the dashboards

UP_DOWN = [
    {"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}
]


def system_health() -> dict:
    svc = 'service=~"$service"'
    panels = [
        row("Processes and broker"),
        stat(
            "Scrape targets up",
            [(f'sum by (job, component) (up{{job=~"{SERVICE_JOBS}"}})', "{{job}} {{component}}")],
            description="Targets answering /metrics, per service and component (api, worker replicas).",
            thresholds=[(None, "red"), (1, "green")],
            w=12,
        ),
        stat(
            "Broker reachable (outbox relay)",
            [(f"max by (service) (citystat_broker_up{{{svc}}})", "{{service}}")],
            mappings=UP_DOWN,
            thresholds=[(None, "red"), (1, "green")],
            w=6,
        ),
        table(
            "Firing alerts",
            'sum by (alertname, severity, scope) (ALERTS{alertstate="firing"})',
            description="Alerts firing in Prometheus (rules in deploy/prometheus/rules).",
            w=6,
            h=4,
        ),
        row("HTTP"),
        timeseries(
            "Requests per second",
            [(f"sum by (service) (rate(citystat_http_requests_total{{{svc}}}[$__rate_interval]))", "{{service}}")],
            unit="reqps",
            w=8,
        ),
        timeseries(
            "Share of 5xx responses",
            [
                (
                    f'sum by (service) (rate(citystat_http_requests_total{{{svc}, status=~"5.."}}[$__rate_interval]))'
                    f" / sum by (service) (rate(citystat_http_requests_total{{{svc}}}[$__rate_interval]))",
                    "{{service}}",
                )
            ],
            unit="percentunit",
            thresholds=[(None, "green"), (0.05, "red")],
            w=8,
        ),
        timeseries(
            "Latency p95",
            [
                (
                    "histogram_quantile(0.95, sum by (service, le) "
                    f"(rate(citystat_http_request_duration_seconds_bucket{{{svc}}}[$__rate_interval])))",
                    "{{service}}",
                )
            ],
            unit="s",
            w=8,
        ),
        timeseries(
            "Slowest routes (p95)",
            [
                (
                    "topk(10, histogram_quantile(0.95, sum by (service, method, route, le) "
                    f"(rate(citystat_http_request_duration_seconds_bucket{{{svc}}}[$__rate_interval]))))",
                    "{{service}} {{method}} {{route}}",
                )
            ],
            unit="s",
            w=12,
        ),
        timeseries(
            "Responses by status",
            [(f"sum by (status) (rate(citystat_http_requests_total{{{svc}}}[$__rate_interval]))", "{{status}}")],
            unit="reqps",
            stack=True,
            w=12,
        ),
        row("Events"),
        timeseries(
            "Events published (outbox relay)",
            [(f"sum by (service, type) (rate(citystat_events_published_total{{{svc}}}[$__rate_interval]))", "{{type}}")],
            unit="ops",
            w=12,
        ),
        timeseries(
            "Events consumed",
            [(f"sum by (service, type) (rate(citystat_events_consumed_total{{{svc}}}[$__rate_interval]))", "{{service}} ← {{type}}")],
            unit="ops",
            w=12,
        ),
        timeseries(
            "Duplicates skipped and handler failures",
            [
                (f"sum by (service) (rate(citystat_events_duplicate_total{{{svc}}}[$__rate_interval]))", "duplicates {{service}}"),
                (f"sum by (service) (rate(citystat_events_failed_total{{{svc}}}[$__rate_interval]))", "failures {{service}}"),
            ],
            unit="ops",
            description="Duplicates are redeliveries the inbox skipped (harmless). Failures are handler attempts that raised; they are retried, then dead-lettered.",
            w=12,
        ),
        timeseries(
            "Dead-lettered events (per hour)",
            [(f"sum by (service, topic) (increase(citystat_events_dead_lettered_total{{{svc}}}[1h]))", "{{service}} {{topic}}")],
            bars=True,
            thresholds=[(None, "green"), (1, "red")],
            description="Events sent to <topic>.dlq after bounded retries. Anything here needs a person: see docs/operations.md#dead-letters.",
            w=12,
        ),
        row("Outbox and consumers"),
        timeseries(
            "Outbox backlog",
            [(f"max by (service) (citystat_outbox_backlog{{{svc}}})", "{{service}}")],
            description="Events written but not yet published. Grows while the broker is down; drains when it is back.",
            thresholds=[(None, "green"), (100, "orange")],
            w=8,
        ),
        timeseries(
            "Oldest unpublished event",
            [(f"max by (service) (citystat_outbox_oldest_pending_seconds{{{svc}}})", "{{service}}")],
            unit="s",
            thresholds=[(None, "green"), (300, "red")],
            w=8,
        ),
        timeseries(
            "Consumer lag by topic",
            [
                (
                    f"sum by (service, topic) (max by (service, topic, partition) (citystat_consumer_lag{{{svc}}}))",
                    "{{service}} ← {{topic}}",
                )
            ],
            description="Messages not yet processed, summed over partitions (approximate on the local Tansu broker).",
            thresholds=[(None, "green"), (1000, "orange")],
            w=8,
        ),
    ]
    variables = [variable("service", "Service", "label_values(citystat_http_requests_total, service)")]
    return dashboard(
        "citystat-system",
        "CityStat · System health",
        "Processes, HTTP, events, outbox and consumers of the four CityStat services.",
        panels,
        variables,
        ["system"],
    )


def intake311() -> dict:
    dep = 'department=~"$department"'
    overdue = f"max by (department) (citystat_intake311_requests_overdue{{{dep}}})"
    backlog = f"max by (department) (citystat_intake311_open_backlog{{{dep}}})"
    created = f"citystat_intake311_requests_created_total{{{dep}}}"
    panels = [
        row("Today"),
        stat("Requests received (24h)", [(f"sum(increase({created}[24h]))", "")], decimals=0),
        stat("Open requests", [(f"sum({backlog})", "")]),
        stat(
            "Open requests past their service level",
            [(f"sum({overdue})", "")],
            thresholds=[(None, "green"), (1, "orange")],
        ),
        stat(
            "Open requests within service level",
            [(f"1 - sum({overdue}) / sum({backlog})", "")],
            unit="percentunit",
            decimals=1,
            thresholds=[(None, "red"), (0.8, "orange"), (0.9, "green")],
            description="Share of open requests not yet past the service level promised to the resident.",
        ),
        row("Volumes"),
        timeseries(
            "Requests received per hour, by department",
            [(f"sum by (department) (increase({created}[1h]))", "{{department}}")],
            stack=True,
            bars=True,
            w=12,
        ),
        timeseries(
            "Requests received per hour, by channel",
            [(f"sum by (channel) (increase({created}[1h]))", "{{channel}}")],
            stack=True,
            bars=True,
            w=12,
        ),
        bargauge(
            "Top 10 services (7 days)",
            [(f"topk(10, sum by (service_code) (increase({created}[7d])))", "{{service_code}}")],
            w=12,
        ),
        bargauge("Open requests by department", [(backlog, "{{department}}")], w=12),
        row("Service-level compliance"),
        bargauge(
            "Open requests within service level, by department",
            [(f"1 - ({overdue} / {backlog})", "{{department}}")],
            unit="percentunit",
            thresholds=[(None, "red"), (0.8, "orange"), (0.9, "green")],
            maximum=1,
            w=12,
        ),
        timeseries(
            "Open requests past their service level",
            [(overdue, "{{department}}")],
            stack=True,
            w=12,
        ),
        row("Resident feedback"),
        timeseries(
            "Average satisfaction score (7-day window)",
            [
                (
                    f"sum by (department) (increase(citystat_intake311_feedback_score_sum{{{dep}}}[7d]))"
                    f" / sum by (department) (increase(citystat_intake311_feedback_score_count{{{dep}}}[7d]))",
                    "{{department}}",
                )
            ],
            w=12,
        ),
        heatmap(
            "Satisfaction scores",
            f"sum by (le) (increase(citystat_intake311_feedback_score_bucket{{{dep}}}[$__rate_interval]))",
            w=12,
        ),
    ]
    variables = [variable("department", "Department", "label_values(citystat_intake311_open_backlog, department)")]
    return dashboard(
        "citystat-311",
        "CityStat · 311 volumes and service levels",
        "Requests received by department, channel and service; open backlog; share within the service level; feedback.",
        panels,
        variables,
        ["311"],
    )


STATUS_COLORS = {"green": "green", "yellow": "yellow", "red": "red", "grey": "gray"}


def indicators() -> dict:
    dep = 'department=~"$department"'
    by_status = f"max by (department, status) (citystat_indicators_by_status{{{dep}}})"

    def count(status: str) -> str:
        return f'sum(max by (department) (citystat_indicators_by_status{{{dep}, status="{status}"}}))'

    panels = [
        row("Now"),
        stat("Red", [(count("red"), "")], thresholds=[(None, "green"), (1, "red")]),
        stat("Yellow", [(count("yellow"), "")], thresholds=[(None, "green"), (1, "yellow")]),
        stat("Green", [(count("green"), "")], thresholds=[(None, "green")]),
        stat("Grey (no data)", [(count("grey"), "")], thresholds=[(None, "text")]),
        matrix(
            "Indicator statuses by department",
            by_status,
            rows="department",
            columns="status",
            colors=STATUS_COLORS,
            description="Number of indicators in each status, per department (grey: no current observation).",
            w=12,
        ),
        timeseries(
            "Indicators by status, all departments",
            [(f"sum by (status) ({by_status})", "{{status}}")],
            stack=True,
            w=12,
            h=10,
        ),
        row("Over time"),
        timeseries(
            "Red indicators by department",
            [(f'max by (department) (citystat_indicators_by_status{{{dep}, status="red"}})', "{{department}}")],
            stack=True,
            w=12,
        ),
        timeseries(
            "Breaches per day, by department",
            [(f"sum by (department) (increase(citystat_indicators_breaches_total{{{dep}}}[1d]))", "{{department}}")],
            bars=True,
            stack=True,
            w=12,
        ),
        timeseries(
            "Observations received per hour, by department",
            [(f"sum by (department) (increase(citystat_indicators_observations_total{{{dep}}}[1h]))", "{{department}}")],
            w=12,
        ),
        timeseries(
            "Evaluations per hour, by resulting status",
            [("sum by (status) (increase(citystat_indicators_evaluations_total[1h]))", "{{status}}")],
            stack=True,
            w=12,
        ),
    ]
    variables = [variable("department", "Department", "label_values(citystat_indicators_by_status, department)")]
    return dashboard(
        "citystat-indicators",
        "CityStat · Indicator statuses by department",
        "Red, yellow, green and grey indicators per department; breaches, observations and evaluations.",
        panels,
        variables,
        ["indicators"],
    )


def escalation() -> dict:
    dep = 'department=~"$department"'
    open_ = f"max by (department, level, severity) (citystat_escalation_open_tickets{{{dep}}})"
    overdue = f"max by (department) (citystat_escalation_overdue_tickets{{{dep}}})"
    ack = f"citystat_escalation_time_to_ack_seconds_bucket{{{dep}}}"
    panels = [
        row("Now"),
        stat("Open tickets", [(f"sum({open_})", "")]),
        stat(
            "Unacknowledged past policy",
            [(f"sum({overdue})", "")],
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Opened (24h)",
            [(f"sum(increase(citystat_escalation_tickets_opened_total{{{dep}}}[24h]))", "")],
            decimals=0,
        ),
        stat(
            "Median time to acknowledge (7 days)",
            [(f"histogram_quantile(0.5, sum by (le) (increase({ack}[7d])))", "")],
            unit="s",
        ),
        row("By level"),
        bargauge(
            "Open tickets by level",
            [(f"sum by (level) ({open_})", "level {{level}}")],
            description="Level 0 is the senior-team partner, then department head, deputy mayor, managing director (default policy).",
            w=8,
        ),
        matrix(
            "Open tickets by department and level",
            f"sum by (department, level) ({open_})",
            rows="department",
            columns="level",
            w=16,
            h=8,
        ),
        timeseries(
            "Open tickets by level",
            [(f"sum by (level) ({open_})", "level {{level}}")],
            stack=True,
            w=12,
        ),
        timeseries(
            "Open tickets by severity",
            [(f"sum by (severity) ({open_})", "severity {{severity}}")],
            stack=True,
            w=12,
        ),
        timeseries(
            "Escalations per hour, by level reached",
            [(f"sum by (to_level) (increase(citystat_escalation_escalations_total{{{dep}}}[1h]))", "to level {{to_level}}")],
            bars=True,
            stack=True,
            w=12,
        ),
        timeseries(
            "Tickets opened per hour, by source",
            [(f"sum by (source) (increase(citystat_escalation_tickets_opened_total{{{dep}}}[1h]))", "{{source}}")],
            bars=True,
            stack=True,
            w=12,
        ),
        row("Age"),
        timeseries(
            "Unacknowledged past policy, by department",
            [(overdue, "{{department}}")],
            stack=True,
            thresholds=[(None, "green"), (1, "red")],
            w=12,
        ),
        timeseries(
            "Time to acknowledge (p50 and p90, 1-day window)",
            [
                (f"histogram_quantile(0.5, sum by (le) (increase({ack}[1d])))", "p50"),
                (f"histogram_quantile(0.9, sum by (le) (increase({ack}[1d])))", "p90"),
            ],
            unit="s",
            w=12,
        ),
        bargauge(
            "Time to acknowledge p90 by department (7 days)",
            [(f"histogram_quantile(0.9, sum by (department, le) (increase({ack}[7d])))", "{{department}}")],
            unit="s",
            w=12,
        ),
        heatmap(
            "Time to acknowledge",
            f"sum by (le) (increase({ack}[$__rate_interval]))",
            unit="s",
            w=12,
        ),
    ]
    variables = [variable("department", "Department", "label_values(citystat_escalation_open_tickets, department)")]
    return dashboard(
        "citystat-escalation",
        "CityStat · Escalation tickets by level and age",
        "Open tickets by level, severity and department; escalations; tickets past their policy; time to acknowledge.",
        panels,
        variables,
        ["escalation"],
    )


DASHBOARDS = {
    "citystat-system.json": system_health,
    "citystat-311.json": intake311,
    "citystat-indicators.json": indicators,
    "citystat-escalation.json": escalation,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale dashboards (run deploy/grafana/build_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
