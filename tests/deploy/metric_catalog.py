"""The metrics the services export, as agreed for the deployment: the only citystat_* names
that the alert rules and the Grafana dashboards may use. A rule or a panel that names anything
else would silently show nothing, so the tests check every expression against this list.

name -> (kind, labels). Counters are listed with the ``_total`` suffix they are exported with;
a histogram ``h`` is exported as ``h_bucket`` (with ``le``), ``h_sum`` and ``h_count``.
"""

from __future__ import annotations

import re

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

METRICS: dict[str, tuple[str, frozenset[str]]] = {
    # shared, every service (citystat_common.metrics)
    "citystat_http_requests_total": (COUNTER, frozenset({"service", "method", "route", "status"})),
    "citystat_http_request_duration_seconds": (HISTOGRAM, frozenset({"service", "method", "route"})),
    "citystat_events_published_total": (COUNTER, frozenset({"service", "type"})),
    "citystat_events_consumed_total": (COUNTER, frozenset({"service", "type"})),
    "citystat_events_duplicate_total": (COUNTER, frozenset({"service", "type"})),
    "citystat_events_failed_total": (COUNTER, frozenset({"service", "type"})),
    "citystat_events_dead_lettered_total": (COUNTER, frozenset({"service", "topic", "type"})),
    "citystat_outbox_backlog": (GAUGE, frozenset({"service"})),
    "citystat_outbox_oldest_pending_seconds": (GAUGE, frozenset({"service"})),
    "citystat_consumer_lag": (GAUGE, frozenset({"service", "topic", "partition"})),
    "citystat_broker_up": (GAUGE, frozenset({"service"})),
    # intake311
    "citystat_intake311_requests_created_total": (COUNTER, frozenset({"service_code", "channel", "department"})),
    "citystat_intake311_open_backlog": (GAUGE, frozenset({"department"})),
    "citystat_intake311_requests_overdue": (GAUGE, frozenset({"department"})),
    "citystat_intake311_feedback_score": (HISTOGRAM, frozenset({"department"})),
    # indicators
    "citystat_indicators_by_status": (GAUGE, frozenset({"department", "status"})),
    "citystat_indicators_observations_total": (COUNTER, frozenset({"department"})),
    "citystat_indicators_evaluations_total": (COUNTER, frozenset({"status"})),
    "citystat_indicators_breaches_total": (COUNTER, frozenset({"department"})),
    # escalation
    "citystat_escalation_open_tickets": (GAUGE, frozenset({"department", "level", "severity"})),
    "citystat_escalation_tickets_opened_total": (COUNTER, frozenset({"department", "source"})),
    "citystat_escalation_escalations_total": (COUNTER, frozenset({"department", "to_level"})),
    "citystat_escalation_overdue_tickets": (GAUGE, frozenset({"department"})),
    "citystat_escalation_time_to_ack_seconds": (HISTOGRAM, frozenset({"department"})),
}

SHARED = [name for name in METRICS if not name.startswith(("citystat_intake311_", "citystat_indicators_", "citystat_escalation_"))]

# Labels Prometheus adds to every scraped series (deploy/prometheus/prometheus.yml).
TARGET_LABELS = frozenset({"job", "instance", "component"})

_NAME = re.compile(r"\bcitystat_[a-zA-Z0-9_]+")
_SELECTOR = re.compile(r"\b(citystat_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def exported_series(name: str) -> dict[str, frozenset[str]]:
    """Every series name a catalogue entry is exported as, with its labels."""
    kind, labels = METRICS[name]
    if kind == HISTOGRAM:
        return {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels}
    return {name: labels}


EXPORTED: dict[str, frozenset[str]] = {s: labels for n in METRICS for s, labels in exported_series(n).items()}


def metric_names(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    labels: set[str] = set()
    for body in _GROUPING.findall(_QUOTED.sub('""', expr)):
        labels |= {part.strip() for part in body.split(",") if part.strip()}
    return labels


def problems(expr: str, legend: str = "") -> list[str]:
    """What in one expression (and its legend) does not match the catalogue: unknown citystat_*
    names, label matchers a metric does not have, and grouping or legend labels that none of
    the expression's metrics carry."""
    found = []
    names = metric_names(expr)
    for name in sorted(names):
        if name not in EXPORTED:
            found.append(f"unknown metric {name}")
    for name, body in _SELECTOR.findall(expr):
        if name not in EXPORTED:
            continue
        for label in _MATCHER.findall(_QUOTED.sub('""', body)):
            if label not in EXPORTED[name] | TARGET_LABELS:
                found.append(f"{name} has no label {label!r}")
    known = [EXPORTED[n] for n in names if n in EXPORTED]
    if known:
        available = frozenset().union(*known) | TARGET_LABELS
        for label in sorted(grouping_labels(expr) | set(_LEGEND.findall(legend))):
            if label not in available:
                found.append(f"label {label!r} is on none of {sorted(names)}")
    return found


def summed_gauges(expr: str) -> list[str]:
    """Gauges summed directly. Every replica of a worker reports the same state gauges from the
    same database (and a replica may keep a partition's lag after a rebalance), so a gauge must
    go through max by (...) before any sum."""
    found = []
    for name, (kind, _) in METRICS.items():
        if kind == GAUGE and re.search(
            rf"\bsum\s*(?:(?:by|without)\s*\([^)]*\))?\s*\(\s*{name}\b", expr
        ):
            found.append(name)
    return found
