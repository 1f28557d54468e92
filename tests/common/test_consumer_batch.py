"""Consumers that apply events in batches (citystat_common.consumer.Batched), through a real Tansu
process, on SQLite and PostgreSQL: a fetch's events applied as one unit, duplicates within and
across batches applied once, a poison event dead-lettered alone with the rest applied, and a batch
cut off before its commit replayed by the next member without anything applied twice."""

import asyncio
import uuid

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from citystat_common.bus import ensure_topics
from citystat_common.consumer import Batched, ConsumerRunner
from citystat_common.db import create_engine, session_factory
from citystat_common.events import PersonUpserted, make_event
from citystat_common.testing import eventually, raw_messages
from citystat_common.uow import UnitOfWork
from directory.models import PLUMBING, AuditEntry

TYPE = "directory.person.upserted"


def person_event(name):
    pid = str(uuid.uuid4())
    return make_event(PersonUpserted(person_id=pid, name=name), subject=pid)


class Recorder:
    """A batch handler that records each person it applies and the size of each batch it got."""

    def __init__(self):
        self.sizes: list[int] = []
        self.hold: asyncio.Event | None = None  # set: the handler waits inside its transaction
        self.entered = asyncio.Event()

    async def __call__(self, uow, events):
        self.sizes.append(len(events))
        for _, payload in events:
            if payload.name == "Explode":
                raise RuntimeError("this handler cannot process Explode")
            uow.session.add(AuditEntry(actor="test", action="test.consumed", entity="person",
                                       entity_id=payload.person_id))
        await uow.session.flush()
        if self.hold is not None:
            self.entered.set()
            await self.hold.wait()


def runner_for(engine, broker, topic, group, recorder, **kw):
    sessions = session_factory(engine)
    return ConsumerRunner(
        service="test", group_id=group, topics=[topic], handlers={},
        uow_factory=lambda: UnitOfWork(sessions, PLUMBING), tables=PLUMBING, bootstrap=broker.bootstrap,
        max_retries=1, retry_backoff=0.01, batched=Batched(frozenset({TYPE}), recorder, max_events=50), **kw,
    )


async def consumed(engine):
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(AuditEntry.entity_id).where(AuditEntry.action == "test.consumed"))
        return sorted(r[0] for r in rows)


async def produce(broker, topic, messages):
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(topic, m, key=b"k")
    finally:
        await producer.stop()


