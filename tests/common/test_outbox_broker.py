"""Outbox through a real Tansu process: a write while the broker is down returns 201, its event
waits in the outbox and is delivered byte-for-byte once the broker is back."""

import asyncio

import sqlalchemy as sa

from citystat_common.db import create_engine
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.outbox import OutboxRelay
from citystat_common.outbox_producer import TOPIC_CHECK_SECONDS
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, collect_events, eventually
from directory.config import Settings
from directory.main import create_app
from directory.models import PLUMBING
from directory.worker import build_worker

OUTBOX = PLUMBING.outbox


def _quick_relay_settings(db_factory, broker: LocalBroker) -> Settings:
    """A directory on its own database whose relay polls often and gives up on the broker fast."""
    return Settings(
        database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
        outbox_max_backoff=0.5, outbox_poll_interval=0.05, kafka_request_timeout_ms=1500,
    )


async def _outbox_row(engine, name_fragment: str):
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(OUTBOX).where(OUTBOX.c.event_type == "directory.person.upserted"))).all()
    return next((r for r in rows if name_fragment.encode() in r.payload), None)


async def test_broker_outage_loses_nothing(db_factory, tmp_path):
    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    settings = _quick_relay_settings(db_factory, broker)
    engine = create_engine(settings.database_url)
    parts = build_worker(settings)
    stop = asyncio.Event()
    relay = asyncio.create_task(parts.relay.run(stop))
    try:
        broker.start()
        async with app_client(create_app(settings)) as client:
            r = await client.post("/people", json={"name": "Before Outage"}, headers=auth("directory"))
            assert r.status_code == 201
            first = await eventually(lambda: _outbox_row(engine, "Before Outage"))
            await eventually(lambda: _sent(engine, first.id))

            broker.stop()
            r = await client.post("/people", json={"name": "During Outage"}, headers=auth("directory"))
            assert r.status_code == 201, r.text  # the API never fails because the broker is down
            waiting = await eventually(lambda: _outbox_row(engine, "During Outage"))
            # the relay tried and failed: the row is still unsent, with its attempts counted
            await eventually(lambda: _attempted_unsent(engine, waiting.id))

            broker.start()  # a new, empty memory-only broker on the same port
            raw: list[bytes] = []
            events = await collect_events(
                broker.bootstrap, "directory.changes", until=lambda evs: any(e.id == waiting.event_id for e in evs),
                raw_sink=raw, timeout=30,
            )
        delivered = next(v for v, e in zip(raw, events, strict=True) if e.id == waiting.event_id)
        assert delivered == waiting.payload  # exactly as written in the transaction
        assert [e.id for e in events].count(waiting.event_id) == 1
        await eventually(lambda: _sent(engine, waiting.id))
    finally:
        stop.set()
        await relay
        await engine.dispose()
        await parts.engine.dispose()
        broker.close()


async def test_relay_recreates_topics_a_restarted_broker_lost(db_factory, tmp_path):
    """A broker restart between two batches need not fail a publish: the relay's producer reconnects
    with its metadata cached, and a memory-only Tansu takes records for a topic it no longer has (no
    consumer could then commit there). Before it publishes, the relay notices the topics are gone
    and creates them."""
    from aiokafka.admin import AIOKafkaAdminClient

    from citystat_common.events import ALL_TOPICS

    async def topics_on_broker():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    engine = create_engine(db_factory("directory"))
    relay = OutboxRelay(service="test", engine=engine, tables=PLUMBING, bootstrap=broker.bootstrap, topic_partitions=2)
    try:
        producer = await relay._ensure_producer()  # a new producer creates the topics
        assert set(ALL_TOPICS) <= await topics_on_broker()
        broker.stop(kill=True)
        broker.start()
        assert not await topics_on_broker()
        await asyncio.sleep(TOPIC_CHECK_SECONDS)
        assert await relay._ensure_producer() is producer  # the same producer, no failure seen
        assert set(ALL_TOPICS) <= await topics_on_broker()
    finally:
        await relay._drop_producer()
        await engine.dispose()
        broker.close()


async def _sent(engine, row_id):
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(OUTBOX.c.sent_at).where(OUTBOX.c.id == row_id))).scalar() is not None


async def _attempted_unsent(engine, row_id):
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == row_id))).one()
    return row.sent_at is None and row.attempts >= 1 and row.last_error


