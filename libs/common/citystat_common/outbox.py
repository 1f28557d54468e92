"""The outbox relay: publishes outbox rows in order, marks them sent, keeps them for replay.

Runs in a service's worker process only (never in the web lifespan, which runs once per
web worker). Rows are claimed with a lease token so a crashed relay's claim expires; on
PostgreSQL an advisory lock keeps one active relay per database so events of one key
never overtake each other. While the broker is down the relay backs off and rows wait.

On PostgreSQL a commit that wrote outbox rows also sends ``NOTIFY citystat_outbox`` (see
``UnitOfWork.commit``) and the relay LISTENs on a connection of its own, so an event leaves
within milliseconds instead of waiting for the next poll; polling stays as the fallback (and is
all there is on SQLite, where the api and worker are separate processes).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common import metrics
from citystat_common.bus import ensure_topics, make_producer
from citystat_common.db import PlumbingTables, utcnow
from citystat_common.logging import get_logger

log = get_logger(__name__)

LEASE_SECONDS = 30
RELAY_LOCK_ID = 731_311  # pg advisory lock key: one active relay per service database
NOTIFY_CHANNEL = "citystat_outbox"  # UnitOfWork.commit notifies it on PostgreSQL
LISTEN_RETRY_SECONDS = 10.0


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        tables: PlumbingTables,
        bootstrap: str,
        enable_idempotence: bool = False,
        batch_size: int = 200,
        poll_interval: float = 0.2,
        retention: timedelta = timedelta(hours=72),
        max_backoff: float = 10.0,
        topic_partitions: int | None = None,
        request_timeout_ms: int = 10_000,
    ):
        self.service = service
        self.engine = engine
        self.outbox = tables.outbox
        self.tables = tables
        self.bootstrap = bootstrap
        self.enable_idempotence = enable_idempotence
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.max_backoff = max_backoff
        # Tansu is memory-only: after its restart the topics are gone, so a new producer recreates them.
        self.topic_partitions = topic_partitions
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock_conn: Any = None
        self._listen_conn: Any = None
        self._listen_retry_at = 0.0
        self._wake = asyncio.Event()
        self.broker_up = False

    # -- producer -------------------------------------------------------------------
    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            if self.topic_partitions:
                await ensure_topics(self.bootstrap, self.topic_partitions, attempts=1)
            producer = make_producer(self.bootstrap, self.enable_idempotence, self.request_timeout_ms)
            try:
                await producer.start()
            except BaseException:
                await _quiet_stop(producer)
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _quiet_stop(producer)

    # -- claiming ---------------------------------------------------------------------
    async def _claim(self) -> list[sa.Row[Any]]:
        token = str(uuid.uuid4())
        now = utcnow()
        o = self.outbox
        pending = (
            sa.select(o.c.id)
            .where(o.c.sent_at.is_(None), sa.or_(o.c.lease_until.is_(None), o.c.lease_until < now))
            .order_by(o.c.id)
            .limit(self.batch_size)
        )
        if self.engine.dialect.name == "postgresql":
            # One statement claims the batch and returns its rows: one round trip instead of three.
            claim = (
                sa.update(o)
                .where(o.c.id.in_(pending.with_for_update(skip_locked=True)))
                .values(lease_token=token, lease_until=now + timedelta(seconds=LEASE_SECONDS))
                .returning(*o.c)
            )
            async with self.engine.begin() as conn:
                claimed = list((await conn.execute(claim)).all())
            return sorted(claimed, key=lambda r: r.id)
        async with self.engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(pending)).all()]
            if not ids:
                return []
            await conn.execute(
                sa.update(o)
                .where(o.c.id.in_(ids))
                .values(lease_token=token, lease_until=now + timedelta(seconds=LEASE_SECONDS))
            )
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(o).where(o.c.lease_token == token).order_by(o.c.id))
            return list(rows.all())

    async def _acquire_relay_lock(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True  # SQLite: exactly one worker process per database file, by deployment
        if self._lock_conn is None:
            self._lock_conn = await self.engine.connect()
        got = (await self._lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_ID})).scalar()
        if not got:
            await self._lock_conn.rollback()
        return bool(got)

    async def _ensure_listener(self) -> None:
        """PostgreSQL: LISTEN on a dedicated connection (outside the pool, never in a transaction,
        so notifications arrive at once); on failure keep polling and try again later."""
        if self.engine.dialect.name != "postgresql":
            return
        if self._listen_conn is not None and not self._listen_conn.is_closed():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._listen_retry_at:
            return
        self._listen_retry_at = loop.time() + LISTEN_RETRY_SECONDS
        import asyncpg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = None
        try:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            self._listen_conn = conn
        except Exception as exc:  # noqa: BLE001 - polling still works
            log.warning("outbox_listen_failed", error=repr(exc))
            if conn is not None:
                conn.terminate()

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        if self._listen_conn is not None:
            conn, self._listen_conn = self._listen_conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:  # noqa: BLE001 - a connection the database already dropped
                conn.terminate()

    # -- one pass -----------------------------------------------------------------------
    async def publish_once(self) -> int:
        """Publish one batch; returns how many rows were sent. Raises when the broker fails."""
        rows = await self._claim()
        if not rows:
            return 0
        o = self.outbox
        try:
            producer = await self._ensure_producer()
            futures = []
            for row in rows:
                headers = [("event_type", row.event_type.encode()), ("event_id", row.event_id.encode())]
                futures.append(await producer.send(row.topic, row.payload, key=row.key.encode(), headers=headers))
            results = await asyncio.gather(*futures, return_exceptions=True)
        except Exception as exc:
            await self._release(rows, repr(exc))
            raise
        sent = [row for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
        failed = [row for row, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
        now = utcnow()
        async with self.engine.begin() as conn:
            if sent:
                await conn.execute(
                    sa.update(o)
                    .where(o.c.id.in_([r.id for r in sent]))
                    .values(sent_at=now, lease_token=None, lease_until=None, attempts=o.c.attempts + 1)
                )
        for row in sent:
            metrics.EVENTS_PUBLISHED.labels(self.service, row.event_type).inc()
        if failed:
            first_error = next(r for r in results if isinstance(r, BaseException))
            await self._release(failed, repr(first_error))
            raise RuntimeError(f"{len(failed)} outbox rows not acknowledged: {first_error!r}")
        return len(sent)

    async def _release(self, rows: list[sa.Row[Any]], error: str) -> None:
        o = self.outbox
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(o)
                .where(o.c.id.in_([r.id for r in rows]))
                .values(lease_token=None, lease_until=None, attempts=o.c.attempts + 1, last_error=error[:2000])
            )

    async def backlog(self) -> tuple[int, float]:
        o = self.outbox
        async with self.engine.connect() as conn:
            count, oldest = (
                await conn.execute(sa.select(sa.func.count(), sa.func.min(o.c.created_at)).where(o.c.sent_at.is_(None)))
            ).one()
        age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):
                oldest = datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                from datetime import UTC

                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (utcnow() - oldest).total_seconds())
        return int(count), age

    async def purge_sent(self) -> int:
        o = self.outbox
        async with self.engine.begin() as conn:
            res = await conn.execute(sa.delete(o).where(o.c.sent_at.is_not(None), o.c.sent_at < utcnow() - self.retention))
        return res.rowcount or 0

    async def _heartbeat(self, backlog: int) -> None:
        hb = self.tables.heartbeat
        values = {"details": {"broker_up": self.broker_up, "backlog": backlog}, "updated_at": utcnow()}
        async with self.engine.begin() as conn:
            res = await conn.execute(sa.update(hb).where(hb.c.component == "relay").values(**values))
            if not res.rowcount:
                await conn.execute(sa.insert(hb).values(component="relay", **values))

    # -- loop -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.0
        last_housekeeping = 0.0
        loop = asyncio.get_running_loop()
        log.info("outbox_relay_started", bootstrap=self.bootstrap)
        try:
            while not stop.is_set():
                if not await self._acquire_relay_lock():
                    await _wait(stop, 2.0)  # another replica's relay is active
                    continue
                now = loop.time()
                if now - last_housekeeping > 5:
                    last_housekeeping = now
                    try:
                        count, age = await self.backlog()
                        metrics.OUTBOX_BACKLOG.labels(self.service).set(count)
                        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
                        metrics.BROKER_UP.labels(self.service).set(1 if self.broker_up else 0)
                        await self._heartbeat(count)
                        await self.purge_sent()
                    except Exception as exc:  # database hiccup: keep the relay alive
                        log.warning("outbox_housekeeping_failed", error=repr(exc))
                await self._ensure_listener()
                self._wake.clear()  # from here on, a commit's notification wakes the wait below
                try:
                    sent = await self.publish_once()
                    self.broker_up = True
                    backoff = 0.0
                    if sent:
                        continue  # drain a backlog without sleeping
                except Exception as exc:
                    self.broker_up = False
                    metrics.BROKER_UP.labels(self.service).set(0)
                    await self._drop_producer()
                    backoff = min(self.max_backoff, max(0.5, backoff * 2))
                    log.warning("outbox_publish_failed", error=repr(exc), retry_in=backoff)
                    await _wait(stop, backoff)
                    continue
                await _wait_any(stop, self._wake, self.poll_interval)
        finally:
            await self._drop_producer()
            await self._close_listener()
            if self._lock_conn is not None:
                await self._lock_conn.close()
                self._lock_conn = None
            log.info("outbox_relay_stopped")


async def replay(engine: AsyncEngine, tables: PlumbingTables, since: datetime) -> int:
    """Mark every kept row created since ``since`` as unsent, so the relay publishes it again.

    Consumers deduplicate on the event id, so a replay changes nothing downstream; it
    exists for the day the broker lost its records (Tansu is memory-only)."""
    o = tables.outbox
    async with engine.begin() as conn:
        res = await conn.execute(
            sa.update(o)
            .where(o.c.created_at >= since, o.c.sent_at.is_not(None))
            .values(sent_at=None, lease_token=None, lease_until=None)
        )
    return res.rowcount or 0


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep until ``stop`` or ``wake`` is set, or ``seconds`` pass."""
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=5)
    except Exception:  # noqa: BLE001 - a producer that never started or lost its broker
        pass
