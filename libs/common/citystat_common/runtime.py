"""Entry points shared by the services: ``<svc>-api`` (migrate, then uvicorn) and
``<svc>-worker`` (outbox relay, consumers, schedulers; ``replay --since``; ``migrate``).

The relay and consumers live in the worker process, never in the web lifespan, which
uvicorn runs once per web worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common.bus import ensure_topics
from citystat_common.consumer import Batched, BatchHandler, ConsumerRunner
from citystat_common.db import PlumbingTables, create_engine, session_factory
from citystat_common.logging import configure_logging, get_logger
from citystat_common.migrate import upgrade
from citystat_common.outbox import OutboxRelay, replay
from citystat_common.settings import ServiceSettings
from citystat_common.uow import UnitOfWork

log = get_logger(__name__)
S = TypeVar("S", bound=ServiceSettings)  # a service's own Settings class: its build function gets that type
# A command that reads only the shared settings (ServiceSettings) serves any service: contravariant.
S_contra = TypeVar("S_contra", bound=ServiceSettings, contravariant=True)

Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class WorkerParts:
    """What a service's worker runs; built by the service's ``build_worker`` (its composition root)."""

    engine: AsyncEngine
    relay: OutboxRelay
    consumers: list[ConsumerRunner] = field(default_factory=list)
    schedulers: list[Component] = field(default_factory=list)

    def components(self) -> list[Component]:
        return [self.relay.run, *[c.run for c in self.consumers], *self.schedulers]


@dataclass(frozen=True)
class WorkerCommand(Generic[S_contra]):
    """A service's own ``<svc>-worker`` subcommand (e.g. intake311's ``import-requests``,
    ``import-areas``): ``arguments`` adds its options to the parser, ``run`` does the work once the
    database is migrated and returns the process's exit status (or a coroutine that does). ``run`` gets
    the service's own settings class."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[S_contra, argparse.Namespace], int | Coroutine[Any, Any, int]]


def make_relay(settings: ServiceSettings, engine: AsyncEngine, tables: PlumbingTables) -> OutboxRelay:
    return OutboxRelay(
        service=settings.service_name,
        engine=engine,
        tables=tables,
        bootstrap=settings.kafka_bootstrap,
        enable_idempotence=settings.kafka_enable_idempotence,
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval,
        retention=timedelta(hours=settings.outbox_retention_hours),
        max_backoff=settings.outbox_max_backoff,
        topic_partitions=settings.topic_partitions if settings.create_topics else None,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        reset_margin=timedelta(seconds=settings.broker_reset_margin_seconds),
    )


def make_consumer(
    settings: ServiceSettings,
    engine: AsyncEngine,
    tables: PlumbingTables,
    *,
    group_id: str,
    topics: list[str],
    handlers: dict,  # type: ignore[type-arg]
    batch_handler: BatchHandler | None = None,
    batch_types: frozenset[str] = frozenset(),
) -> ConsumerRunner:
    """``batch_handler``: opt-in, applies the ``batch_types`` events in batches of up to
    ``consumer_max_batch`` (citystat_common.consumer.Batched)."""
    sessions = session_factory(engine)
    return ConsumerRunner(
        service=settings.service_name,
        group_id=group_id,
        topics=topics,
        handlers=handlers,
        uow_factory=lambda: UnitOfWork(sessions, tables),
        tables=tables,
        bootstrap=settings.kafka_bootstrap,
        enable_idempotence=settings.kafka_enable_idempotence,
        max_retries=settings.consumer_max_retries,
        retry_backoff=settings.consumer_retry_backoff,
        topic_partitions=settings.topic_partitions if settings.create_topics else None,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        batched=Batched(batch_types, batch_handler, settings.consumer_max_batch) if batch_handler else None,
    )


async def run_until_stopped(components: list[Component], stop: asyncio.Event) -> None:
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(c(stop)) for c in components]
    try:
        await stop.wait()
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
        for t in done:
            if not t.cancelled() and t.exception():
                log.error("component_failed", error=repr(t.exception()))


async def _run_worker(settings: S, build: Callable[[S], WorkerParts]) -> None:
    parts = build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.create_topics:
        # Wait for the broker, but stay stoppable: SIGTERM while waiting ends the worker at once.
        creating = asyncio.create_task(
            ensure_topics(settings.kafka_bootstrap, settings.topic_partitions, attempts=1_000_000)
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({creating, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            creating.cancel()
            await parts.engine.dispose()
            return
        stopping.cancel()
        creating.result()
    try:
        await run_until_stopped(parts.components(), stop)
    finally:
        await parts.engine.dispose()


async def _replay(settings: ServiceSettings, tables: PlumbingTables, since: datetime) -> int:
    if settings.create_topics:
        # After a broker loss the topics must exist again before anything is re-published.
        await ensure_topics(settings.kafka_bootstrap, settings.topic_partitions, attempts=30)
    engine = create_engine(settings.database_url)
    try:
        return await replay(engine, tables, since)
    finally:
        await engine.dispose()


def _parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def worker_main(
    *,
    package: str,
    settings_factory: Callable[[], S],
    tables: PlumbingTables,
    build: Callable[[S], WorkerParts],
    commands: tuple[WorkerCommand[S], ...] = (),
) -> None:
    parser = argparse.ArgumentParser(prog=f"{package}-worker", description=f"{package} worker process")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the outbox relay, consumers and schedulers (default)")
    sub.add_parser("migrate", help="alembic upgrade head")
    rp = sub.add_parser("replay", help="re-publish kept outbox events created since a time")
    rp.add_argument("--since", required=True, type=_parse_since, help="ISO 8601, e.g. 2026-11-24T00:00:00Z")
    for command in commands:
        command.arguments(sub.add_parser(command.name, help=command.help))
    args = parser.parse_args()
    settings = settings_factory()
    configure_logging(f"{settings.service_name}-worker", settings.log_level, settings.log_format)
    own = {c.name: c for c in commands}
    if args.command in own:
        upgrade(package, settings.database_url)
        status = own[args.command].run(settings, args)
        raise SystemExit(asyncio.run(status) if asyncio.iscoroutine(status) else status)
    if args.command == "migrate":
        upgrade(package, settings.database_url)
        return
    if args.command == "replay":
        count = asyncio.run(_replay(settings, tables, args.since))
        print(f"{count} events marked for re-publishing; the running worker's relay sends them")
        return
    upgrade(package, settings.database_url)
    _start_worker_metrics(settings)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_run_worker(settings, build))


def _start_worker_metrics(settings: ServiceSettings) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from citystat_common.metrics import remove_dead_process_gauges

        remove_dead_process_gauges()  # a predecessor killed -9 left its gauges behind
        return  # the api's /metrics reads this process's files
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.host)


def api_main(*, package: str, settings_factory: Callable[[], ServiceSettings]) -> None:
    import uvicorn

    settings = settings_factory()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    upgrade(package, settings.database_url)  # migrate, then start
    uvicorn.run(
        f"{package}.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
    )
