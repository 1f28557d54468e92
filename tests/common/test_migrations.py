"""Every service's migrations: upgrade head on an empty database, downgrade base back to empty."""

from importlib import resources

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from citystat_common.db import create_engine
from citystat_common.migrate import OUTBOX_AUTOVACUUM, alembic_config, downgrade, upgrade
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


async def _outbox_options(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            got = (await conn.execute(sa.text("SELECT reloptions FROM pg_class WHERE relname = 'outbox'"))).scalar()
            return sorted(got or [])
    finally:
        await engine.dispose()


@pytest.mark.parametrize("package", PACKAGES)
async def test_the_outbox_is_vacuumed_after_a_fixed_number_of_changes(package, db_kind, tmp_path):
    """PostgreSQL: a migration sets the outbox's autovacuum thresholds; downgrading past it resets
    them to the server's defaults."""
    if db_kind != "postgres":
        pytest.skip("autovacuum settings are PostgreSQL's")
    url = empty_database(db_kind, tmp_path)
    upgrade(package, url)
    assert await _outbox_options(url) == sorted(f"{k}={v}" for k, v in OUTBOX_AUTOVACUUM.items())
    scripts = ScriptDirectory.from_config(alembic_config(package, url))
    (tuning,) = [r for r in scripts.walk_revisions() if r.path.endswith("_outbox_autovacuum.py")]
    downgrade(package, url, tuning.down_revision)
    assert await _outbox_options(url) == []
