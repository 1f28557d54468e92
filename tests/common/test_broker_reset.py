"""A broker that loses what it held (a memory-only Tansu killed and started again on the same port)
is noticed by the relay on its own, and what the consumers may not have read yet is published again,
without anyone running ``replay --since``: events that were on the old broker but unread are not
lost. The operator sees it (metric, heartbeat detail, log) and has nothing to do."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from citystat_common import metrics
from citystat_common.brokerwatch import WATCH_COMPONENT
from citystat_common.db import create_engine
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, collect_events, eventually
from directory.config import Settings
from directory.main import create_app
from directory.models import PLUMBING
from directory.worker import build_worker

OUTBOX = PLUMBING.outbox
TOPIC = "directory.changes"


async def _event_ids(engine, names):
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(OUTBOX.c.event_id, OUTBOX.c.payload, OUTBOX.c.sent_at))).all()
    return {r.event_id: r.sent_at for r in rows if any(n.encode() in r.payload for n in names)}


async def _read_and_commit(bootstrap: str, group: str, want: set[str]) -> None:
    """A consumer group reads until it has seen ``want`` and commits: those are consumed."""
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
    await consumer.start()
    seen: set[str] = set()
    try:
        while not want <= seen:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    seen.add(dict(record.headers)["event_id"].decode())
        await consumer.commit()
    finally:
        await consumer.stop()


def _resets() -> float:
    return metrics.BROKER_RESETS.labels("directory")._value.get()


async def test_relay_republishes_what_a_lost_broker_held_unread(db_factory, tmp_path):
    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    settings = Settings(
        database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
        outbox_max_backoff=0.5, outbox_poll_interval=0.05, kafka_request_timeout_ms=1500, topic_partitions=2,
        broker_reset_margin_seconds=1,
    )
    engine = create_engine(settings.database_url)
    parts = build_worker(settings)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(parts.relay.run(stop))
    resets_before = _resets()
    try:
        async with app_client(create_app(settings)) as client:
            for i in range(4):
                assert (await client.post("/people", json={"name": f"Read {i}"}, headers=auth("directory"))).status_code == 201
            read = await eventually(lambda: _all_sent(engine, [f"Read {i}" for i in range(4)], 4))
            await _read_and_commit(broker.bootstrap, "reader", set(read))
            # the relay learns, from the group's committed offsets, that these were read
            await eventually(lambda: parts.relay.watch.consumed_through is not None, timeout=30)

            # accepted by the broker, never read by the group: exactly what the runbook's replay lost
            for i in range(3):
                assert (await client.post("/people", json={"name": f"Unread {i}"}, headers=auth("directory"))).status_code == 201
            unread = await eventually(lambda: _all_sent(engine, [f"Unread {i}" for i in range(3)], 3))

            broker.stop(kill=True)
            broker.start()  # empty, same port; nobody runs replay

            events = await collect_events(broker.bootstrap, TOPIC, until=lambda evs: set(unread) <= {e.id for e in evs},
                                          timeout=60)
        assert set(unread) <= {e.id for e in events}
        assert _resets() == resets_before + 1
        async with engine.connect() as conn:
            relay_hb = (await conn.execute(sa.select(PLUMBING.heartbeat.c.details)
                                           .where(PLUMBING.heartbeat.c.component == "relay"))).scalar()
            watch = (await conn.execute(sa.select(PLUMBING.heartbeat.c.details)
                                        .where(PLUMBING.heartbeat.c.component == WATCH_COMPONENT))).scalar()
        assert watch["resets"] >= 1 and watch["last_reset"]
        await eventually(lambda: _relay_reports_reset(engine), timeout=30)
        assert relay_hb is not None
    finally:
        stop.set()
        await relay_task
        await engine.dispose()
        await parts.engine.dispose()
        broker.close()


async def test_a_relay_started_after_the_loss_notices_it_from_what_it_saved(db_factory, tmp_path):
    """The worker died with the broker: its successor reads the witnesses the old relay saved."""
    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    settings = Settings(
        database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
        outbox_max_backoff=0.5, outbox_poll_interval=0.05, kafka_request_timeout_ms=1500, topic_partitions=2,
    )
    engine = create_engine(settings.database_url)
    first = build_worker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(first.relay.run(stop))
    try:
        async with app_client(create_app(settings)) as client:
            assert (await client.post("/people", json={"name": "Kept"}, headers=auth("directory"))).status_code == 201
        kept = await eventually(lambda: _all_sent(engine, ["Kept"], 1))
        await eventually(lambda: _watch_saved(engine), timeout=30)  # housekeeping saved the witness
        stop.set()
        await task
        await first.engine.dispose()

        broker.stop(kill=True)
        broker.start()
        second = build_worker(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(second.relay.run(stop))
        events = await collect_events(broker.bootstrap, TOPIC, until=lambda evs: set(kept) <= {e.id for e in evs},
                                      timeout=60)
        assert set(kept) <= {e.id for e in events}
        stop.set()
        await task
        await second.engine.dispose()
    finally:
        stop.set()
        await engine.dispose()
        broker.close()


async def _all_sent(engine, names, n):
    ids = await _event_ids(engine, names)
    return list(ids) if len(ids) == n and all(ids.values()) else None


async def _watch_saved(engine):
    async with engine.connect() as conn:
        details = (await conn.execute(sa.select(PLUMBING.heartbeat.c.details)
                                      .where(PLUMBING.heartbeat.c.component == WATCH_COMPONENT))).scalar()
    return bool(details and details.get("witnesses"))


async def _relay_reports_reset(engine):
    async with engine.connect() as conn:
        details = (await conn.execute(sa.select(PLUMBING.heartbeat.c.details)
                                      .where(PLUMBING.heartbeat.c.component == "relay"))).scalar()
    return bool(details and details.get("broker_resets"))
