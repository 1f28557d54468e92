"""The relay's claim and mark on SQLite, straight through the driver: a lease keeps a claimed row
from a second claim until it runs out, and what is written reads back through SQLAlchemy as the
ORM path wrote it (UTC datetimes)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from citystat_common import outbox_sqlite
from citystat_common.db import create_engine, utcnow
from intake311.models import PLUMBING


@pytest.fixture
async def engine(db_factory):
    engine = create_engine(db_factory("intake311"))
    if engine.dialect.name != "sqlite":
        await engine.dispose()
        pytest.skip("the SQLite relay")
    yield engine
    await engine.dispose()


def _event(n: int) -> dict:
    return {"event_id": f"e{n}", "topic": "t", "key": f"k{n}", "event_type": "x", "payload": b"\x00p%d" % n,
            "created_at": utcnow(), "attempts": 0}


async def test_a_lease_holds_until_it_runs_out_and_a_mark_reads_back_as_utc(engine):
    o = PLUMBING.outbox
    async with engine.begin() as conn:
        await conn.execute(sa.insert(o), [_event(n) for n in range(5)])
    first = await outbox_sqlite.claim(engine, 3, timedelta(seconds=30))
    assert [r.event_id for r in first] == ["e0", "e1", "e2"] and first[0].payload == b"\x00p0"
    second = await outbox_sqlite.claim(engine, 10, timedelta(seconds=-1))  # leased until just before now
    assert [r.event_id for r in second] == ["e3", "e4"]
    assert [r.event_id for r in await outbox_sqlite.claim(engine, 10, timedelta(seconds=30))] == ["e3", "e4"]
    at = utcnow()
    await outbox_sqlite.mark_sent(engine, [r.id for r in first], at)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(o.c.event_id, o.c.sent_at, o.c.lease_token, o.c.attempts)
                                   .order_by(o.c.id))).all()
    assert [(r.event_id, r.sent_at) for r in rows[:3]] == [(f"e{n}", at) for n in range(3)]
    assert rows[0].sent_at.tzinfo == UTC and rows[0].lease_token is None and rows[0].attempts == 1
    assert all(r.sent_at is None and r.lease_token is not None for r in rows[3:])
