"""Inbox consumer through a real Tansu process: redelivery is a no-op, poison messages go to
the DLQ (with a dead_letter row) and the consumer carries on with the next message."""

import asyncio
import uuid

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from citystat_common.bus import ensure_topics
from citystat_common.consumer import ConsumerRunner
from citystat_common.db import create_engine, session_factory
from citystat_common.events import PersonUpserted, make_event
from citystat_common.testing import eventually, fresh_database, raw_messages
from citystat_common.uow import UnitOfWork
from directory.models import PLUMBING, AuditEntry


async def record_person(uow, envelope, payload):
    if payload.name == "Explode":
        raise RuntimeError("this handler cannot process Explode")
    uow.session.add(AuditEntry(actor="test", action="test.consumed", entity="person", entity_id=payload.person_id))


def person_event(name):
    pid = str(uuid.uuid4())
    return make_event(PersonUpserted(person_id=pid, name=name), subject=pid, correlation_id="corr-1")


async def test_duplicates_are_noops_and_poison_goes_to_dlq(db_factory, broker):
    topic = f"test.inbox.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    engine = create_engine(db_factory("directory"))
    sessions = session_factory(engine)
    a, bad, b = person_event("Alice"), person_event("Explode"), person_event("Bob")
    future = a.model_dump(mode="json") | {"id": str(uuid.uuid4()), "schema_version": 2}
    messages = [a.to_bytes(), a.to_bytes(), b"not json at all", orjson.dumps(future), bad.to_bytes(), b.to_bytes()]
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    for m in messages:
        await producer.send_and_wait(topic, m, key=b"k")
    await producer.stop()

    runner = ConsumerRunner(
        service="test", group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic],
        handlers={"directory.person.upserted": record_person},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
        max_retries=2, retry_backoff=0.01,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def consumed_ids():
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(AuditEntry.entity_id).where(AuditEntry.action == "test.consumed"))
            return [r[0] for r in rows]

    try:
        ids = await eventually(lambda: _has(consumed_ids, b.subject), timeout=30)
        assert sorted(ids) == sorted([a.subject, b.subject])  # Alice once despite two deliveries; Bob after the poison
        dlq = await raw_messages(broker.bootstrap, f"{topic}.dlq", 3)
        assert dlq == [b"not json at all", orjson.dumps(future), bad.to_bytes()]
        async with engine.connect() as conn:
            dead = (await conn.execute(sa.select(PLUMBING.dead_letter).order_by(PLUMBING.dead_letter.c.id))).all()
            inbox = (await conn.execute(sa.select(PLUMBING.inbox))).all()
        assert [d.offset for d in dead] == [2, 3, 4]
        assert "schema_version" in dead[1].error and "cannot process Explode" in dead[2].error
        assert {r.event_id for r in inbox} == {a.id, b.id}
    finally:
        stop.set()
        await task
        await engine.dispose()


async def _has(fetch, wanted):
    ids = await fetch()
    return ids if wanted in ids else None


async def test_handler_effects_carry_the_event_correlation_id(db_factory, broker):
    """A handler that emits an event passes the incoming correlation id on (the chain stays traceable)."""
    topic = f"test.corr.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    engine = create_engine(db_factory("directory"))
    sessions = session_factory(engine)

    async def echo(uow, envelope, payload):
        uow.emit(PersonUpserted(person_id=payload.person_id, name=payload.name + " (echo)"), subject=payload.person_id)

    runner = ConsumerRunner(
        service="test", group_id=f"g-corr-{uuid.uuid4().hex[:6]}", topics=[topic], handlers={"directory.person.upserted": echo},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
    )
    ev = person_event("Carol")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, ev.to_bytes())
    await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        async def outbox_rows():
            async with engine.connect() as conn:
                return (await conn.execute(sa.select(PLUMBING.outbox))).all()

        rows = await eventually(outbox_rows, timeout=30)
        assert orjson.loads(rows[0].payload)["correlation_id"] == "corr-1"
    finally:
        stop.set()
        await task
        await engine.dispose()




