"""Indicators worker: the outbox relay, the consumer of 311.requests, directory.changes and
escalation.tickets, and the schedulers (missing data / override expiry, the 311 refresh, the
status gauge)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from citystat_common.db import create_engine, session_factory
from citystat_common.events import TOPIC_DIRECTORY, TOPIC_REQUESTS, TOPIC_TICKETS
from citystat_common.logging import get_logger
from citystat_common.runtime import Component, WorkerParts, make_consumer, make_relay, worker_main
from citystat_common.uow import UnitOfWork
from indicators import area_stat, backfill, derived311, metrics, service
from indicators.config import Settings
from indicators.deps import IndicatorsDeps
from indicators.handlers import GROUP_ID, REQUEST_EVENTS, make_batch_handler, make_handlers
from indicators.intake311_client import Intake311Imports
from indicators.models import PLUMBING

log = get_logger(__name__)
STATUSES = ("green", "yellow", "red", "grey")


def _periodic(name: str, interval: float, work: Callable[[], Awaitable[None]]) -> Component:
    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await work()
            except Exception as exc:  # noqa: BLE001 - a scheduler keeps going
                log.warning("scheduler_failed", scheduler=name, error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    run.__name__ = name
    return run


def build_worker(settings: Settings) -> WorkerParts:
    deps = IndicatorsDeps(settings=settings)  # no directory port: the worker looks no department up
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, PLUMBING)

    async def missing_and_expiry() -> None:
        # Loop while a full batch came back: cost follows the indicators due, via the index.
        while True:
            async with uow() as u:
                n = await service.flag_missing(u, deps, limit=settings.scheduler_batch)
                n += await service.expire_overrides(u, deps, limit=settings.scheduler_batch)
                await u.commit()
            if n < settings.scheduler_batch:
                return

    async def refresh_311() -> None:
        async with uow() as u:
            await derived311.refresh_current(u, deps)
            await u.commit()
        async with uow() as u:  # Stat by area apart: a slow area refresh never holds back the departments'
            await area_stat.refresh_areas(u, deps)
            await u.commit()

    async def gauges() -> None:
        async with uow() as u:
            counts = await service.status_counts(u)
        seen = {d for d, _, _ in counts}
        table = {(d, s): n for d, s, n in counts}
        for d in seen:
            for s in STATUSES:
                metrics.BY_STATUS.labels(d, s).set(table.get((d, s), 0))

    async def history_backfill(stop: asyncio.Event) -> None:
        # the client lives as long as this component, in the worker's event loop
        client = Intake311Imports.connect(settings.intake311_url, settings.intake311_api_key, settings.intake311_timeout)
        with_intake311 = dataclasses.replace(deps, intake311=client if settings.intake311_api_key else None)
        if not settings.intake311_api_key:
            log.warning("history_backfill_off", reason="INDICATORS_INTAKE311_API_KEY is not set")

        async def work() -> None:
            await backfill.run_backfills(uow, with_intake311)

        try:
            await _periodic("history_backfill", settings.backfill_poll_seconds, work)(stop)
        finally:
            await client.aclose()

    consumer = make_consumer(
        settings, engine, PLUMBING, group_id=GROUP_ID, topics=[TOPIC_REQUESTS, TOPIC_DIRECTORY, TOPIC_TICKETS],
        handlers=make_handlers(deps), batch_handler=make_batch_handler(deps), batch_types=REQUEST_EVENTS,
    )
    return WorkerParts(
        engine=engine,
        relay=make_relay(settings, engine, PLUMBING),
        consumers=[consumer],
        schedulers=[
            _periodic("missing_and_expiry", settings.scheduler_interval_seconds, missing_and_expiry),
            _periodic("refresh_311", settings.derived_refresh_seconds, refresh_311),
            _periodic("status_gauge", settings.scheduler_interval_seconds, gauges),
            history_backfill,
        ],
    )


def main() -> None:
    worker_main(package="indicators", settings_factory=Settings, tables=PLUMBING, build=build_worker)


if __name__ == "__main__":
    main()
