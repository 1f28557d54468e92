"""Alembic helpers: each service keeps ``<pkg>/migrations`` and runs ``upgrade head`` before it starts.

No alembic.ini: the config is built here from the service's package and database URL,
so ``make migrate``, the api entry point and the tests all run the same code.
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy.ext.asyncio import create_async_engine

from citystat_common.db import UTCDateTime

MIGRATION_LOCK_KEY = 0x43495459  # "CITY": the advisory lock that serializes migrations of one database


def alembic_config(package: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files(package).joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", database_url)
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(package: str, database_url: str, revision: str = "head", retries: int = 5) -> None:
    # The api and the worker start at once and both migrate. On PostgreSQL they take turns
    # (run_env's advisory lock); on SQLite they take turns through a lock file beside the database
    # (a race let one process's batch rebuild of a table find a constraint the other had just
    # dropped). A loser of a race that gets past both (alembic_version, a table the winner made)
    # is retried: by then the winner is done and nothing is left to do.
    for attempt in range(retries):
        try:
            with sqlite_turn(database_url):
                command.upgrade(alembic_config(package, database_url), revision)
            return
        except (sa.exc.OperationalError, sa.exc.IntegrityError, CommandError) as exc:
            if isinstance(exc, CommandError) and "expected to match one row" not in str(exc):
                raise
            if attempt == retries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


@contextmanager
def sqlite_turn(database_url: str) -> Iterator[None]:
    """SQLite file databases: hold an exclusive lock on ``<file>.migrate-lock`` (released when the
    process ends, whatever way it ends). Anything else: nothing to do here."""
    handle = _sqlite_lock_file(database_url)
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_lock_file(database_url: str) -> IO[str] | None:
    url = sa.engine.make_url(database_url)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return None
    try:
        return open(Path(path).with_name(Path(path).name + ".migrate-lock"), "a+")  # noqa: SIM115 - the caller closes it
    except OSError:  # a folder that does not exist yet: SQLite itself will say so
        return None


def downgrade(package: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(package, database_url), revision)


def run_env(context: Any, target_metadata: sa.MetaData) -> None:
    """The body of every service's ``migrations/env.py``: online migrations over an async engine.
    ``context``: the ``alembic.context`` module, which stands in for an ``EnvironmentContext``."""
    config = context.config
    url = str(config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url"))

    def do_run(connection: sa.Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # One migration at a time per database; the second reads the version after the
                # first has committed, so it finds nothing left to do (held until commit).
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            context.run_migrations()
            if connection.dialect.name == "postgresql":
                analyze_never_analyzed(connection)

    async def run_async() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(do_run)
                await conn.commit()
        finally:
            await engine.dispose()

    _run_coroutine(run_async())


# PostgreSQL plans for a table that was never analyzed (pg_class.reltuples -1) from a guess of its
# size; once analyzed, even empty, it scales its row estimates with the table's real size.
# Analyzing a table the moment a migration creates it costs nothing. It is not enough for a table
# that fills fast, which needs column statistics of rows: intake's duplicate lookup on a new
# service_requests still scanned the table for every draft (300 requests/s instead of 1,800, session
# 13) until it was analyzed with rows in it; citystat_common.statistics does that while it is young.
_NEVER_ANALYZED = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.reltuples < 0 AND n.nspname = current_schema()
"""


def analyze_never_analyzed(connection: sa.Connection) -> list[str]:
    """ANALYZE the current schema's tables that never were (in the migration's transaction); returns them."""
    names = [r[0] for r in connection.exec_driver_sql(_NEVER_ANALYZED)]
    for name in names:
        connection.exec_driver_sql(f"ANALYZE {name}")
    return names


def _run_coroutine(coro: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    # Called from inside a running loop (a test, an app start-up): run on a helper thread.
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised below on the caller's thread
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]


# Every event marks its outbox row sent (an update) and the row is purged after the retention.
# With PostgreSQL's default autovacuum scale factor a fifth of a large outbox can be dead before
# vacuum runs, and the relay's claim and backlog count step over the dead index entries. A fixed
# threshold keeps the outbox vacuumed (and analyzed) every few thousand events, however large it is.
OUTBOX_AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "5000",
}


def tune_outbox_autovacuum(op: Any, *, reset: bool = False) -> None:
    """Called from a service's migration (``op`` is alembic's): the outbox's autovacuum settings on
    PostgreSQL, or back to the server's defaults with ``reset``. SQLite has no such settings."""
    if op.get_bind().dialect.name != "postgresql":
        return
    if reset:
        op.execute(f"ALTER TABLE outbox RESET ({', '.join(OUTBOX_AUTOVACUUM)})")
    else:
        op.execute(f"ALTER TABLE outbox SET ({', '.join(f'{k} = {v}' for k, v in OUTBOX_AUTOVACUUM.items())})")


def create_plumbing_tables(op: Any) -> None:
    """The plumbing every service's first migration creates (``op`` is alembic's): outbox, inbox,
    dead_letter, idempotency_keys, worker_heartbeat, as they were in revision 0001 of each service.

    Frozen: databases migrated before this helper existed hold exactly these tables. A change to
    them (a column, an index) is a new migration of every service, never an edit here."""
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "scope", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("processed_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_outbox_pending", ["sent_at", "id"], unique=False)
    op.create_table(
        "worker_heartbeat",
        sa.Column("component", sa.String(length=100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("component", name=op.f("pk_worker_heartbeat")),
    )


def drop_plumbing_tables(op: Any) -> None:
    """The downgrade of ``create_plumbing_tables``."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")
        batch_op.drop_index("ix_outbox_created_at")
    for table in ("outbox", "inbox", "idempotency_keys", "dead_letter", "worker_heartbeat"):
        op.drop_table(table)
