"""deploy/postgres/init-databases.sh: one role and database per service, each owned by its role
and closed to the others. Run against a real server when TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from citystat_common.testing import postgres_admin_url

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "postgres" / "init-databases.sh"


def test_script_is_valid_bash():
    assert os.access(SCRIPT, os.X_OK), "the postgres image runs *.sh in initdb.d; keep it executable"
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_script_refuses_a_missing_password(tmp_path):
    env = {**os.environ, "CITYSTAT_DATABASES": "somedb", "PATH": os.environ["PATH"]}
    env.pop("SOMEDB_DB_PASSWORD", None)
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode != 0 and "SOMEDB_DB_PASSWORD is not set" in result.stderr


def test_script_refuses_an_odd_name():
    env = {**os.environ, "CITYSTAT_DATABASES": "bad;name"}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode != 0 and "refusing" in result.stderr


def _psql(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-At", *args], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_creates_owned_private_databases_idempotently():
    url = postgres_admin_url()
    if not url:
        pytest.skip("TEST_POSTGRES_URL not set")
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    parts = urlsplit(url.replace("+asyncpg", ""))
    env = {**os.environ, "PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432)}
    if parts.password:
        env["PGPASSWORD"] = parts.password
    admin = parts.username or "postgres"
    suffix = uuid.uuid4().hex[:8]
    names = [f"csdeploy_a_{suffix}", f"csdeploy_b_{suffix}"]
    run_env = {**env, "POSTGRES_USER": admin, "POSTGRES_DB": (parts.path.lstrip("/") or "postgres"), "CITYSTAT_DATABASES": " ".join(names)}
    for n in names:
        run_env[f"{n.upper()}_DB_PASSWORD"] = "it's a \"pass\" word"
    try:
        for _ in range(2):  # idempotent
            result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=run_env, timeout=60)
            assert result.returncode == 0, result.stderr
        a, b = names
        rows = _psql(env, "-U", admin, "-d", "postgres", "-c",
                     f"select datname, pg_get_userbyid(datdba) from pg_database where datname in ('{a}', '{b}') order by 1")
        assert rows.splitlines() == [f"{a}|{a}", f"{b}|{b}"]
        assert _psql(env, "-U", admin, "-d", "postgres", "-c", f"select has_database_privilege('{b}', '{a}', 'CONNECT')") == "f"
        assert _psql(env, "-U", admin, "-d", a, "-c", "select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'public'") == a
    finally:
        for n in names:
            subprocess.run(["psql", "-U", admin, "-d", "postgres", "-c", f"drop database if exists {n}"], env=env, capture_output=True)
        for n in names:
            subprocess.run(["psql", "-U", admin, "-d", "postgres", "-c", f"drop role if exists {n}"], env=env, capture_output=True)
