"""UnitOfWork.insert in both modes, on the real databases: rows and the unit's fate go together."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from citystat_common.db import create_engine, session_factory, utcnow
from citystat_common.uow import UnitOfWork
from intake311.models import PLUMBING, Department


def _key(key: str) -> dict:
    return {"key": key, "scope": "s", "request_hash": "h", "status_code": 201, "body": b"x", "media_type": "a",
            "created_at": utcnow()}


@pytest.fixture
async def sessions(db_factory):
    engine = create_engine(db_factory("intake311"))
    yield engine, session_factory(engine)
    await engine.dispose()


async def _count(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(PLUMBING.idempotency))).scalar_one()


@pytest.mark.parametrize("single", [False, True])
async def test_rows_of_a_unit_that_is_not_committed_are_not_stored(sessions, single):
    engine, factory = sessions
    async with UnitOfWork(factory, PLUMBING, single_statement=single) as uow:
        await uow.insert(PLUMBING.idempotency, [_key("first-statement-of-the-unit")])
        await uow.rollback()
    assert await _count(engine) == 0
    async with UnitOfWork(factory, PLUMBING, single_statement=single) as uow:
        await uow.insert(PLUMBING.idempotency, [_key("a"), _key("b")])
        await uow.commit()
    assert await _count(engine) == 2


@pytest.mark.parametrize("single", [False, True])
async def test_a_value_too_long_for_its_column_is_rejected_not_cut(sessions, single):
    engine, factory = sessions
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    async with UnitOfWork(factory, PLUMBING, single_statement=single) as uow:
        with pytest.raises(sa.exc.DBAPIError, match="too long"):  # at the insert, or at commit when held
            await uow.insert(PLUMBING.idempotency, [_key("k" * 300)])  # the column holds 200
            await uow.commit()
    assert await _count(engine) == 0


async def test_postgresql_sessions_run_without_jit(sessions):
    """create_engine's sessions have PostgreSQL's JIT off (it compiled the 311 duplicate lookup on
    every execution once an ANALYZE raised its estimates: docs/performance.md)."""
    engine, _ = sessions
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL setting")
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SHOW jit"))).scalar_one() == "off"


async def test_the_outbox_relay_plans_each_statement_afresh(db_factory):
    """The relay's statements run on its lock connection with a plan per execution: a generic plan
    kept from when the outbox was nearly empty made the mark-sent UPDATE cost 0.65 of a core in
    PostgreSQL once the outbox held ~100,000 rows (docs/performance.md)."""
    from citystat_common.outbox import OutboxRelay

    engine = create_engine(db_factory("intake311"))
    try:
        if engine.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL setting")
        relay = OutboxRelay(service="test", engine=engine, tables=PLUMBING, bootstrap="127.0.0.1:9")
        assert await relay._acquire_relay_lock()
        assert (await relay._on_lock_conn(sa.text("SHOW plan_cache_mode"), {})).scalar_one() == "force_custom_plan"
        await relay._release_lock_conn()
        async with engine.connect() as conn:  # the pool's connections keep the default
            assert (await conn.execute(sa.text("SHOW plan_cache_mode"))).scalar_one() == "auto"
    finally:
        await engine.dispose()


async def test_a_single_statement_unit_stores_awkward_values_as_they_are(sessions):
    """The held rows travel to PostgreSQL as JSON text: quotes, backslashes, non-ASCII text, bytes
    that are not UTF-8 and a datetime in another zone must come back unchanged."""
    from datetime import datetime, timedelta, timezone

    engine, factory = sessions
    at = datetime(2026, 11, 25, 7, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    row = {"key": 'ключ "quoted" \\ back\\x41 \t', "scope": "s", "request_hash": "h", "status_code": 201,
           "body": b"\x00\xff\\x41\"'", "media_type": "a", "created_at": at}
    async with UnitOfWork(factory, PLUMBING, single_statement=True) as uow:
        await uow.insert(PLUMBING.idempotency, [row])
        await uow.commit()
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(PLUMBING.idempotency))).mappings().one()
    assert stored["key"] == row["key"] and stored["body"] == row["body"]
    assert stored["created_at"] == at


@pytest.mark.parametrize("single", [False, True])
async def test_a_naive_datetime_is_refused_and_nothing_is_stored(sessions, single):
    """Every stored time is UTC with its zone; a naive one is a bug in the caller. Through the ORM
    column type it was always refused; a single-statement unit (PostgreSQL) would have let the
    server read it in its session's time zone."""
    from datetime import datetime

    engine, factory = sessions
    with pytest.raises(Exception) as caught:
        async with UnitOfWork(factory, PLUMBING, single_statement=single) as uow:
            await uow.insert(PLUMBING.idempotency, [_key("aware"), {**_key("naive"), "created_at": datetime(2026, 11, 25, 9)}])
            await uow.commit()
    chain = [caught.value, caught.value.__cause__, caught.value.__context__]
    assert any("naive datetime" in str(e) for e in chain if e is not None), repr(caught.value)
    assert await _count(engine) == 0


