"""The worker's schedulers: escalation of due tickets, notification dispatch, state gauges.

Due times live in the database, so a restart loses nothing; on PostgreSQL due tickets are
claimed with FOR UPDATE SKIP LOCKED and each level is recorded once (a unique constraint),
so two replicas may run side by side. The clock is injected: tests drive it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation import escalations, followups, metrics, policies
from escalation.deps import Deps
from escalation.models import OPEN_STATUSES, Ticket
from escalation.notifiers import Notifier, dispatch

log = get_logger(__name__)
Clock = Callable[[], datetime]


class EscalationScheduler:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], deps: Deps, *, interval: float = 5.0, batch: int = 50):
        self.uow_factory = uow_factory
        self.deps = deps
        self.interval = interval
        self.batch = batch

    async def run_once(self) -> list[str]:
        """One pass: escalate every due ticket (batch after batch). Returns what happened."""
        outcomes: list[str] = []
        while True:
            async with self.uow_factory() as uow:
                done = await escalations.escalate_due(uow, self.deps, now=self.deps.now(), batch=self.batch)
                await uow.commit()
            outcomes += done
            if len(done) < self.batch:
                break
        async with self.uow_factory() as uow:
            followed = await followups.run(uow, self.deps, now=self.deps.now())
            await uow.commit()
        if followed:
            log.info("followups_written", count=followed)
        return outcomes

    async def run(self, stop: asyncio.Event) -> None:
        async with self.uow_factory() as uow:
            await policies.ensure_default_policy(uow)
            await uow.commit()
        while not stop.is_set():
            try:
                outcomes = await self.run_once()
                if outcomes:
                    log.info("escalation_pass", outcomes=outcomes)
            except Exception as exc:  # noqa: BLE001 - keep the loop alive; due times wait in the database
                log.warning("escalation_pass_failed", error=repr(exc))
            await _wait(stop, self.interval)


class NotificationDispatcher:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], notifiers: dict[str, Notifier], *, clock: Clock = utcnow,
                 interval: float = 2.0, max_attempts: int = 5, lease_seconds: float = 60.0):
        self.uow_factory = uow_factory
        self.notifiers = notifiers
        self.clock = clock
        self.interval = interval
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease_seconds)

    async def run_once(self) -> int:
        return await dispatch(self.uow_factory, self.notifiers, now=self.clock(), max_attempts=self.max_attempts,
                              lease=self.lease)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001
                log.warning("notification_pass_failed", error=repr(exc))
            await _wait(stop, self.interval)
        for n in self.notifiers.values():
            closer = getattr(n, "aclose", None)
            if closer:
                await closer()


async def refresh_gauges(uow: UnitOfWork, *, now: datetime) -> None:
    rows = (await uow.session.execute(
        sa.select(Ticket.department_code, Ticket.level, Ticket.severity, sa.func.count())
        .where(Ticket.status.in_(OPEN_STATUSES)).group_by(Ticket.department_code, Ticket.level, Ticket.severity)
    )).all()
    open_now = {(dept, str(level), str(sev)): n for dept, level, sev, n in rows}
    overdue = (await uow.session.execute(
        sa.select(Ticket.department_code, sa.func.count())
        .where(Ticket.status == "open", Ticket.ack_due_at.is_not(None), Ticket.ack_due_at < now)
        .group_by(Ticket.department_code)
    )).all()
    overdue_now = {(dept,): n for dept, n in overdue}
    # Label sets that emptied are set to 0 rather than removed: in multiprocess mode a removed
    # child would keep its last value in this process's file.
    for labels in _seen_open - open_now.keys():
        metrics.OPEN_TICKETS.labels(*labels).set(0)
    for labels, n in open_now.items():
        metrics.OPEN_TICKETS.labels(*labels).set(n)
    for labels in _seen_overdue - overdue_now.keys():
        metrics.OVERDUE_TICKETS.labels(*labels).set(0)
    for labels, n in overdue_now.items():
        metrics.OVERDUE_TICKETS.labels(*labels).set(n)
    _seen_open.update(open_now)
    _seen_overdue.update(overdue_now)


_seen_open: set[tuple[str, ...]] = set()
_seen_overdue: set[tuple[str, ...]] = set()


class GaugeRefresher:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock = utcnow, interval: float = 15.0):
        self.uow_factory = uow_factory
        self.clock = clock
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.uow_factory() as uow:
                    await refresh_gauges(uow, now=self.clock())
            except Exception as exc:  # noqa: BLE001
                log.warning("gauge_refresh_failed", error=repr(exc))
            await _wait(stop, self.interval)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
