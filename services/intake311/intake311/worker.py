"""intake311 worker: the outbox relay, the directory.changes consumer (local department copy),
the acceptance of batch-service requests, the backlog gauges and fresh planner statistics of
service_requests while it is young (citystat_common.statistics); ``import-requests`` imports a
city's request history (intake311.import_command), ``import-catalog`` its service catalog
(intake311.catalog_command)."""

from __future__ import annotations

import asyncio

from citystat_common.db import create_engine, session_factory
from citystat_common.events import TOPIC_DIRECTORY
from citystat_common.logging import get_logger
from citystat_common.runtime import (
    Component,
    WorkerCommand,
    WorkerParts,
    make_consumer,
    make_relay,
    worker_main,
)
from citystat_common.statistics import StatisticsKeeper
from citystat_common.uow import UnitOfWork
from intake311 import areas_import, areas_retag, catalog_command, import_command, metrics, service
from intake311.config import Settings
from intake311.handlers import HANDLERS
from intake311.models import PLUMBING

log = get_logger(__name__)


def _every(seconds: float, name: str, step) -> Component:  # type: ignore[no-untyped-def]
    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the worker
                log.warning(f"{name}_failed", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            except TimeoutError:
                pass

    return loop


def build_worker(settings: Settings) -> WorkerParts:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, PLUMBING)

    async def refresh_gauges() -> None:
        async with uow() as u:
            open_, overdue, depts = await service.backlog(u)
        metrics.set_backlog(open_, overdue, depts)

    # the duplicate lookup needs column statistics of service_requests from its first minutes on
    statistics = StatisticsKeeper(engine, ["service_requests"])

    async def accept_batch() -> None:
        async with uow() as u:
            if await service.accept_batch(u):
                await u.commit()

    return WorkerParts(
        engine=engine,
        relay=make_relay(settings, engine, PLUMBING),
        consumers=[make_consumer(settings, engine, PLUMBING, group_id=settings.consumer_group, topics=[TOPIC_DIRECTORY], handlers=HANDLERS)],
        schedulers=[
            _every(settings.gauge_interval, "gauges", refresh_gauges),
            _every(settings.batch_interval, "batch_accept", accept_batch),
            _every(settings.statistics_interval, "statistics", statistics.step),
        ],
    )


def main() -> None:
    worker_main(package="intake311", settings_factory=Settings, tables=PLUMBING, build=build_worker,
                commands=(WorkerCommand("import-requests", "import a city's request history from a CSV export",
                                        import_command.arguments, import_command.run),
                          WorkerCommand("import-catalog", "import the city's service catalog from a CSV file",
                                        catalog_command.arguments, catalog_command.run),
                          *areas_import.COMMANDS,  # import-areas, import-addresses (issue 21)
                          *areas_retag.COMMANDS))  # retag-areas


if __name__ == "__main__":
    main()