async def test_a_poison_event_goes_to_the_dlq_alone_and_the_batch_is_applied(db_factory, broker):
    topic = f"test.batch.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    engine = create_engine(db_factory("directory"))
    good = [person_event(f"Person {i}") for i in range(8)]
    bad = person_event("Explode")
    messages = [e.to_bytes() for e in good[:3]] + [good[0].to_bytes(), b"not json", bad.to_bytes()]
    messages += [e.to_bytes() for e in good[3:]] + [good[5].to_bytes()]
    await produce(broker, topic, messages)
    recorder = Recorder()
    runner = runner_for(engine, broker, topic, f"g-{uuid.uuid4().hex[:6]}", recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        want = sorted(e.subject for e in good)
        await eventually(lambda: _equals(consumed, engine, want), timeout=30)
        dlq = await raw_messages(broker.bootstrap, f"{topic}.dlq", 2)
        assert dlq == [b"not json", bad.to_bytes()]
        async with engine.connect() as conn:
            dead = (await conn.execute(sa.select(PLUMBING.dead_letter).order_by(PLUMBING.dead_letter.c.id))).all()
            inbox = {r.event_id for r in (await conn.execute(sa.select(PLUMBING.inbox))).all()}
        assert [d.offset for d in dead] == [4, 5] and "cannot process Explode" in dead[1].error
        assert inbox == {e.id for e in good}
        assert max(recorder.sizes) > 1  # the events really came in batches (the first failed as a whole)
    finally:
        stop.set()
        await task
        await engine.dispose()


async def test_duplicates_within_and_across_batches_are_applied_once(db_factory, broker):
    engine = create_engine(db_factory("directory"))
    recorder = Recorder()
    runner = runner_for(engine, broker, "test.batch.direct", "g-direct", recorder)
    events = [person_event(f"Person {i}") for i in range(6)]

    def records(evs, first):
        return [ConsumerRecord("t", 0, first + k, 0, 0, b"k", e.to_bytes(), None, 0, 0, []) for k, e in enumerate(evs)]

    try:
        out = await runner.process_batch(records(events[:4] + [events[1]], 0))
        assert out == ["processed"] * 4 + ["duplicate"]
        assert recorder.sizes == [4]
        out = await runner.process_batch(records(events[2:], 10))  # two seen before, two new
        assert out == ["duplicate", "duplicate", "processed", "processed"]
        assert recorder.sizes == [4, 2]  # the handler only ever sees events not applied yet
        assert await runner.process_batch(records(events, 20)) == ["duplicate"] * 6
        assert await consumed(engine) == sorted(e.subject for e in events)
    finally:
        await engine.dispose()


async def test_a_batch_cut_off_before_its_commit_is_replayed_once(db_factory, broker):
    """The member stops dead inside a batch's transaction (its task cancelled while the handler
    holds uncommitted rows; nothing committed, no offset): the next member of the group reads the
    same records again and applies each once."""
    topic = f"test.batch.cut.{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, 1, (topic, f"{topic}.dlq"))
    engine = create_engine(db_factory("directory"))
    group = f"g-{uuid.uuid4().hex[:6]}"
    events = [person_event(f"Person {i}") for i in range(12)]
    await produce(broker, topic, [e.to_bytes() for e in events[:5]])
    first = Recorder()
    first.hold = asyncio.Event()
    task = asyncio.create_task(runner_for(engine, broker, topic, group, first, session_timeout_ms=3_000).run(asyncio.Event()))
    try:
        await asyncio.wait_for(first.entered.wait(), 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await consumed(engine) == []  # the batch's rows were never committed
    await produce(broker, topic, [e.to_bytes() for e in events[5:]] + [events[2].to_bytes()])
    second = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(runner_for(engine, broker, topic, group, second, session_timeout_ms=3_000).run(stop))
    try:
        want = sorted(e.subject for e in events)
        await eventually(lambda: _equals(consumed, engine, want), timeout=60)
        assert sum(second.sizes) == len(events)  # each event reached the handler once after the cut
    finally:
        stop.set()
        await task
        await engine.dispose()


async def _equals(fetch, engine, want):
    got = await fetch(engine)
    return got if got == want else None


def test_a_fetch_splits_into_runs_that_keep_each_partitions_order():
    """Batch-type records (and unparseable ones, dead-lettered in their batch) run together up to the
    bound; any other record stands alone in its place."""
    from citystat_common.events import DepartmentUpserted

    runner = ConsumerRunner(
        service="test", group_id="g", topics=["t"], handlers={}, uow_factory=lambda: None, tables=PLUMBING,
        bootstrap="127.0.0.1:9", batched=Batched(frozenset({TYPE}), Recorder(), max_events=3),
    )

    def rec(value, offset):
        return ConsumerRecord("t", 0, offset, 0, 0, b"k", value, None, 0, 0, [])

    other = make_event(DepartmentUpserted(department_id="d", code="STREETS", name="Streets"), subject="d").to_bytes()
    people = [person_event(f"P{i}").to_bytes() for i in range(5)]
    values = [people[0], people[1], other, b"junk", people[2], people[3], people[4], other]
    runs = runner._runs([rec(v, i) for i, v in enumerate(values)])
    assert [[r.offset for r in run] for run in runs] == [[0, 1], [2], [3, 4, 5], [6], [7]]


async def test_what_a_batch_emits_carries_its_last_events_correlation_id(db_factory):
    engine = create_engine(db_factory("directory"))
    sessions = session_factory(engine)

    async def echo(uow, events):
        uow.emit(PersonUpserted(person_id="echo", name=f"{len(events)} seen"), subject="echo")

    runner = ConsumerRunner(
        service="test", group_id="g-corr", topics=["t"], handlers={}, uow_factory=lambda: UnitOfWork(sessions, PLUMBING),
        tables=PLUMBING, bootstrap="127.0.0.1:9", batched=Batched(frozenset({TYPE}), echo),
    )
    events = [make_event(PersonUpserted(person_id=f"p{i}", name="P"), subject=f"p{i}", correlation_id=f"corr-{i}")
              for i in range(3)]
    try:
        await runner.process_batch([ConsumerRecord("t", 0, i, 0, 0, b"k", e.to_bytes(), None, 0, 0, [])
                                    for i, e in enumerate(events)])
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(PLUMBING.outbox))).all()
        import orjson

        assert [orjson.loads(r.payload)["correlation_id"] for r in rows] == ["corr-2"]
    finally:
        await engine.dispose()
