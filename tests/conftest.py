"""Shared fixtures: a database per test on SQLite (always) and PostgreSQL (when
TEST_POSTGRES_URL is set), and one real Tansu broker process per session."""

from __future__ import annotations

import os

import pytest

from citystat_common.localbroker import LocalBroker
from citystat_common.testing import drop_test_databases, fresh_database, postgres_admin_url

DB_KINDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("LOG_FORMAT", "console")
    # One test process builds hundreds of apps: frozen heaps would never be collected.
    os.environ.setdefault("GC_FREEZE", "false")


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not postgres_admin_url():
        pytest.skip("TEST_POSTGRES_URL not set")
    return request.param


@pytest.fixture
def db_factory(db_kind, tmp_path):
    """db_factory("directory") -> URL of a fresh migrated database of that service."""
    return lambda package: fresh_database(db_kind, package, tmp_path)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    b = LocalBroker(log_path=log)
    b.start()
    yield b
    b.close()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_pg():
    yield
    drop_test_databases()
