"""The catalogue in metric_catalog.py (what rules and dashboards may name) against the metrics
the code really registers: same names, same kinds, same labels. If a service renames a metric
or a label, this fails before a dashboard panel goes blank in production."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from metric_catalog import COUNTER, GAUGE, HISTOGRAM, METRICS, SHARED, exported_series, problems
from prometheus_client import REGISTRY

_KIND = {"counter": COUNTER, "gauge": GAUGE, "histogram": HISTOGRAM}


def _registered() -> dict[str, tuple[str, frozenset[str]]]:
    """Exported base name -> (kind, label names) for every metric in the default registry."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for collector in set(REGISTRY._names_to_collectors.values()):  # noqa: SLF001 - no public listing
        kind = getattr(collector, "_type", None)
        name = getattr(collector, "_name", None)
        if kind not in _KIND or not name:
            continue
        exported = f"{name}_total" if kind == "counter" else name
        found[exported] = (_KIND[kind], frozenset(getattr(collector, "_labelnames", ())))
    return found


def _import_package(package: str) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
        if ".migrations" in info.name:
            continue
        importlib.import_module(info.name)


def test_shared_metrics_match_citystat_common():
    importlib.import_module("citystat_common.metrics")
    registered = _registered()
    for name in SHARED:
        assert name in registered, f"citystat_common.metrics does not define {name}"
        assert registered[name] == METRICS[name], f"{name}: code has {registered[name]}, catalogue {METRICS[name]}"


@pytest.mark.parametrize("service", ["intake311", "indicators", "escalation"])
def test_domain_metrics_match_the_service(service):
    try:
        _import_package(service)
    except ImportError as exc:
        pytest.fail(f"cannot import the {service} package to read its metrics: {exc}")
    registered = _registered()
    for name, expected in METRICS.items():
        if not name.startswith(f"citystat_{service}_"):
            continue
        assert name in registered, f"{service} does not register {name}"
        assert registered[name] == expected, f"{name}: code has {registered[name]}, catalogue {expected}"


def test_exported_series_of_a_histogram():
    series = exported_series("citystat_escalation_time_to_ack_seconds")
    assert set(series) == {
        "citystat_escalation_time_to_ack_seconds_bucket",
        "citystat_escalation_time_to_ack_seconds_sum",
        "citystat_escalation_time_to_ack_seconds_count",
    }
    assert "le" in series["citystat_escalation_time_to_ack_seconds_bucket"]


def test_the_checker_finds_drift():
    assert problems('sum by (department) (citystat_indicators_by_status{status="red"})') == []
    assert problems("rate(citystat_http_requests_total[5m])", "{{service}} {{route}}") == []
    assert problems("citystat_indicators_red_total") == ["unknown metric citystat_indicators_red_total"]
    assert problems("citystat_escalation_time_to_ack_seconds") == [
        "unknown metric citystat_escalation_time_to_ack_seconds"  # a histogram is only its _bucket/_sum/_count
    ]
    assert problems('citystat_outbox_backlog{department="X"}') == ["citystat_outbox_backlog has no label 'department'"]
    assert problems("max by (topic) (citystat_outbox_backlog)") == [
        "label 'topic' is on none of ['citystat_outbox_backlog']"
    ]
    assert problems("citystat_outbox_backlog", "{{department}}") == [
        "label 'department' is on none of ['citystat_outbox_backlog']"
    ]
    # quoted values are not mistaken for labels; target labels are allowed
    assert problems('citystat_http_requests_total{route="/a=b", job="directory", component="api"}') == []
