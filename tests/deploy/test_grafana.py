"""Grafana: the provisioned dashboards parse, are what build_dashboards.py generates, and every
PromQL expression in them names only metrics and labels the services export (so a renamed
metric cannot leave a panel silently empty). With promtool present, every expression is also
parsed by Prometheus' own parser."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from metric_catalog import problems, summed_gauges

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return panels


def _queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(where, expr, legend) for every target and every templating query."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        found.append((f"variable {var['name']}", text, ""))
    return found


def _as_promql(expr: str) -> str:
    """Grafana's variables replaced as Grafana would, so that Prometheus can parse the result."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1d")
    return re.sub(r"\$\{?([a-zA-Z_]+)\}?", ".*", expr)


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def test_the_four_dashboards_exist(dashboards):
    uids = {d["uid"] for d in dashboards.values()}
    assert uids == {"citystat-system", "citystat-311", "citystat-indicators", "citystat-escalation"}
    titles = [d["title"] for d in dashboards.values()]
    assert all(titles) and len(set(titles)) == len(titles)


def test_dashboards_are_generated_and_fresh():
    builder = _builder()
    assert set(builder.DASHBOARDS) == {p.name for p in DASHBOARD_FILES}
    for name, build in builder.DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / name).read_text() == builder.render(build), (
            f"{name} is stale: run .venv/bin/python deploy/grafana/build_dashboards.py"
        )


def test_dashboard_structure(dashboards):
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] and len(dashboard["uid"]) <= 40, name
        assert dashboard["schemaVersion"] >= 36
        panels = _panels(dashboard)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["title"], name
            assert panel["datasource"]["uid"] == datasource["uid"], (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"]
        # no two panels overlap
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            pos = panel["gridPos"]
            area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & area, f"{name}: {panel['title']!r} overlaps another panel"
            cells |= area


def test_every_expression_names_only_exported_metrics(dashboards):
    for name, dashboard in dashboards.items():
        queries = _queries(dashboard)
        assert queries
        for where, expr, legend in queries:
            assert not problems(expr, legend), f"{name} {where}: {problems(expr, legend)}"
            assert not summed_gauges(expr), f"{name} {where}: take the max of {summed_gauges(expr)} before summing"


def test_every_dashboard_metric_family_is_used_somewhere(dashboards):
    """The catalogue and the dashboards move together: each exported metric shows up on a dashboard."""
    from metric_catalog import METRICS

    text = " ".join(expr for d in dashboards.values() for _, expr, _ in _queries(d))
    unused = [m for m in METRICS if m not in text]
    assert not unused, f"metrics on no dashboard: {unused}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian package `prometheus`)")
def test_every_expression_parses_as_promql(dashboards, tmp_path):
    rules = []
    for name, dashboard in dashboards.items():
        for i, (where, expr, _) in enumerate(_queries(dashboard)):
            if where.startswith("variable"):
                continue  # label_values(...) is Grafana's, not PromQL
            rules.append({"record": f"dashboard:{name.removesuffix('.json').replace('-', '_')}:{i}", "expr": _as_promql(expr)})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning():
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090" and datasources[0]["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/citystat.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["allowUiUpdates"] is False
