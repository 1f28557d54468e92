"""Prometheus: the scrape configuration and alert rules pass promtool, every alert is unit-tested
with `promtool test rules`, and the rules name only metrics and labels the services export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from metric_catalog import problems, summed_gauges

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
PORTS = {"intake311": 8001, "indicators": 8002, "escalation": 8003, "directory": 8004}
WORKER_METRICS_PORTS = {"intake311": 9101, "indicators": 9102, "escalation": 9103, "directory": 9104}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`; `make test` installs it)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def alerting_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [dict(rule, _file=path.name) for rule in group["rules"] if "alert" in rule]
    return rules


# ----------------------------------------------------------------------------- promtool


@needs_promtool
def test_promtool_check_config():
    result = promtool("check", "config", "deploy/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout, result.stdout


@needs_promtool
def test_promtool_check_rules():
    result = promtool("check", "rules", *[str(p.relative_to(ROOT)) for p in RULE_FILES])
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules():
    assert TEST_FILES
    result = promtool("test", "rules", *[str(p.relative_to(ROOT)) for p in TEST_FILES])
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules_can_fail(tmp_path):
    """A wrong expectation fails `promtool test rules`, so the passing run above means something."""
    test = yaml.safe_load((PROM / "tests" / "city_test.yml").read_text())
    test["rule_files"] = [str(PROM / "rules" / "city.yml")]
    first = test["tests"][0]["alert_rule_test"][0]  # STREETS is not red for 30 minutes yet at 20m
    first["exp_alerts"] = [{"exp_labels": {"severity": "warning", "scope": "city", "department": "STREETS"}}]
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0


# ----------------------------------------------------------------------------- the rules themselves


def test_rules_name_only_exported_metrics():
    for rule in alerting_rules():
        assert not problems(rule["expr"]), (rule["alert"], problems(rule["expr"]))


def test_the_alerts_the_issue_asks_for_exist():
    names = {r["alert"] for r in alerting_rules()}
    assert {
        "CityStatTargetDown",  # service down
        "CityStatWorkerMissing",
        "CityStatOutboxBacklogGrowing",  # outbox backlog growing
        "CityStatOutboxStalled",
        "CityStatConsumerLagHigh",  # consumer lag
        "CityStatDeadLetters",  # DLQ not empty
        "CityStatEscalationsOverdue",  # escalations overdue
        "CityDepartmentIndicatorsRed",  # indicators red per department
        "CityTicketsUnacknowledged",  # tickets unacknowledged past their policy
    } <= names


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_is_labelled_and_documented():
    anchors = _anchors((ROOT / "docs" / "operations.md").read_text())
    for rule in alerting_rules():
        name = rule["alert"]
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in {"critical", "warning", "info"}, name
        expected_scope = "city" if rule["_file"] == "city.yml" else "system"
        assert labels.get("scope") == expected_scope, name
        assert {"summary", "description", "runbook"} <= set(annotations), name
        doc, _, anchor = annotations["runbook"].partition("#")
        assert doc == "docs/operations.md" and anchor in anchors, f"{name}: no section #{anchor} in {doc}"
        assert not summed_gauges(rule["expr"]), f"{name}: take the max of {summed_gauges(rule['expr'])} before summing"


def test_every_alert_has_a_firing_unit_test():
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in alerting_rules()}
    assert names <= firing, f"alerts never shown firing in a test: {sorted(names - firing)}"
    assert names <= silent, f"alerts never shown staying silent in a test: {sorted(names - silent)}"


# ----------------------------------------------------------------------------- scrape configuration


def test_scrape_config_covers_every_api_and_worker():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(PORTS) <= set(jobs)
    assert config["rule_files"] == ["rules/*.yml"]
    for svc, port in PORTS.items():
        job = jobs[svc]
        static = job["static_configs"][0]
        assert static["targets"] == [f"{svc}-api:{port}"]
        assert static["labels"] == {"component": "api"}
        dns = job["dns_sd_configs"][0]
        assert dns["names"] == [f"{svc}-worker"] and dns["port"] == WORKER_METRICS_PORTS[svc]
        relabel = job["relabel_configs"][0]
        assert relabel["target_label"] == "component"
        assert re.fullmatch(relabel["regex"], f"{svc}-worker") and re.fullmatch(relabel["regex"], f"{svc}-api")
        # The services export a `service` label; a target label of that name would rename it.
        for sc in job.get("static_configs", []):
            assert "service" not in sc.get("labels", {})
        assert all(r.get("target_label") != "service" for r in job.get("relabel_configs", []))


def test_scrape_targets_match_compose():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for svc, port in PORTS.items():
        assert f"{port}:{port}" in compose[f"{svc}-api"]["ports"]
        assert str(WORKER_METRICS_PORTS[svc]) in compose[f"{svc}-worker"]["expose"]
