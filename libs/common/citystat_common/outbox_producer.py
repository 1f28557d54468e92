"""The outbox relay's producer (citystat_common.outbox): started on first use, dropped when a publish
fails or the broker lost what it held, and on a local broker the topics recreated before publishing."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from citystat_common.bus import ensure_topics, make_producer
from citystat_common.events import ALL_TOPICS
from citystat_common.logging import get_logger

log = get_logger(__name__)

TOPIC_CHECK_SECONDS = 1.0  # local broker: how often the relay asks whether its topics still exist


class RelayProducer:
    def __init__(self, *, bootstrap: str, enable_idempotence: bool, topic_partitions: int | None,
                 request_timeout_ms: int):
        self.bootstrap = bootstrap
        self.enable_idempotence = enable_idempotence
        # Tansu is memory-only: after its restart the topics are gone, so a new producer recreates them.
        self.topic_partitions = topic_partitions
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._topics_checked_at = float("-inf")

    async def ensure(self) -> AIOKafkaProducer:
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
            self._topics_checked_at = asyncio.get_running_loop().time()
        elif self.topic_partitions:
            await self._recreate_lost_topics(self._producer)
        return self._producer

    async def _recreate_lost_topics(self, producer: AIOKafkaProducer) -> None:
        """Local broker only: a memory-only Tansu that restarted has no topics, yet it accepts
        records for a topic it does not know from a producer whose metadata is cached, and then
        refuses every offset commit on it (a consumer would retry forever). So at most every
        second the relay asks for the topic list (one metadata request on its open connection)
        and creates what is missing before it publishes."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._topics_checked_at < TOPIC_CHECK_SECONDS:
            return
        self._topics_checked_at = loop.time()
        assert self.topic_partitions
        missing = set(ALL_TOPICS) - (await producer.client.fetch_all_metadata()).topics()
        if missing:
            log.warning("topics_missing_on_broker", recreating=sorted(missing))
            await ensure_topics(self.bootstrap, self.topic_partitions, attempts=1)

    async def drop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _quiet_stop(producer)


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=5)
    except Exception:  # noqa: BLE001 - a producer that never started or lost its broker
        pass