async def test_consumer_rereads_when_the_broker_lost_its_log(tmp_path):
    """Tansu is memory-only: after a restart its log starts again at offset 0, and what the outboxes
    resend (new events first, then a replay) lands below the positions this member had reached.
    The member notices (the broker no longer knows its commits) and reads from the start; the
    inbox turns the re-read into no-ops, so the new events are applied and nothing twice."""
    from citystat_common.localbroker import LocalBroker, free_port

    broker = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    topic = "test.reset"
    engine = create_engine(fresh_database("sqlite", "directory", tmp_path))  # the broker is under test, not the database
    sessions = session_factory(engine)
    runner = ConsumerRunner(
        service="test", group_id="g-reset", topics=[topic], handlers={"directory.person.upserted": record_person},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
        session_timeout_ms=3_000,  # the rejoin after the restart waits out the old session: keep it short
    )

    async def produce(events):
        await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        for e in events:
            await producer.send_and_wait(topic, e.to_bytes())
        await producer.stop()

    async def consumed():
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(AuditEntry.entity_id).where(AuditEntry.action == "test.consumed"))
            return sorted(r[0] for r in rows)

    old = [person_event(f"Old {i}") for i in range(5)]
    new = [person_event(f"New {i}") for i in range(3)]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await produce(old)
        await eventually(lambda: _count_is(consumed, 5), timeout=30)
        broker.stop(kill=True)
        broker.start()  # empty
        await produce(new + old)  # what the relays send after a restart and a replay
        want = sorted(e.subject for e in old + new)
        await eventually(lambda: _equals(consumed, want), timeout=60)
    finally:
        stop.set()
        await task
        await engine.dispose()
        broker.close()


async def test_a_commit_that_never_completes_makes_the_member_rejoin(tmp_path, broker):
    """After a restart a memory-only Tansu refuses offset commits on a topic it lost, and aiokafka
    retries a refused commit for ever: the member would stop consuming. (The whole scenario runs in
    tests/e2e/test_faults.py; Tansu's timing makes it flaky to stage here.) Here the first member's
    commits never complete: the runner must give up after its timeout, rejoin with a new member,
    skip what it reads again (the inbox) and go on with what comes next."""
    topic = f"test.hung.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    engine = create_engine(fresh_database("sqlite", "directory", tmp_path))  # the database plays no part here
    sessions = session_factory(engine)
    runner = ConsumerRunner(
        service="test", group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic],
        handlers={"directory.person.upserted": record_person},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
        topic_partitions=1, commit_timeout=1.0, session_timeout_ms=3_000,  # the rejoin waits out the hung member
    )
    members = []
    start_member = runner._start_consumer

    async def start_and_count():
        consumer = await start_member()
        if not members:  # the first member's commits hang, as on a broker that lost the topic
            async def never(*_a, **_k):
                await asyncio.Event().wait()
            consumer.commit = never
        members.append(consumer)
        return consumer

    runner._start_consumer = start_and_count

    async def consumed():
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(AuditEntry.entity_id).where(AuditEntry.action == "test.consumed"))
            return sorted(r[0] for r in rows)

    first, second = person_event("First"), person_event("Second")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await producer.send_and_wait(topic, first.to_bytes())
        await eventually(lambda: len(members) >= 2, timeout=30)  # gave up and rejoined
        await producer.send_and_wait(topic, second.to_bytes())
        await eventually(lambda: _has_all(consumed, [second.subject]), timeout=30)
        assert await consumed() == sorted([first.subject, second.subject])  # the re-read changed nothing
    finally:
        stop.set()
        await producer.stop()
        await asyncio.wait_for(task, 30)
        await engine.dispose()


async def _has_all(fetch, subjects):
    got = await fetch()
    return all(s in got for s in subjects)


async def _count_is(fetch, n):
    return len(await fetch()) == n


async def _equals(fetch, want):
    return await fetch() == want
