"""Every service's migrations: upgrade head on an empty database, downgrade base back to empty."""

from importlib import resources

import pytest
import sqlalchemy as sa

from citystat_common.db import create_engine
from citystat_common.migrate import downgrade, upgrade
from citystat_common.testing import empty_database

PACKAGES = ["directory", "intake311", "indicators", "escalation"]


def _has_revisions(package: str) -> bool:
    versions = resources.files(package).joinpath("migrations", "versions")
    return versions.is_dir() and any(p.name.endswith(".py") for p in versions.iterdir())


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("package", PACKAGES)
async def test_upgrade_head_then_downgrade_base(package, db_kind, tmp_path):
    if not _has_revisions(package):
        pytest.skip(f"{package} has no migrations yet")
    url = empty_database(db_kind, tmp_path)
    upgrade(package, url)
    tables = await _tables(url)
    assert {"outbox", "inbox", "dead_letter", "idempotency_keys", "worker_heartbeat", "alembic_version"} <= tables
    downgrade(package, url, "base")
    assert await _tables(url) == {"alembic_version"}
    upgrade(package, url)  # and back up again: downgrade left nothing behind that blocks it
    assert await _tables(url) == tables
