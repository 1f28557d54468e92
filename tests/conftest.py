"""Shared fixtures: a database per test on SQLite (always) and PostgreSQL (when
TEST_POSTGRES_URL is set), and one real Tansu broker process per session."""

from __future__ import annotations

import os

import pytest

from citystat_common.localbroker import LocalBroker
from citystat_common.testing import drop_test_databases, fresh_database, postgres_admin_url

DB_KINDS = ["sqlite", "postgres"]


# Fixtures that give a test its tier (pytest lists a test's fixtures transitively, so a test whose
# settings fixture asks for the broker is an integration test without saying so).
INTEGRATION_FIXTURES = {"broker", "stack_factory", "own_broker"}
API_FIXTURES = {"db_factory", "db_kind", "tmp_path", "tmp_path_factory"}  # a database or files on disk


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("LOG_FORMAT", "console")
    # One test process builds hundreds of apps: frozen heaps would never be collected.
    os.environ.setdefault("GC_FREEZE", "false")


def _tier(item: pytest.Item) -> str:
    marks = {m.name for m in item.iter_markers()}
    fixtures = set(getattr(item, "fixturenames", ()))
    path = item.path.as_posix()
    if "/tests/e2e/" in path:
        return "e2e"
    if "browser" in marks:
        return "browser"
    params = getattr(item, "callspec", None)
    on_postgres = params is not None and params.params.get("db_kind") == "postgres"
    if "integration" in marks or fixtures & INTEGRATION_FIXTURES or on_postgres or "/tests/deploy/" in path:
        return "integration"
    if fixtures & API_FIXTURES or "api" in marks or "/tests/fuzz/" in path:
        return "api"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test gets its tier marker, from what it uses: `-m unit` selects the tests that
    need no database server, broker or browser."""
    for item in items:
        tier = _tier(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Here, not in a session fixture's teardown: that runs inside the last test's teardown, under its
    # timeout, and on a busy server the drops (each waits for a checkpoint) outlasted it.
    drop_test_databases()