async def test_replay_republishes_kept_events(db_factory, broker):
    from datetime import UTC, datetime, timedelta

    from citystat_common.outbox import replay

    settings = Settings(database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap)
    engine = create_engine(settings.database_url)
    parts = build_worker(settings)
    stop = asyncio.Event()
    relay = asyncio.create_task(parts.relay.run(stop))
    try:
        async with app_client(create_app(settings)) as client:
            await client.post("/people", json={"name": "Replayed Person"}, headers=auth("directory"))
        row = await eventually(lambda: _outbox_row(engine, "Replayed Person"))
        await eventually(lambda: _sent(engine, row.id))
        count = await replay(engine, PLUMBING, datetime.now(UTC) - timedelta(hours=1))
        assert count >= 1
        events = await collect_events(
            broker.bootstrap, "directory.changes", until=lambda evs: [e.id for e in evs].count(row.event_id) >= 2
        )
        assert [e.id for e in events].count(row.event_id) == 2  # same id twice: consumers dedupe on it
    finally:
        stop.set()
        await relay
        await engine.dispose()
        await parts.engine.dispose()


async def test_the_relay_claims_from_a_floor_and_housekeeping_finds_what_is_below_it(db_factory, broker, monkeypatch):
    """PostgreSQL: once a claim is published (and FLOOR_LAG_SECONDS have passed) the relay claims
    from the id after it, not over every row marked sent since the last VACUUM; a row that turns
    up below the floor (committed late, or replayed) is found by the next housekeeping pass."""
    import pytest

    from citystat_common import outbox as outbox_mod
    from citystat_common.events import PersonUpserted, make_event

    engine = create_engine(db_factory("directory"))
    if engine.dialect.name != "postgresql":
        await engine.dispose()
        pytest.skip("the claim floor is PostgreSQL's (SQLite claims with a lease)")
    relay = OutboxRelay(service="test", engine=engine, tables=PLUMBING, bootstrap=broker.bootstrap)

    async def add(row_id: int, name: str) -> str:
        event = make_event(PersonUpserted(person_id=f"p-{row_id}", name=name), subject=f"p-{row_id}")
        async with engine.begin() as conn:
            await conn.execute(sa.insert(OUTBOX).values(
                id=row_id, event_id=event.id, topic=event.topic, key=event.subject, event_type=event.type,
                payload=event.to_bytes(), created_at=event.time, attempts=0))
        return event.id

    try:
        for i in (1000, 1001, 1002):
            await add(i, f"first {i}")
        assert await relay.publish_once() == 3
        assert relay._claim_floor() is None  # the lag has not passed: a late lower id would still be found
        monkeypatch.setattr(outbox_mod, "FLOOR_LAG_SECONDS", 0.0)
        assert relay._claim_floor() == 1003

        late = await add(500, "late")
        newer = await add(2000, "newer")
        assert await relay.publish_once() == 1  # from the floor: only 2000
        assert await _sent(engine, 2000) and not await _sent(engine, 500)

        count, _ = await relay.backlog()  # housekeeping sees the unsent row below the floor
        assert count == 1 and relay._claim_floor() == 500
        assert await relay.publish_once() == 1
        assert await _sent(engine, 500)
        events = await collect_events(broker.bootstrap, "directory.changes",
                                      until=lambda evs: {late, newer} <= {e.id for e in evs})
        assert {late, newer} <= {e.id for e in events}
    finally:
        await relay._drop_producer()
        await relay._release_lock_conn()
        await engine.dispose()


async def test_a_slow_consumed_through_refresh_does_not_hold_an_event_back(db_factory, tmp_path):
    """The broker watch asks every consumer group for its offsets every housekeeping pass (an admin
    client and a consumer per group: tens of ms, more on a busy machine). That runs beside the
    relay's loop: an event committed meanwhile is published at once, not after it."""
    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    settings = _quick_relay_settings(db_factory, broker)
    engine = create_engine(settings.database_url)
    parts = build_worker(settings)
    refreshing = asyncio.Event()

    async def slow_refresh() -> None:
        refreshing.set()
        await asyncio.sleep(60)

    parts.relay.watch.refresh_consumed = slow_refresh  # type: ignore[method-assign]
    stop = asyncio.Event()
    relay = asyncio.create_task(parts.relay.run(stop))
    try:
        await asyncio.wait_for(refreshing.wait(), 30)  # the first housekeeping pass started it
        async with app_client(create_app(settings)) as client:
            r = await client.post("/people", json={"name": "While Refreshing"}, headers=auth("directory"))
            assert r.status_code == 201
            row = await eventually(lambda: _outbox_row(engine, "While Refreshing"))
            await eventually(lambda: _sent(engine, row.id), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(relay, 15)  # the refresh still sleeping does not keep the relay from stopping
        await engine.dispose()
        await parts.engine.dispose()
        broker.close()
