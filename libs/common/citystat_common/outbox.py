"""The outbox relay: publishes outbox rows in order, marks them sent, keeps them for replay.

Runs in a service's worker process only (never in the web lifespan, which runs once per
web worker). On PostgreSQL an advisory lock keeps one active relay per database, so events of
one key never overtake each other; it reads pending rows on the lock's own connection and
needs no lease (a crash before marking only means they are published again, and consumers
deduplicate). On SQLite (one worker per file) rows are claimed with a lease token that expires.
While the broker is down the relay backs off and rows wait.

On PostgreSQL a commit that wrote outbox rows also sends ``NOTIFY citystat_outbox`` (see
``UnitOfWork.commit``) and the relay LISTENs on a connection of its own, so an event leaves
within milliseconds instead of waiting for the next poll; polling stays as the fallback (and is
all there is on SQLite, where the api and worker are separate processes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common import metrics, outbox_sqlite
from citystat_common.brokerwatch import BrokerWatch, replay
from citystat_common.bus import broker_reachable
from citystat_common.db import PlumbingTables, utcnow
from citystat_common.logging import get_logger
from citystat_common.outage import is_broker_down, is_database_down
from citystat_common.outbox_listen import OutboxListener
from citystat_common.outbox_listen import wait_any as _wait_any
from citystat_common.outbox_listen import wait_stop as _wait
from citystat_common.outbox_producer import RelayProducer

log = get_logger(__name__)

__all__ = ["OutboxRelay", "replay"]  # replay lives with the broker watch; runtime and tests import it here

LEASE_SECONDS = 30
RELAY_LOCK_ID = 731_311  # pg advisory lock key: one active relay per service database
LOCK_RECHECK_SECONDS = 5.0  # how often a relay that holds the lock asks the database again
# How long a published range waits before the claim floor moves past it: outbox rows are
# inserted at commit, so a transaction that drew a lower id commits well within this.
FLOOR_LAG_SECONDS = 2.0
# How often the relay reports in worker_heartbeat: /readyz calls a relay silent after a few of these.
HEARTBEAT_SECONDS = 2.0

# PostgreSQL statements of fixed text: prepared once per connection, no SQL built per batch.
# No lease on PostgreSQL: the advisory lock makes this relay the only one, and it reads on the
# lock's own connection, so a lease would only double the updates (every outbox row was written
# three times: insert, lease, sent; the dead versions piled up faster than autovacuum came round).
_PG_CLAIM = sa.text("""
SELECT id, event_id, topic, key, event_type, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT :n
""")
# The claim from a floor: every id below it is already published (see OutboxRelay._claim_floor).
_PG_CLAIM_FROM = sa.text("""
SELECT id, event_id, topic, key, event_type, payload FROM outbox
WHERE sent_at IS NULL AND id >= CAST(:floor AS BIGINT) ORDER BY id LIMIT :n
""")
_PG_MARK_SENT = sa.text("""
UPDATE outbox SET sent_at = CAST(:now AS TIMESTAMPTZ), lease_token = NULL, lease_until = NULL, attempts = attempts + 1
WHERE id = ANY(CAST(:ids AS BIGINT[]))
""")
# The outbox grows from empty to days of events. Once a prepared statement has run five times,
# PostgreSQL may keep one generic plan for good; made while the table was small, that plan made
# the mark-sent UPDATE cost 0.65 of a core at 2,000 events/s once the table held ~100,000 rows
# (autovacuum's ANALYZE would replace the plan, but only once it runs). A plan per execution costs
# ~0.1 ms, a few times a second. The lock connection is never returned to the pool.
_PG_CUSTOM_PLANS = sa.text("SET plan_cache_mode = force_custom_plan")
# Holds already (re-entrant stacking avoided) or takes it now.
_PG_TRY_LOCK = sa.text("""
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
               AND objid = CAST(:k AS INTEGER) AND granted)
       OR pg_try_advisory_lock(CAST(:k AS BIGINT))
