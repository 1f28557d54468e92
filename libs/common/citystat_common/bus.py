"""Kafka plumbing: producer settings, explicit topic creation, a cheap reachability probe."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from citystat_common.events import ALL_TOPICS
from citystat_common.logging import get_logger

log = get_logger(__name__)


def producer_kwargs(bootstrap: str, enable_idempotence: bool, request_timeout_ms: int = 10_000) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        # Tansu answers InitProducerId with UnknownError, so this is a setting: false locally.
        "enable_idempotence": enable_idempotence,
        "request_timeout_ms": request_timeout_ms,
        "retry_backoff_ms": 200,
        # No linger: the relay hands a whole claim to the producer before it yields, so the records
        # still leave in one request; a lone event (a breach on its way to a ticket) does not wait 2 ms.
        "linger_ms": 0,
    }


def make_producer(bootstrap: str, enable_idempotence: bool, request_timeout_ms: int = 10_000) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_kwargs(bootstrap, enable_idempotence, request_timeout_ms))


async def ensure_topics(
    bootstrap: str, partitions: int, topics: tuple[str, ...] = ALL_TOPICS, *, attempts: int = 30
) -> None:
    """Create the topics explicitly, same partition count everywhere (auto-create is off in production)."""
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
                log.info("topics_created", topics=[t.name for t in missing], partitions=partitions)
            return
        except Exception as exc:  # broker not up yet: retry with backoff
            if attempt == attempts - 1:
                raise
            log.warning("topics_not_ready", error=repr(exc), attempt=attempt)
            await asyncio.sleep(min(0.5 * (attempt + 1), 3))
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001 - closing a client that never connected
                pass


async def broker_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    for hostport in bootstrap.split(","):
        host, _, port = hostport.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout)
            writer.close()
            return True
        except (OSError, TimeoutError, ValueError):
            continue
    return False
