"""Noticing that the broker lost what it held, and knowing since when to publish again.

A memory-only Tansu that restarts (or a Kafka cluster rebuilt from nothing) has lost every record,
including those no consumer had read yet. The cluster id does not tell (Tansu's is a constant) and
neither do end offsets (Tansu's are wrong after multi-record batches, design.md), so the relay keeps
a *witness* per topic: the partition, offset and event id of the last record the broker acknowledged.
A broker that still holds it returns that very record at that offset; a broker that lost it returns
nothing there, or another event.

What to publish again: everything the consumer groups may not have read. At each housekeeping pass
the relay notes the offsets it has had acknowledged so far (a snapshot, with the time) and asks the
broker for the committed offsets of every consumer group on its topics; the newest snapshot that
every group reading a topic has committed past is the *consumed-through* time. It is kept in the
database, so a relay that starts after the loss knows it too. After a loss, rows marked sent since
consumed-through minus a margin (the mark follows the acknowledgement) are marked unsent; consumers
drop what they had already applied (inbox). Without any consumed-through yet, every kept row goes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import OffsetOutOfRangeError
from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common.db import PlumbingTables, utcnow
from citystat_common.logging import get_logger

log = get_logger(__name__)

WATCH_COMPONENT = "relay:broker-watch"  # its row in worker_heartbeat: the durable part of the watch
WITNESS_CHECK_SECONDS = 2.0
WITNESS_FETCH_MS = 1_500
SNAPSHOTS_KEPT = 720  # an hour of 5-s housekeeping passes


@dataclass(frozen=True)
class Witness:
    topic: str
    partition: int
    offset: int
    event_id: str


class BrokerWatch:
    def __init__(self, *, bootstrap: str, engine: AsyncEngine, tables: PlumbingTables, margin: timedelta):
        self.bootstrap = bootstrap
        self.engine = engine
        self.heartbeat = tables.heartbeat
        self.outbox = tables.outbox
        self.margin = margin
        self.witnesses: dict[str, Witness] = {}
        self.pending: dict[str, Witness] = {}  # acknowledged since the last check; the next witness
        self.acked: dict[TopicPartition, int] = {}  # next offset after the last acknowledged record
        self.snapshots: deque[tuple[datetime, dict[TopicPartition, int]]] = deque(maxlen=SNAPSHOTS_KEPT)
        self.consumed_through: datetime | None = None
        self.resets = 0
        self.last_reset: datetime | None = None
        self._loaded = False
        self._checked_at = float("-inf")
        self._fetcher: AIOKafkaConsumer | None = None

    # -- what the broker acknowledged --------------------------------------------------------
    def record(self, topic: str, partition: int, offset: int, event_id: str) -> None:
        tp = TopicPartition(topic, partition)
        if offset + 1 > self.acked.get(tp, 0):
            self.acked[tp] = offset + 1
        current = self.witnesses.get(topic)
        if current is None:
            self.witnesses[topic] = Witness(topic, partition, offset, event_id)
        elif (current.partition, current.offset) != (partition, offset):
            # The witness moves on only once the broker has shown it still holds the current one
            # (``lost``): a record a new, empty broker acknowledged first must not hide the loss.
            self.pending[topic] = Witness(topic, partition, offset, event_id)

    # -- did the broker lose it? ----------------------------------------------------------------
    async def lost(self) -> list[str]:
        """The topics whose witness the broker no longer holds (checked at most every 2 s)."""
        await self.load()
        loop = asyncio.get_running_loop()
        if not self.witnesses or loop.time() - self._checked_at < WITNESS_CHECK_SECONDS:
            return []
        self._checked_at = loop.time()
        fetcher = await self._ensure_fetcher()
        gone = []
        try:
            for w in list(self.witnesses.values()):
                tp = TopicPartition(w.topic, w.partition)
                fetcher.assign([tp])
                fetcher.seek(tp, w.offset)
                try:
                    records = (await fetcher.getmany(tp, timeout_ms=WITNESS_FETCH_MS, max_records=1)).get(tp, [])
                except OffsetOutOfRangeError:
                    # Kafka's answer for an offset past the end of a log rebuilt from nothing (Tansu
                    # returns no record): the witness is gone, not a failure to retry forever.
                    records = []
                held = records and records[0].offset == w.offset and dict(records[0].headers or ()).get("event_id") == w.event_id.encode()
                if not held:
                    gone.append(w.topic)
                elif (newer := self.pending.pop(w.topic, None)) is not None:
                    self.witnesses[w.topic] = newer
        except Exception:
            await self.close()
            raise
        return gone

    async def _ensure_fetcher(self) -> AIOKafkaConsumer:
        if self._fetcher is None:
            # No group: it reads one offset of one partition and commits nothing.
            fetcher = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="none",
                request_timeout_ms=5_000, fetch_max_wait_ms=200,
            )
            await fetcher.start()
            self._fetcher = fetcher
        return self._fetcher

    async def close(self) -> None:
        if self._fetcher is not None:
            fetcher, self._fetcher = self._fetcher, None
            try:
                await asyncio.wait_for(fetcher.stop(), 5)
            except Exception:  # noqa: BLE001 - a fetcher whose broker is gone
                pass

    # -- what the consumers have read ---------------------------------------------------------------
    async def refresh_consumed(self) -> None:
        """Snapshot what is acknowledged now, and move consumed-through to the newest snapshot that
        every group reading a topic has committed past."""
        if not self.acked:
            return
        self.snapshots.append((utcnow(), dict(self.acked)))
        committed = await self._committed_by_group(set(self.acked))
        best: int | None = None
        for i, (_, snap) in enumerate(self.snapshots):
            if all(_read_past(committed, tp, offset) for tp, offset in snap.items()):
                best = i
        if best is None:
            return
        at = self.snapshots[best][0]
        for _ in range(best):
            self.snapshots.popleft()  # older ones are read too
        if self.consumed_through is None or at > self.consumed_through:
            self.consumed_through = at

    async def _committed_by_group(self, tps: set[TopicPartition]) -> dict[str, dict[TopicPartition, int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5_000)
        await admin.start()
        try:
            groups = [g[0] for g in await admin.list_consumer_groups()]
        finally:
            await admin.close()
        out: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            # OffsetFetch through a member that never joins (Tansu cannot answer the admin's
            # ListConsumerGroupOffsets; it does answer a consumer's).
            member = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False,
                                      request_timeout_ms=5_000)
            await member.start()
            try:
                offsets = {tp: await member.committed(tp) for tp in tps}
            finally:
                await asyncio.wait_for(member.stop(), 5)
            out[group] = {tp: o for tp, o in offsets.items() if o is not None and o >= 0}
        return out

    # -- after a loss -----------------------------------------------------------------------------
    def replay_from(self) -> datetime | None:
        """Rows marked sent since this time may be lost (None: all kept rows)."""
        return None if self.consumed_through is None else self.consumed_through - self.margin

    async def mark_lost_unsent(self) -> int:
        """Mark what the broker may have lost as unsent, so the relay publishes it again."""
        since = self.replay_from()
        o = self.outbox
        stmt = sa.update(o).where(o.c.sent_at.is_not(None))
        if since is not None:
            stmt = stmt.where(o.c.sent_at >= since)
        async with self.engine.begin() as conn:
            res = await conn.execute(stmt.values(sent_at=None, lease_token=None, lease_until=None))
        self.resets += 1
        self.last_reset = utcnow()
        # Offsets start again on the new broker: what was acknowledged before says nothing now.
        self.witnesses.clear()
        self.pending.clear()
        self.acked.clear()
        self.snapshots.clear()
        await self.save()
        return res.rowcount or 0

    # -- durable state --------------------------------------------------------------------------------
    def details(self) -> dict[str, Any]:
        return {
            "witnesses": [[w.topic, w.partition, w.offset, w.event_id] for w in self.witnesses.values()],
            "consumed_through": self.consumed_through.isoformat() if self.consumed_through else None,
            "resets": self.resets,
            "last_reset": self.last_reset.isoformat() if self.last_reset else None,
        }

    async def save(self) -> None:
        await self.load()  # never overwrite what a predecessor saved before reading it
        hb = self.heartbeat
        values = {"details": self.details(), "updated_at": utcnow()}
        async with self.engine.begin() as conn:
            res = await conn.execute(sa.update(hb).where(hb.c.component == WATCH_COMPONENT).values(**values))
            if not res.rowcount:
                await conn.execute(sa.insert(hb).values(component=WATCH_COMPONENT, **values))

    async def load(self) -> None:
        """Once: what a previous relay of this database knew (it may have died with the broker)."""
        if self._loaded:
            return
        hb = self.heartbeat
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(hb.c.details).where(hb.c.component == WATCH_COMPONENT))).first()
        self._loaded = True
        if row is None:
            return
        details = row[0] or {}
        for topic, partition, offset, event_id in details.get("witnesses") or []:
            self.witnesses.setdefault(topic, Witness(topic, int(partition), int(offset), str(event_id)))
        if details.get("consumed_through"):
            saved = _parse_time(details["consumed_through"])
            if self.consumed_through is None or saved > self.consumed_through:
                self.consumed_through = saved
        self.resets = max(self.resets, int(details.get("resets") or 0))
        if details.get("last_reset") and self.last_reset is None:
            self.last_reset = _parse_time(details["last_reset"])


async def replay(engine: AsyncEngine, tables: PlumbingTables, since: datetime) -> int:
    """Mark every kept row created since ``since`` as unsent, so the relay publishes it again.

    Consumers deduplicate on the event id, so a replay changes nothing downstream; it
    exists for the day the broker lost its records (Tansu is memory-only). A running relay finds
    the rows at its next housekeeping pass (below its claim floor, see ``OutboxRelay``)."""
    o = tables.outbox
    async with engine.begin() as conn:
        res = await conn.execute(
            sa.update(o)
            .where(o.c.created_at >= since, o.c.sent_at.is_not(None))
            .values(sent_at=None, lease_token=None, lease_until=None)
        )
    return res.rowcount or 0


def _read_past(committed: dict[str, dict[TopicPartition, int]], tp: TopicPartition, offset: int) -> bool:
    """Every group that reads ``tp``'s topic has committed ``tp`` at or past ``offset``."""
    for offsets in committed.values():
        if any(t.topic == tp.topic for t in offsets) and offsets.get(tp, -1) < offset:
            return False
    return True


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
