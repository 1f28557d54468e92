"""Escalation worker: outbox relay, the ``escalation`` consumer, and the schedulers
(due-ticket escalation, notification dispatch, state gauges). The composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from citystat_common.batched import in_order
from citystat_common.db import create_engine, session_factory, utcnow
from citystat_common.runtime import WorkerParts, make_consumer, make_relay, worker_main
from citystat_common.uow import UnitOfWork
from escalation.config import Settings
from escalation.deps import Deps
from escalation.handlers import TOPICS, make_handlers
from escalation.models import PLUMBING
from escalation.notifiers import Notifier, build_notifiers
from escalation.routing import CircuitBreaker, DirectoryClient
from escalation.scheduler import EscalationScheduler, GaugeRefresher, NotificationDispatcher


def make_directory_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> DirectoryClient:
    return DirectoryClient(
        settings.directory_url, timeout=settings.directory_timeout, retries=settings.directory_retries,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds), transport=transport,
    )


def build_worker(
    settings: Settings,
    *,
    directory_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    notifiers: dict[str, Notifier] | None = None,
) -> WorkerParts:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    def uow_factory() -> UnitOfWork:
        return UnitOfWork(sessions, PLUMBING)

    deps = Deps.build(settings, make_directory_client(settings, directory_transport), clock)
    handlers = make_handlers(deps)
    # a fetch's events in one unit of work each, applied one by one in order (citystat_common.batched.in_order)
    consumer = make_consumer(settings, engine, PLUMBING, group_id=settings.consumer_group, topics=TOPICS,
                             handlers=handlers, batch_handler=in_order(handlers), batch_types=frozenset(handlers))
    escalator = EscalationScheduler(uow_factory, deps, interval=settings.scheduler_interval,
                                    batch=settings.scheduler_batch)
    dispatcher = NotificationDispatcher(uow_factory, notifiers if notifiers is not None else build_notifiers(settings),
                                        clock=clock, interval=settings.notify_interval,
                                        max_attempts=settings.notify_max_attempts,
                                        lease_seconds=settings.notify_lease_seconds)
    gauges = GaugeRefresher(uow_factory, clock=clock, interval=settings.gauge_interval)
    return WorkerParts(engine=engine, relay=make_relay(settings, engine, PLUMBING), consumers=[consumer],
                       schedulers=[escalator.run, dispatcher.run, gauges.run])


def main() -> None:
    worker_main(package="escalation", settings_factory=Settings, tables=PLUMBING, build=build_worker)


if __name__ == "__main__":
    main()
