"""Consumers of the indicators worker (group ``indicators``): 311 requests become observations
of derived indicators; the directory's departments and deputy mayors, and escalation's tickets about
indicators, are kept as local copies.

The 311 events are applied in batches (``make_batch_handler``, ``REQUEST_EVENTS``); the per-event
handlers below are the same work one event at a time (a batch of one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from citystat_common.consumer import BatchHandler, Handler
from citystat_common.events import (
    DepartmentUpserted,
    Envelope,
    HistoryImported,
    RequestFeedback,
    ServiceRequestData,
)
from citystat_common.uow import UnitOfWork
from indicators import backfill_store, cluster_leads, derived311, service, ticket_copy
from indicators.deps import IndicatorsDeps

GROUP_ID = "indicators"
REQUEST_EVENTS = frozenset({
    "intake311.request.created", "intake311.request.updated", "intake311.request.closed", "intake311.request.feedback",
})


def make_handlers(deps: IndicatorsDeps) -> dict[str, Handler]:
    async def on_request(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, ServiceRequestData)
        await derived311.apply_request_event(uow, deps, data=payload)

    async def on_feedback(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, RequestFeedback)
        await derived311.apply_feedback(uow, deps, data=payload)

    async def on_department(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        assert isinstance(payload, DepartmentUpserted)
        await service.upsert_department(uow, payload)

    async def on_history_imported(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        # recorded once (the inbox); the worker's history_backfill scheduler does the work (indicators.backfill)
        assert isinstance(payload, HistoryImported)
        await backfill_store.enqueue(uow, data=payload, now=deps.now())

    return {
        "intake311.request.created": on_request,
        "intake311.request.updated": on_request,
        "intake311.request.closed": on_request,
        "intake311.request.feedback": on_feedback,
        "intake311.history.imported": on_history_imported,
        "directory.department.upserted": on_department,
        "directory.senior_team.changed": cluster_leads.on_senior_team,
        "escalation.ticket.updated": ticket_copy.on_ticket_updated,
    }


def make_batch_handler(deps: IndicatorsDeps) -> BatchHandler:
    async def on_requests(uow: UnitOfWork, events: Sequence[tuple[Envelope, Any]]) -> None:
        payloads = [p for _, p in events]
        assert all(isinstance(p, (ServiceRequestData, RequestFeedback)) for p in payloads)
        await derived311.apply_events(uow, deps, events=payloads)

    return on_requests