""")


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
        reset_margin: timedelta = timedelta(seconds=60),
    ):
        self.service = service
        self.engine = engine
        self.outbox = tables.outbox
        self.tables = tables
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.max_backoff = max_backoff
        self.producer = RelayProducer(bootstrap=bootstrap, enable_idempotence=enable_idempotence,
                                      topic_partitions=topic_partitions, request_timeout_ms=request_timeout_ms)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lock_checked_at = float("-inf")
        self._lock_conn: Any = None
        self.listener = OutboxListener(engine)
        self.broker_up = False
        # PostgreSQL claim floor. Marking a row sent leaves its old index entry behind until VACUUM,
        # and a claim from the start of the unsent rows walks all of them: 1.2 ms at 15,000 rows sent,
        # 6.3 ms at 60,000; under the intake load the relay's backend climbed from 0.11 to 0.41 of a
        # core within 20 s (autovacuum off here; on a large outbox it comes round late anyway). So
        # the claim starts at a floor below which every row is published: the first id after a
        # fully published claim, taken FLOOR_LAG_SECONDS later (a row committed late with a lower
        # id is still found meanwhile). Housekeeping lowers the floor to the lowest unsent id when
        # one is below it (a straggler past the lag, a replay), so no row waits more than its period.
        self._floor: int | None = None
        self._covered: deque[tuple[float, int]] = deque()  # (published at, first id after the claim)
        # Notices a broker that lost what it held and says what to publish again (see brokerwatch).
        self.watch = BrokerWatch(bootstrap=bootstrap, engine=engine, tables=tables, margin=reset_margin)

    # -- producer (outbox_producer) ---------------------------------------------------
    async def _ensure_producer(self) -> AIOKafkaProducer:
        return await self.producer.ensure()

    async def _drop_producer(self) -> None:
        await self.producer.drop()

    # -- claiming ---------------------------------------------------------------------
    async def _claim(self) -> list[sa.Row[Any]]:
        if self.engine.dialect.name == "postgresql":
            # One statement of fixed text (prepared once) reads the batch, in autocommit on the
            # lock's connection: one round trip, no BEGIN/COMMIT around it.
            floor = self._claim_floor()
            if floor is None:
                res = await self._on_lock_conn(_PG_CLAIM, {"n": self.batch_size})
            else:
                res = await self._on_lock_conn(_PG_CLAIM_FROM, {"n": self.batch_size, "floor": floor})
            return list(res.all())
        return await outbox_sqlite.claim(self.engine, self.batch_size, timedelta(seconds=LEASE_SECONDS))  # type: ignore[return-value]

    def _claim_floor(self) -> int | None:
        now = asyncio.get_running_loop().time()
        covered = self._covered
        while covered and now - covered[0][0] >= FLOOR_LAG_SECONDS:
            first_after = covered.popleft()[1]
            self._floor = first_after if self._floor is None else max(self._floor, first_after)
        return self._floor

    def _published(self, rows: list[sa.Row[Any]]) -> None:
        """Every row of a claim is published: the ids up to its last are covered."""
        if self.engine.dialect.name == "postgresql":
            self._covered.append((asyncio.get_running_loop().time(), max(r.id for r in rows) + 1))

    def _lower_floor(self, lowest_unsent: int | None) -> None:
        if lowest_unsent is not None and self._floor is not None and lowest_unsent < self._floor:
            log.info("outbox_floor_lowered", floor=self._floor, to=lowest_unsent)
            self._floor = lowest_unsent
            self._covered.clear()  # ranges published before now may lie above the unsent row

    def _forget_floor(self) -> None:
        self._floor = None
        self._covered.clear()

    async def _acquire_relay_lock(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True  # SQLite: exactly one worker process per database file, by deployment
        loop = asyncio.get_running_loop()
        if self._lock_conn is not None and loop.time() - self._lock_checked_at < LOCK_RECHECK_SECONDS:
            return True  # held (a session lock lasts as long as its connection; checked again soon)
        try:
            if self._lock_conn is None:
                # autocommit: a session-level lock needs no transaction, and none stays open
                self._forget_floor()  # another relay may have held the lock meanwhile
                self._lock_conn = await self._autocommit.connect()
                await self._lock_conn.execute(_PG_CUSTOM_PLANS)
            got = (await self._lock_conn.execute(_PG_TRY_LOCK, {"k": RELAY_LOCK_ID})).scalar()
        except Exception as exc:  # database down: not the active relay until it answers again
            log.warning("outbox_relay_lock_failed", error=repr(exc))
            self._database_is(False)
            await self._release_lock_conn()
            return False
        if not got:
            await self._release_lock_conn()
            return False
        self._lock_checked_at = loop.time()
        return True

    async def _on_lock_conn(self, stmt: Any, params: dict[str, Any]) -> Any:
        """PostgreSQL: claims and marks run on the connection that holds the relay lock (autocommit),
        so a relay whose lock session is gone (database restart, terminated backend) fails at its
        next statement instead of publishing beside the replica that took the lock over."""
        if self._lock_conn is None and not await self._acquire_relay_lock():
            raise RuntimeError("another relay holds the outbox lock")
        try:
            return await self._lock_conn.execute(stmt, params)
        except Exception:
            await self._release_lock_conn()
            raise

    async def _release_lock_conn(self) -> None:
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            try:
                # Invalidate, not close: a pooled connection returned to the pool would keep the
                # session's advisory lock, and no relay could take it until the pool reused it.
                await conn.invalidate()
            except Exception:  # noqa: BLE001 - a connection the database already dropped
                pass

    # -- one pass -----------------------------------------------------------------------
    async def publish_once(self) -> int:
        """Publish one batch; returns how many rows were sent. Raises when the broker fails."""
        rows = await self._claim()
        if not rows:
            return 0
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
        if sent and self.engine.dialect.name == "postgresql":
            await self._on_lock_conn(_PG_MARK_SENT, {"now": now, "ids": [r.id for r in sent]})
        elif sent:
            await outbox_sqlite.mark_sent(self.engine, [r.id for r in sent], now)
        for row, res in zip(rows, results, strict=True):
            if not isinstance(res, BaseException):
                self.watch.record(row.topic, res.partition, res.offset, row.event_id)
                metrics.EVENTS_PUBLISHED.labels(self.service, row.event_type).inc()
        if failed:
            first_error = next(r for r in results if isinstance(r, BaseException))
            await self._release(failed, repr(first_error))
            raise RuntimeError(f"{len(failed)} outbox rows not acknowledged: {first_error!r}")
        self._published(rows)
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
            count, oldest, lowest = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(o.c.created_at), sa.func.min(o.c.id)).where(o.c.sent_at.is_(None))
                )
            ).one()
        self._lower_floor(lowest)
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

    async def _check_broker_kept(self) -> None:
        """A broker that lost what it held (restarted memory-only, rebuilt): publish again, on its own,
        what the consumers may not have read; they drop what they had applied (inbox)."""
        lost = await self.watch.lost()
        if not lost:
            return
        since = self.watch.replay_from()
        count = await self.watch.mark_lost_unsent()
        self._forget_floor()  # the next claim starts at the first row marked unsent, in id order
        await self._drop_producer()  # a new one re-creates the topics (local broker)
        metrics.BROKER_RESETS.labels(self.service).inc()
        log.warning("broker_reset_detected", lost_topics=sorted(lost), republishing=count,
                    since=since.isoformat() if since else "every kept row")

    async def _refresh_consumed(self) -> None:
        try:
            await self.watch.refresh_consumed()
            await self.watch.save()
        except Exception as exc:  # noqa: BLE001 - known next pass; the last one stays saved
            log.warning("broker_watch_refresh_failed", error=repr(exc))

    def _database_is(self, up: bool) -> None:
        metrics.DATABASE_UP.labels(self.service).set(1 if up else 0)

    async def _heartbeat(self, backlog: int) -> None:
        hb = self.tables.heartbeat
        watch = self.watch.details()
        details = {"broker_up": self.broker_up, "backlog": backlog, "broker_resets": watch["resets"],
                   "last_broker_reset": watch["last_reset"], "consumed_through": watch["consumed_through"]}
        values = {"details": details, "updated_at": utcnow()}
        async with self.engine.begin() as conn:
            res = await conn.execute(sa.update(hb).where(hb.c.component == "relay").values(**values))
            if not res.rowcount:
                await conn.execute(sa.insert(hb).values(component="relay", **values))

    # -- loop -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.0
        last_housekeeping = last_beat = 0.0
        backlog = 0
        published_since_check = False
        refresh: asyncio.Task[None] | None = None
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
                    if not published_since_check:
                        # Nothing went out since the last pass, so no publish has told: ask the broker.
                        self.broker_up = await broker_reachable(self.bootstrap)
                    published_since_check = False
                    metrics.BROKER_UP.labels(self.service).set(1 if self.broker_up else 0)
                    try:
                        backlog, age = await self.backlog()
                        metrics.OUTBOX_BACKLOG.labels(self.service).set(backlog)
                        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
                        await self.purge_sent()
                        self._database_is(True)
                    except Exception as exc:  # database hiccup: keep the relay alive
                        log.warning("outbox_housekeeping_failed", error=repr(exc))
                        if is_database_down(exc):
                            self._database_is(False)
                    if self.broker_up and (refresh is None or refresh.done()):
                        # Beside the loop, not in it: asking every consumer group for its offsets
                        # takes an admin client and a consumer per group (tens of ms, more on a busy
                        # machine), and an event committed meanwhile waited for it (the tail of the
                        # breach-to-ticket latency).
                        refresh = asyncio.create_task(self._refresh_consumed(), name="broker-watch-refresh")
                if now - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = now
                    try:
                        await self._heartbeat(backlog)
                        self._database_is(True)
                    except Exception as exc:  # noqa: BLE001 - the database is away: readyz says so
                        log.warning("outbox_heartbeat_failed", error=repr(exc))
                        self._database_is(False)
                await self.listener.ensure()
                self.listener.wake.clear()  # from here on, a commit's notification wakes the wait below
                try:
                    await self._check_broker_kept()
                    sent = await self.publish_once()
                    if sent:  # an idle pass touched no broker: housekeeping asks it instead
                        self.broker_up = published_since_check = True
                    backoff = 0.0
                    if sent >= self.batch_size or (sent and not self.listener.listening):
                        continue  # drain a backlog without sleeping
                    # A partial batch was all there was: a commit since the claim has notified
                    # (the wait below returns at once), so another claim now would find nothing.
                except Exception as exc:
                    if is_database_down(exc) and not is_broker_down(exc):
                        # Each signal blames its own component: the broker may be fine.
                        self._database_is(False)
                        log.warning("outbox_database_unavailable", error=repr(exc), retry_in=self.max_backoff)
                        await _wait(stop, min(self.max_backoff, 2.0))
                        continue
                    self.broker_up = False
                    metrics.BROKER_UP.labels(self.service).set(0)
                    await self._drop_producer()
                    backoff = min(self.max_backoff, max(0.5, backoff * 2))
                    log.warning("outbox_publish_failed", error=repr(exc), retry_in=backoff)
                    await _wait(stop, backoff)
                    continue
                await _wait_any(stop, self.listener.wake, self.poll_interval)
        finally:
            if refresh is not None and not refresh.done():
                refresh.cancel()
                await asyncio.gather(refresh, return_exceptions=True)
            await self._drop_producer()
            await self.watch.close()
            await self.listener.close()
            await self._release_lock_conn()
            log.info("outbox_relay_stopped")
