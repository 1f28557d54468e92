"""A database outage longer than the consumer's retries (the 1.5-s blip that dead-lettered a healthy
event) is waited out: the consumer pauses on the record, offsets uncommitted, and applies it once
the database answers again. Only an event that fails on its own content goes to the DLQ."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from citystat_common import metrics
from citystat_common.bus import ensure_topics
from citystat_common.consumer import ConsumerRunner
from citystat_common.db import create_engine, session_factory
from citystat_common.events import PersonUpserted, make_event
from citystat_common.testing import TcpProxy, eventually, fresh_database, postgres_admin_url
from citystat_common.uow import UnitOfWork
from directory.models import PLUMBING, AuditEntry


async def record_person(uow, envelope, payload):
    if payload.name == "Explode":
        raise RuntimeError("this handler cannot process Explode")
    uow.session.add(AuditEntry(actor="test", action="test.consumed", entity="person", entity_id=payload.person_id))


def _failures(service: str) -> float:
    return metrics.EVENTS_FAILED.labels(service, "directory.person.upserted")._value.get()


async def test_database_outage_is_waited_out_not_dead_lettered(broker, tmp_path):
    if not postgres_admin_url():
        pytest.skip("needs TEST_POSTGRES_URL (a real PostgreSQL server to cut off)")
    url = fresh_database("postgres", "directory", tmp_path)
    proxy, through_proxy = await TcpProxy.in_front_of(url)
    proxied = create_engine(through_proxy)
    direct = create_engine(url)
    topic = f"test.outage.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    service = f"outage-{uuid.uuid4().hex[:6]}"
    sessions = session_factory(proxied)
    runner = ConsumerRunner(
        service=service, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic],
        handlers={"directory.person.upserted": record_person},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
        max_retries=2, retry_backoff=0.01,  # without the pause, an outage would use these up in ~30 ms
    )
    healthy, poison = make_event(PersonUpserted(person_id="p-ok", name="Healthy"), subject="p-ok"), \
        make_event(PersonUpserted(person_id="p-bad", name="Explode"), subject="p-bad")
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        await proxy.cut()  # the database goes away before the event arrives
        await producer.send_and_wait(topic, healthy.to_bytes(), key=b"k")
        # the consumer has met the outage several times over, more than its retries allow
        await eventually(lambda: _paused_long_enough(runner), timeout=60)
        await proxy.restore()

        async def applied():
            async with direct.connect() as conn:
                return (await conn.execute(sa.select(PLUMBING.inbox.c.event_id))).scalars().all()

        assert healthy.id in await eventually(applied, timeout=60)
        await producer.send_and_wait(topic, poison.to_bytes(), key=b"k")

        async def dead():
            async with direct.connect() as conn:
                return (await conn.execute(sa.select(PLUMBING.dead_letter.c.event_id))).scalars().all()

        assert await eventually(dead, timeout=60) == [poison.id]  # the poison alone is dead-lettered
        assert _failures(service) == 3  # only the poison's attempts counted as handler failures
    finally:
        await producer.stop()
        stop.set()
        await task
        await proxied.dispose()
        await direct.dispose()
        await proxy.cut()


def _paused_long_enough(runner: ConsumerRunner) -> bool:
    return runner.outage_waits >= 6 or _failures(runner.service) > 3  # (the second: how it failed before)