async def test_put_inserts_then_updates_and_keeps_a_loaded_copy_in_step(db_factory):
    """UnitOfWork.put: one upsert; a row this session already loaded shows the new values."""
    from escalation.models import PLUMBING as ESC_PLUMBING
    from escalation.models import IndicatorSeen

    engine = create_engine(db_factory("escalation"))
    factory = session_factory(engine)
    values = {"indicator_id": "ind-1", "indicator_code": "STREETS.potholes", "indicator_name": "Potholes",
              "department_code": "STREETS", "status": "red", "updated_at": utcnow()}
    try:
        async with UnitOfWork(factory, ESC_PLUMBING) as uow:
            await uow.put(IndicatorSeen, values)
            await uow.commit()
        async with UnitOfWork(factory, ESC_PLUMBING) as uow:
            loaded = await uow.session.get(IndicatorSeen, "ind-1")
            assert loaded is not None and loaded.status == "red"
            await uow.put(IndicatorSeen, {**values, "status": "green", "indicator_name": "Potholes filled"})
            assert (loaded.status, loaded.indicator_name) == ("green", "Potholes filled")
            await uow.commit()
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(IndicatorSeen.status, IndicatorSeen.indicator_name))).all()
        assert [tuple(r) for r in rows] == [("green", "Potholes filled")]
    finally:
        await engine.dispose()


async def test_a_read_only_unit_reads_without_a_transaction_and_refuses_to_write(sessions):
    """``read_only``: a GET's unit. On PostgreSQL no BEGIN: each statement is its own transaction,
    so ``now()`` (the transaction's start) moves between two statements. On SQLite a deferred
    BEGIN: another connection's BEGIN IMMEDIATE (the count at the end) is not kept waiting
    ("database is locked" with the write lock held). Nothing it is handed is ever written."""
    import asyncio

    from citystat_common.events import IndicatorRecovered

    engine, factory = sessions
    async with UnitOfWork(factory, PLUMBING, read_only=True) as uow:
        first = (await uow.session.execute(sa.text("SELECT now()" if uow.dialect == "postgresql" else "SELECT 1"))).scalar_one()
        await asyncio.sleep(0.01)
        second = (await uow.session.execute(sa.text("SELECT now()" if uow.dialect == "postgresql" else "SELECT 1"))).scalar_one()
        if uow.dialect == "postgresql":
            assert second > first
        writes = (uow.commit(), uow.flush(), uow.insert(PLUMBING.idempotency, [_key("read-only")]),
                  uow.add_if_absent(Department, {"code": "READONLY", "name": "Read only"}))
        for write in writes:
            with pytest.raises(RuntimeError, match="read-only"):
                await write
        with pytest.raises(RuntimeError, match="read-only"):
            uow.emit(IndicatorRecovered.model_construct(), subject="x")
        assert await _count(engine) == 0
