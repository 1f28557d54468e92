"""Settings: pydantic-settings, one env prefix per service, fail fast on bad values.

Nothing here is built at import time: each service calls ``Settings()`` in its
composition root, so tests can pass their own values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from citystat_common.people import PeopleSettings


class ServiceSettings(PeopleSettings):
    """Base settings; a service subclasses it with its own ``env_prefix`` and port. The provider and
    mail settings every service shares come from `PeopleSettings`."""

    model_config = SettingsConfigDict(env_prefix="CITYSTAT_", extra="ignore", populate_by_name=True)

    service_name: str = "citystat"
    database_url: str = "sqlite+aiosqlite:///var/citystat.db"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Port of the worker process's own metrics endpoint when multiprocess mode is off.
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    web_workers: int = Field(1, ge=1, le=64)

    # Shared, unprefixed variables: every service reads the same broker, keys file and calendar.
    kafka_bootstrap: str = Field("127.0.0.1:9092", validation_alias=AliasChoices("kafka_bootstrap", "KAFKA_BOOTSTRAP"))
    kafka_enable_idempotence: bool = Field(
        False, validation_alias=AliasChoices("kafka_enable_idempotence", "KAFKA_ENABLE_IDEMPOTENCE")
    )  # Tansu cannot do InitProducerId; true for Apache Kafka
    topic_partitions: int = Field(
        3, ge=1, le=256, validation_alias=AliasChoices("topic_partitions", "TOPIC_PARTITIONS")
    )
    create_topics: bool = True
    # How long a publish waits for the broker before the relay backs off and retries.
    kafka_request_timeout_ms: int = Field(10_000, ge=500, le=300_000)

    api_keys_file: Path | None = Field(None, validation_alias=AliasChoices("api_keys_file", "API_KEYS_FILE"))
    # Inline keys, JSON: [{"name": "...", "key": "plain" | "sha256": "hex", "scopes": [...], "channel": "..."}]
    api_keys: list[dict[str, Any]] = Field(default_factory=list)

    outbox_batch_size: int = Field(200, ge=1, le=10_000)
    outbox_poll_interval: float = Field(0.2, gt=0, le=60)
    outbox_retention_hours: float = Field(72, gt=0)
    outbox_max_backoff: float = Field(10.0, gt=0)
    # After the broker lost what it held, rows marked sent this long before the last moment every
    # consumer group was known to have read them are published again too (the mark follows the ack).
    broker_reset_margin_seconds: float = Field(60, ge=0, le=86_400)
    # /readyz: the worker's relay and consumers must have reported within this many seconds (they
    # report every 2). The relay check is on where the worker runs beside the api (make run, compose).
    worker_heartbeat_max_age_seconds: float = Field(6.0, gt=0, le=600)
    readiness_checks_worker: bool = Field(
        False, validation_alias=AliasChoices("readiness_checks_worker", "READINESS_CHECKS_WORKER")
    )

    # How long a consumer group waits for a silent member (a killed worker) before it hands that
    # member's partitions to the others; a member heartbeats every tenth of it, and at least once a second.
    consumer_session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    consumer_max_retries: int = Field(3, ge=0, le=100)
    consumer_retry_backoff: float = Field(0.2, ge=0)
    # Consumers that apply events in batches: at most this many per unit of work (and per fetch).
    consumer_max_batch: int = Field(500, ge=1, le=10_000)

    city_timezone: str = Field(
        "America/New_York", validation_alias=AliasChoices("city_timezone", "CITY_TIMEZONE")
    )
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|console)$")
    access_log: bool = True  # one structured line per request (method, route, status, ms, correlation id)
    # After start, move the start-up heap (modules, classes, the app) out of the cyclic collector's
    # reach (gc.freeze): otherwise every full collection that a burst of requests triggers walks it
    # all again (measured: 4x the cost of parsing a 10,000-row bulk call, and 50-100 ms pauses in
    # the 311 intake's tail latency). Off in the test suite, where one process builds many apps.
    gc_freeze: bool = Field(True, validation_alias=AliasChoices("gc_freeze", "GC_FREEZE"))
    # With gc_freeze: young-generation collections every this many allocations instead of 700 (a
    # request allocates hundreds of short-lived objects; measured ~5% of the intake's CPU).
    gc_gen0_threshold: int = Field(20_000, ge=700, le=1_000_000)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # Writes per API key (or client address without a key) per minute; 0 turns limiting off.
    rate_limit_per_minute: int = Field(6000, ge=0)
    rate_limit_burst: int = Field(200, ge=1)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("database_url must be sqlite+aiosqlite://... or postgresql+asyncpg://...")
        return v

    @field_validator("city_timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)  # fail at start-up, not at the first request
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            return json.loads(v) if v.strip() else []
        return v

    @model_validator(mode="after")
    def _check_keys_file(self) -> ServiceSettings:
        if self.api_keys_file is not None and not Path(self.api_keys_file).is_file():
            raise ValueError(f"api_keys_file {self.api_keys_file} does not exist")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def service_settings_config(prefix: str) -> SettingsConfigDict:
    """Config for a service's subclass: ``DIRECTORY_DATABASE_URL`` and so on."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
