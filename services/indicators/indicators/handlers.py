"""Consumers of the indicators worker (group ``indicators``): 311 requests become observations
of derived indicators; the directory's departments and deputy mayors, and escalation's tickets about
indicators, are kept as local copies."""

from __future__ import annotations

from typing import Any

from citystat_common.consumer import Handler
from citystat_common.events import DepartmentUpserted, Envelope, RequestFeedback, ServiceRequestData
from citystat_common.uow import UnitOfWork
from indicators import cluster_leads, derived311, service, ticket_copy
from indicators.config import Settings

GROUP_ID = "indicators"


def make_handlers(settings: Settings) -> dict[str, Handler]:
    async def on_request(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, ServiceRequestData)
        await derived311.apply_request_event(uow, settings, payload)

    async def on_feedback(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, RequestFeedback)
        await derived311.apply_feedback(uow, settings, payload)

    async def on_department(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, DepartmentUpserted)
        await service.upsert_department(uow, payload)

    return {
        "intake311.request.created": on_request,
        "intake311.request.updated": on_request,
        "intake311.request.closed": on_request,
        "intake311.request.feedback": on_feedback,
        "directory.department.upserted": on_department,
        "directory.senior_team.changed": cluster_leads.on_senior_team,
        "escalation.ticket.updated": ticket_copy.on_ticket_updated,
    }
