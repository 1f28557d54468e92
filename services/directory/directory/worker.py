"""Directory worker: the outbox relay (the directory consumes no topic) and the scheduler that
publishes a scheduled assignment's team when it takes effect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from citystat_common.db import create_engine, session_factory, utcnow
from citystat_common.logging import get_logger
from citystat_common.runtime import Component, WorkerParts, make_relay, worker_main
from citystat_common.uow import UnitOfWork
from directory import schedule
from directory.config import Settings
from directory.deps import Deps
from directory.models import PLUMBING

log = get_logger(__name__)


def _scheduler(deps: Deps, uow: Callable[[], UnitOfWork]) -> Component:
    settings = deps.settings

    async def scheduled_assignments(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while True:  # a full batch: more may be due
                    async with uow() as u:
                        n = await schedule.publish_due(u, now=deps.now(), limit=settings.schedule_batch)
                        await u.commit()
                    if n < settings.schedule_batch:
                        break
            except Exception as exc:  # noqa: BLE001 - a scheduler keeps going
                log.warning("scheduler_failed", scheduler="scheduled_assignments", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.schedule_interval_seconds)
            except TimeoutError:
                pass

    return scheduled_assignments


def build_worker(settings: Settings, clock: Callable[[], datetime] = utcnow) -> WorkerParts:
    """``clock``: what "now" is for the scheduler (tests pass a later one)."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, PLUMBING)

    return WorkerParts(
        engine=engine, relay=make_relay(settings, engine, PLUMBING),
        schedulers=[_scheduler(Deps(settings=settings, clock=clock), uow)],
    )


def main() -> None:
    worker_main(package="directory", settings_factory=Settings, tables=PLUMBING, build=build_worker)


if __name__ == "__main__":
    main()
