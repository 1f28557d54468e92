"""Event handlers (consumer group ``escalation``): indicator breaches, recoveries and status
changes (overrides) open and note tickets; the directory's changes keep the local copy of the
departments, senior teams and people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from citystat_common.consumer import Handler
from citystat_common.db import utcnow
from citystat_common.events import (
    TOPIC_DIRECTORY,
    TOPIC_INDICATORS,
    DepartmentUpserted,
    Envelope,
    IndicatorBreached,
    IndicatorRecovered,
    IndicatorStatusChanged,
    PersonUpserted,
    SeniorTeamChanged,
)
from citystat_common.uow import UnitOfWork
from escalation import episodes, service

GROUP_ID = "escalation"
TOPICS = [TOPIC_INDICATORS, TOPIC_DIRECTORY]


def make_handlers(deps: service.Deps, clock: Callable[[], datetime] = utcnow) -> dict[str, Handler]:
    async def breached(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorBreached)
        await episodes.handle_breach(uow, deps, payload=payload, now=clock())

    async def recovered(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorRecovered)
        await episodes.handle_recovery(uow, deps, payload=payload, now=clock())

    async def status_changed(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorStatusChanged)
        await episodes.handle_status_changed(uow, deps, payload=payload, now=clock())

    async def person(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, PersonUpserted)
        await service.apply_person(uow, payload=payload, now=clock())

    async def senior_team(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, SeniorTeamChanged)
        await service.apply_senior_team(uow, payload=payload, event_time=envelope.time, now=clock())

    async def department(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, DepartmentUpserted)
        await service.apply_department(uow, payload=payload, now=clock())

    return {
        "indicators.indicator.breached": breached,
        "indicators.indicator.recovered": recovered,
        "indicators.indicator.status_changed": status_changed,
        "directory.senior_team.changed": senior_team,
        "directory.department.upserted": department,
        "directory.person.upserted": person,
    }
