"""Consumer runner: a consumer-group member with an inbox, bounded retries and a DLQ.

For each message: the handler's effect and the inbox row (consumer, event id) are written
in one transaction (``consumer_inbox``); the Kafka offset is committed only after it. A
redelivered event finds its inbox row and changes nothing. A message that cannot be parsed goes to
``<topic>.dlq`` at once; one whose handler keeps failing goes there after N retries,
with the error in its headers and a ``dead_letter`` row; the consumer moves on.

Opt-in batches (``Batched``): a consumer whose work pays per unit of work rather than per event
(the indicators' 311 derivation) gets a fetch whose records are all of its batch types as one
unit (every partition's, each in its order; else the consecutive batch-type records of a
partition), up to a bound: one inbox read, the handler once, one inbox insert, one commit,
offsets after it. A kill mid-batch replays the whole batch; the inbox drops what was applied. A
batch whose handler fails (not an outage) is applied again one event at a time (each a batch of
one, with its retries), so a poison event reaches the DLQ alone and the rest are applied.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from citystat_common import metrics
from citystat_common.batched import Batched, BatchHandler, batchable, single, split_runs
from citystat_common.bus import ensure_topics, make_producer
from citystat_common.consumer_inbox import Handler, Inbox
from citystat_common.db import PlumbingTables, utcnow
from citystat_common.events import Envelope, EventRejected, dlq_topic, parse_event
from citystat_common.logging import correlation_id_var, get_logger
from citystat_common.outage import is_infrastructure_down
from citystat_common.uow import UnitOfWork

log = get_logger(__name__)

__all__ = ["BatchHandler", "Batched", "ConsumerRunner", "Handler", "Stopped"]

# How long a fetch may wait on the broker for records. aiokafka's default (500 ms) costs Tansu
# dearly: measured by `make bench` (bench/stackbench.py), produce-to-consume took ~125 ms at the
# median and ~250 ms at p99 with it, 3 ms and 8 ms with 50 ms. Apache Kafka answers a fetch as
# soon as records arrive, so there a short wait only adds a few cheap empty fetches when idle.
CONSUMER_FETCH_KWARGS: dict[str, Any] = {"fetch_max_wait_ms": 50}

# While the database or the broker is away the consumer waits on the same record, at most this long
# between attempts; those attempts never count toward dead-lettering (the event is not at fault).
INFRA_MAX_BACKOFF = 5.0


class Stopped(Exception):
    """The worker stops while a record waits for the infrastructure: its offset is not committed."""


class ConsumerRunner:
    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        handlers: dict[str, Handler],
        uow_factory: Callable[[], UnitOfWork],
        tables: PlumbingTables,
        bootstrap: str,
        enable_idempotence: bool = False,
        max_retries: int = 3,
        retry_backoff: float = 0.2,
        topic_partitions: int | None = None,
        commit_timeout: float = 15.0,
        session_timeout_ms: int = 10_000,
        batched: Batched | None = None,
    ):
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self.batched = batched
        self.handlers = dict(handlers)
        if batched is not None:
            # One event of a batch type alone (the fallback, or a direct ``process``): a batch of one.
            for event_type in batched.types:
                self.handlers[event_type] = single(batched.handler)
        self.uow_factory = uow_factory
        self.tables = tables
        self.bootstrap = bootstrap
        self.enable_idempotence = enable_idempotence
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.session_timeout_ms = session_timeout_ms
        # Local broker only: recreate lost topics before rejoining (see run and _poll_loop).
        self.topic_partitions = topic_partitions
        self.commit_timeout = commit_timeout
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: set[TopicPartition] = set()
        self._stop: asyncio.Event | None = None
        self.outage_waits = 0  # attempts that met the database or broker away (never toward the DLQ)
        self.inbox = Inbox(uow_factory=uow_factory, tables=tables, group_id=group_id)

    # -- one message ------------------------------------------------------------------
    async def process(self, record: ConsumerRecord) -> str:
        """Process one record; returns what happened: processed, duplicate, ignored, dead_lettered."""
        try:
            envelope, payload = parse_event(record.value or b"")
        except EventRejected as exc:
            await self._dead_letter(record, None, str(exc))
            return "dead_lettered"
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return "ignored"  # a type this consumer does not act on
        token = correlation_id_var.set(envelope.correlation_id)
        try:
            last_error: BaseException | None = None
            attempt = 0
            outage_waits = 0
            while attempt <= self.max_retries:
                try:
                    outcome = await self.inbox.apply(envelope, payload, handler)
                    if outage_waits:
                        metrics.CONSUMER_PAUSED.labels(self.service, self.group_id).set(0)
                        log.info("consumer_resumed", group=self.group_id, event_id=envelope.id, waits=outage_waits)
                    if outcome == "duplicate":
                        metrics.EVENTS_DUPLICATE.labels(self.service, envelope.type).inc()
                    else:
                        metrics.EVENTS_CONSUMED.labels(self.service, envelope.type).inc()
                    # carries the event's correlation id (bound above), so a chain can be followed in logs
                    log.info("event_processed", type=envelope.type, event_id=envelope.id, outcome=outcome)
                    return outcome
                except Exception as exc:
                    if is_infrastructure_down(exc):
                        # The database (or broker) is away, not the event at fault: wait on this record,
                        # offsets uncommitted, for as long as it takes; it never counts toward the DLQ.
                        metrics.CONSUMER_PAUSED.labels(self.service, self.group_id).set(1)
                        await self._wait_out_outage(envelope, exc, outage_waits)
                        outage_waits += 1
                        self.outage_waits += 1
                        continue
                    last_error = exc
                    metrics.EVENTS_FAILED.labels(self.service, envelope.type).inc()
                    log.warning("handler_failed", event_id=envelope.id, type=envelope.type, attempt=attempt, error=repr(exc))
                    if attempt < self.max_retries:
                        await asyncio.sleep(self.retry_backoff * (2**attempt))
                    attempt += 1
            await self._dead_letter(record, envelope, f"{type(last_error).__name__}: {last_error}")
            return "dead_lettered"
        finally:
            correlation_id_var.reset(token)

    # -- a batch ------------------------------------------------------------------------
    async def process_batch(self, records: Sequence[ConsumerRecord]) -> list[str]:
        """Apply records of batch types (or unparseable ones) as one unit, each partition's in order;
        returns each record's outcome, as ``process`` would."""
        assert self.batched is not None
        outcomes: list[str] = ["ignored"] * len(records)
        items: list[tuple[int, Envelope, Any]] = []
        seen: set[str] = set()
        for i, record in enumerate(records):
            try:
                envelope, payload = parse_event(record.value or b"")
            except EventRejected as exc:
                await self._dead_letter(record, None, str(exc))
                outcomes[i] = "dead_lettered"
                continue
            if envelope.type not in self.handlers:
                continue
            if envelope.id in seen:  # delivered twice within the fetch
                outcomes[i] = "duplicate"
                metrics.EVENTS_DUPLICATE.labels(self.service, envelope.type).inc()
                continue
            seen.add(envelope.id)
            items.append((i, envelope, payload))
        if not items:
            return outcomes
        outage_waits = 0
        # What the batch emits carries the correlation id of its last event (the one that completed
        # the figures); each event's own id is on its log line below.
        token = correlation_id_var.set(items[-1][1].correlation_id)
        started = time.perf_counter()
        try:
            while True:
                try:
                    applied = await self.inbox.apply_batch([(e, p) for _, e, p in items], self.batched.handler)
                    break
                except Exception as exc:
                    if is_infrastructure_down(exc):
                        metrics.CONSUMER_PAUSED.labels(self.service, self.group_id).set(1)
                        await self._wait_out_outage(items[0][1], exc, outage_waits)
                        outage_waits += 1
                        self.outage_waits += 1
                        continue
                    # Some event of the batch is at fault (or the batch as a whole): one by one, with
                    # the usual retries, so only a poison event goes to the DLQ.
                    log.warning("batch_failed_applying_one_by_one", group=self.group_id, events=len(items),
                                error=repr(exc)[:500])
                    for i, _, _ in items:
                        outcomes[i] = await self.process(records[i])
                    return outcomes
        finally:
            correlation_id_var.reset(token)
        if not outage_waits:  # a batch that waited out an outage would say nothing of the work
            metrics.CONSUMER_BATCH_SECONDS.labels(self.service, self.group_id).observe(time.perf_counter() - started)
        else:
            metrics.CONSUMER_PAUSED.labels(self.service, self.group_id).set(0)
            log.info("consumer_resumed", group=self.group_id, event_id=items[0][1].id, waits=outage_waits)
        for i, envelope, _ in items:
            if envelope.id in applied:
                outcomes[i] = "processed"
                metrics.EVENTS_CONSUMED.labels(self.service, envelope.type).inc()
            else:
                outcomes[i] = "duplicate"
                metrics.EVENTS_DUPLICATE.labels(self.service, envelope.type).inc()
            # one line per event with its own correlation id, so a chain can be followed in logs
            event_token = correlation_id_var.set(envelope.correlation_id)
            try:
                log.info("event_processed", type=envelope.type, event_id=envelope.id, outcome=outcomes[i],
                         batch=len(items))
            finally:
                correlation_id_var.reset(event_token)
        log.info("batch_processed", group=self.group_id, events=len(items), applied=len(applied))
        return outcomes

    async def _wait_out_outage(self, envelope: Envelope, exc: BaseException, waits: int) -> None:
        if waits == 0:
            log.warning("consumer_paused_infrastructure_down", group=self.group_id, event_id=envelope.id,
                        type=envelope.type, error=repr(exc)[:500])
        delay = min(INFRA_MAX_BACKOFF, max(self.retry_backoff, 0.05) * (2 ** min(waits, 10)))
        if self._stop is None:
            await asyncio.sleep(delay)
            return
        await _wait(self._stop, delay)
        if self._stop.is_set():
            raise Stopped(envelope.id)

    async def _dead_letter(self, record: ConsumerRecord, envelope: Envelope | None, error: str) -> None:
        event_type = envelope.type if envelope else "unparseable"
        log.error("dead_lettered", topic=record.topic, offset=record.offset, type=event_type, error=error[:500])
        headers = list(record.headers or []) + [
            ("dlq_error", error[:4000].encode()),
            ("dlq_source_topic", record.topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
            ("dlq_consumer", self.group_id.encode()),
        ]
        async with self.uow_factory() as uow:
            await uow.session.execute(
                sa.insert(self.tables.dead_letter).values(
                    consumer=self.group_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    event_id=envelope.id if envelope else None,
                    error=error[:4000],
                    payload=record.value or b"",
                    created_at=utcnow(),
                )
            )
            await uow.commit()
        producer = make_producer(self.bootstrap, self.enable_idempotence)
        await producer.start()
        try:
            await producer.send_and_wait(dlq_topic(record.topic), record.value, key=record.key, headers=headers)
        finally:
            await producer.stop()
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, record.topic, event_type).inc()

    # -- loop ---------------------------------------------------------------------------
    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,  # offsets only after the database transaction
            auto_offset_reset="earliest",
            max_poll_records=self.batched.max_events if self.batched else 200,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=min(1_000, self.session_timeout_ms // 10),
            request_timeout_ms=15_000,
            **CONSUMER_FETCH_KWARGS,
        )
        try:
            await consumer.start()
        except BaseException:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001
                pass
            raise
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        self._stop = stop
        while not stop.is_set():
            try:
                self.consumer = await self._start_consumer()
                log.info("consumer_started", group=self.group_id, topics=self.topics)
                backoff = 0.5
                await self._poll_loop(stop)
            except asyncio.CancelledError:
                raise
            except Stopped:
                break
            except Exception as exc:
                log.warning("consumer_error", group=self.group_id, error=repr(exc), retry_in=backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, 10)
                if self.topic_partitions:
                    try:
                        topics = tuple(self.topics) + tuple(dlq_topic(t) for t in self.topics)
                        await ensure_topics(self.bootstrap, self.topic_partitions, topics, attempts=1)
                    except Exception as topics_exc:  # noqa: BLE001 - broker still away: the next start fails and retries
                        log.warning("topics_not_ready", error=repr(topics_exc))
            finally:
                if self.consumer is not None:
                    try:
                        await asyncio.wait_for(self.consumer.stop(), 10)
                    except Exception:  # noqa: BLE001
                        pass
                    self.consumer = None
                    self.assigned = set()
        log.info("consumer_stopped", group=self.group_id)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        last_beat = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            if self.batched is not None and batches and all(
                self._batchable(r) for records in batches.values() for r in records
            ):
                # Every partition's records are of batch types: one unit of work for the whole fetch
                # (each partition's order kept within it), then each partition's offset.
                await self._process_fetch(batches)
                batches = {}
            for tp, records in batches.items():
                for run in self._runs(records):
                    if len(run) > 1 or (self.batched is not None and self._batchable(run[0])):
                        await self.process_batch(run)
                    else:
                        await self.process(run[0])
                # Commit after the batch's transactions: a crash before this replays them into the inbox.
                # Bounded: aiokafka retries a refused commit forever (a restarted memory-only Tansu
                # refuses them on a topic it lost); a fresh member re-reads, and the inbox skips repeats.
                try:
                    await asyncio.wait_for(consumer.commit({tp: records[-1].offset + 1}), self.commit_timeout)
                except TimeoutError:
                    raise RuntimeError(f"offset commit on {tp.topic}:{tp.partition} not accepted in time") from None
            self.assigned = set(consumer.assignment())
            if loop.time() - last_beat > 2:
                last_beat = loop.time()
                await self._report(consumer)

    async def _process_fetch(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self.consumer is not None and self.batched is not None
        records = [r for recs in batches.values() for r in recs]
        for i in range(0, len(records), self.batched.max_events):
            await self.process_batch(records[i : i + self.batched.max_events])
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), self.commit_timeout)
        except TimeoutError:
            raise RuntimeError("offset commit not accepted in time") from None

    def _batchable(self, record: ConsumerRecord) -> bool:
        assert self.batched is not None
        return batchable(record, self.batched)

    def _runs(self, records: list[ConsumerRecord]) -> list[list[ConsumerRecord]]:
        return split_runs(records, self.batched)

    async def _report(self, consumer: AIOKafkaConsumer) -> None:
        for tp in self.assigned:
            try:
                high = consumer.highwater(tp)
                pos = await consumer.position(tp)
                if high is not None:
                    # Tansu's end offsets are approximate after multi-record batches (design.md).
                    metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, high - pos))
            except Exception:  # noqa: BLE001 - lag is best-effort
                pass
        hb = self.tables.heartbeat
        # One row per replica (host and pid), so several members of a group are all visible.
        component = f"consumer:{self.group_id}:{socket.gethostname()}:{os.getpid()}"[:100]
        details = {"group": self.group_id, "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in self.assigned)}
        try:
            async with self.uow_factory() as uow:
                res = await uow.session.execute(
                    sa.update(hb).where(hb.c.component == component).values(details=details, updated_at=utcnow())
                )
                if not getattr(res, "rowcount", 0):
                    await uow.session.execute(
                        sa.insert(hb).values(component=component, details=details, updated_at=utcnow())
                    )
                await uow.commit()
        except Exception as exc:  # noqa: BLE001
            log.warning("heartbeat_failed", error=repr(exc))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
