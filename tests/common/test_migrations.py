"""Every service's migrations: upgrade head on an empty database, downgrade base back to empty."""

import asyncio
import sys
from importlib import resources

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from citystat_common.db import create_engine
from citystat_common.migrate import MIGRATION_LOCK_KEY, OUTBOX_AUTOVACUUM, alembic_config, downgrade, upgrade
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


async def _column(url: str, sql: str) -> list:
    """The first column of a query's rows."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [r[0] for r in await conn.execute(sa.text(sql))]
    finally:
        await engine.dispose()


async def _outbox_options(url: str) -> list[str]:
    (options,) = await _column(url, "SELECT reloptions FROM pg_class WHERE relname = 'outbox'")
    return sorted(options or [])


async def _versions(url: str) -> list[str]:
    return await _column(url, "SELECT version_num FROM alembic_version")


def _heads(package: str, url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(package, url)).get_heads())


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


@pytest.mark.parametrize("package", PACKAGES)
async def test_every_table_a_migration_creates_is_analyzed(package, db_kind, tmp_path):
    """PostgreSQL: no table is left never analyzed (pg_class.reltuples -1) after a migration, so the
    planner scales its estimates with the table from the first request (docs/performance.md,
    session 13: intake's duplicate lookup seq-scanned a new service_requests until autovacuum came)."""
    if db_kind != "postgres":
        pytest.skip("PostgreSQL's planner statistics")
    url = empty_database(db_kind, tmp_path)
    upgrade(package, url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            never = (await conn.exec_driver_sql(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.reltuples < 0")).scalars().all()
            tables = (await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public'")).scalar_one()
    finally:
        await engine.dispose()
    assert tables > 3 and never == []


def test_a_start_up_that_loses_the_race_on_the_version_row_tries_again(db_kind, tmp_path, monkeypatch):
    """SQLite: the api and the worker both migrate at start; the one that finds alembic_version
    already moved on (alembic's "expected to match one row") upgrades again and finds head."""
    from citystat_common import migrate

    url = empty_database(db_kind, tmp_path)
    real, calls = migrate.command.upgrade, []

    def racing(cfg, revision):
        calls.append(revision)
        if len(calls) == 1:
            real(cfg, revision)  # the other process's upgrade, done while this one was migrating
            raise CommandError("Online migration expected to match one row when updating '0001' to '0002' "
                               "in 'alembic_version'; 0 found")
        real(cfg, revision)

    monkeypatch.setattr(migrate.command, "upgrade", racing)
    migrate.upgrade("escalation", url)
    assert len(calls) == 2
    assert asyncio.run(_versions(url)) == _heads("escalation", url)


def test_other_command_errors_are_not_retried(db_kind, tmp_path):
    url = empty_database(db_kind, tmp_path)
    with pytest.raises(CommandError):
        upgrade("escalation", url, revision="no-such-revision")


def test_migrations_of_one_sqlite_file_take_turns(tmp_path):
    """SQLite: while another process holds the file's migration lock, a start-up's upgrade waits
    (make run's api and worker raced on indicators' 0002 batch rebuild without it)."""
    import fcntl
    import subprocess

    url = f"sqlite+aiosqlite:///{tmp_path}/escalation.db"
    with open(tmp_path / "escalation.db.migrate-lock", "a+") as held:  # another migration
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from citystat_common.migrate import upgrade; upgrade('escalation', {url!r})"])
        try:
            proc.wait(timeout=3)
            waited = False
        except subprocess.TimeoutExpired:
            waited = True
        fcntl.flock(held, fcntl.LOCK_UN)
        assert proc.wait(timeout=120) == 0
    assert waited, "the upgrade ran while another migration held the lock"
    assert asyncio.run(_versions(url)) == _heads("escalation", url)


def test_migrations_of_one_postgres_database_take_turns(db_kind, tmp_path):
    """PostgreSQL: while another migration holds the lock, a start-up's upgrade waits for it."""
    if db_kind != "postgres":
        pytest.skip("the advisory lock is PostgreSQL's")
    url = empty_database(db_kind, tmp_path)

    async def scenario() -> bool:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:  # another migration, holding the lock
                await conn.execute(sa.text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", f"from citystat_common.migrate import upgrade; upgrade('escalation', {url!r})")
                try:
                    await asyncio.wait_for(proc.wait(), timeout=3)
                    waited = False
                except TimeoutError:
                    waited = True
                await conn.execute(sa.text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                assert await asyncio.wait_for(proc.wait(), timeout=120) == 0
                return waited
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()), "the upgrade ran while another migration held the lock"
    assert asyncio.run(_versions(url)) == _heads("escalation", url)
