"""Event handlers (consumer group ``escalation``): indicator breaches and recoveries open and
note tickets; the directory's changes keep the local copy of the senior teams."""

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
    SeniorTeamChanged,
)
from citystat_common.uow import UnitOfWork
from escalation import service

GROUP_ID = "escalation"
TOPICS = [TOPIC_INDICATORS, TOPIC_DIRECTORY]


def make_handlers(deps: service.Deps, clock: Callable[[], datetime] = utcnow) -> dict[str, Handler]:
    async def breached(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorBreached)
        await service.handle_breach(uow, deps, payload=payload, now=clock())

    async def recovered(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorRecovered)
        await service.handle_recovery(uow, deps, payload=payload, now=clock())

    async def senior_team(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, SeniorTeamChanged)
        await service.apply_senior_team(uow, payload=payload, event_time=envelope.time, now=clock())

    async def department(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, DepartmentUpserted)
        await service.apply_department(uow, payload=payload, now=clock())

    return {
        "indicators.indicator.breached": breached,
        "indicators.indicator.recovered": recovered,
        "directory.senior_team.changed": senior_team,
        "directory.department.upserted": department,
    }
