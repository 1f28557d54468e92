"""citystat_common.statistics: a young table is analyzed as it grows; a large one is left to
autovacuum. The rule without I/O, then the keeper on a real PostgreSQL database."""

import asyncio

import pytest
import sqlalchemy as sa

from citystat_common.db import create_engine
from citystat_common.statistics import StatisticsKeeper, due


@pytest.mark.parametrize(("live", "changed", "expected"), [
    (0, 499, False),          # too few changes to be worth it
    (0, 500, True),           # a new table's first rows
    (10_000, 1_999, False),   # under a fifth of it
    (10_000, 2_000, True),
    (1_000_000, 150_000, False),  # a large table: autovacuum's 10% comes first
])
def test_a_table_is_due_when_its_changes_reach_a_fifth_of_it(live, changed, expected):
    assert due(live, changed, min_changes=500, share=0.2) is expected


async def test_the_keeper_analyzes_a_growing_table_once_and_then_waits(db_factory, db_kind):
    if db_kind != "postgres":
        pytest.skip("PostgreSQL's planner statistics")
    engine = create_engine(db_factory("intake311"))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE growing (x integer)")
            await conn.exec_driver_sql("INSERT INTO growing SELECT generate_series(1, 1200)")

        async def changes() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(sa.text(
                    "SELECT coalesce(n_mod_since_analyze, 0) FROM pg_stat_user_tables WHERE relname = 'growing'"
                ))).scalar_one_or_none() or 0)

        for _ in range(50):  # the server publishes a session's counts shortly after its commit
            if await changes() >= 1200:
                break
            await asyncio.sleep(0.1)
        keeper = StatisticsKeeper(engine, ["growing", "service_requests"])
        assert await keeper.step() == ["growing"]  # service_requests: empty, nothing changed
        async with engine.connect() as conn:
            reltuples = (await conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'growing'")).scalar_one()
        assert reltuples == 1200
        for _ in range(50):
            if await changes() == 0:
                break
            await asyncio.sleep(0.1)
        assert await keeper.step() == []
    finally:
        await engine.dispose()
