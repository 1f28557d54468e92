"""Event handlers (consumer group ``escalation``): indicator breaches, recoveries and status
changes (overrides) open and note tickets; the directory's changes keep the local copy of the
departments, senior teams and people."""

from __future__ import annotations

from typing import Any

from citystat_common.consumer import Handler
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
from escalation import directory_copy, episodes
from escalation.deps import Deps

GROUP_ID = "escalation"
TOPICS = [TOPIC_INDICATORS, TOPIC_DIRECTORY]


def make_handlers(deps: Deps) -> dict[str, Handler]:
    async def breached(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorBreached)
        await episodes.handle_breach(uow, deps, payload=payload, now=deps.now())

    async def recovered(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorRecovered)
        await episodes.handle_recovery(uow, deps, payload=payload, now=deps.now())

    async def status_changed(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, IndicatorStatusChanged)
        await episodes.handle_status_changed(uow, deps, payload=payload, now=deps.now())

    async def person(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, PersonUpserted)
        await directory_copy.apply_person(uow, payload=payload, now=deps.now())

    async def senior_team(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, SeniorTeamChanged)
        await directory_copy.apply_senior_team(uow, payload=payload, event_time=envelope.time, now=deps.now())

    async def department(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, DepartmentUpserted)
        await directory_copy.apply_department(uow, payload=payload, now=deps.now())

    return {
        "indicators.indicator.breached": breached,
        "indicators.indicator.recovered": recovered,
        "indicators.indicator.status_changed": status_changed,
        "directory.senior_team.changed": senior_team,
        "directory.department.upserted": department,
        "directory.person.upserted": person,
    }
