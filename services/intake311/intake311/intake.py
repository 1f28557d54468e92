"""The POST /requests write path behind the group commit: what each waiting POST hands over, the
batch's write (one unit of work for them all) and the answer each POST gives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from citystat_common.idempotency import remember
from citystat_common.uow import UnitOfWork
from intake311 import service
from intake311.areas_index import AreaIndex
from intake311.deps import Deps


def post_response_item(req: service.CreatedRequest, *, with_feedback_token: bool = True) -> dict[str, Any]:
    """The spec's fields, then ``feedback_token``: the reporter's, to rate the request once it is
    closed. Shown once: an Idempotency-Key replay answers without it (only its hash is kept)."""
    item: dict[str, Any] = {}
    if req.pending:
        item["token"] = req.token
    else:
        item["service_request_id"] = str(req.id)
    item["service_notice"] = req.service_notice
    item["account_id"] = req.account_id
    if with_feedback_token:
        item["feedback_token"] = req.feedback_token
    return item


@dataclass
class NewRequestItem:
    """What the POST hands to the group commit: the draft and, with an Idempotency-Key, how to
    remember the answer (in the same transaction as the request)."""

    draft: service.RequestDraft
    idempotency: tuple[str, str, str] | None = None  # key, scope, fingerprint


async def write_new_requests(uow: UnitOfWork, deps: Deps, *, items: Sequence[NewRequestItem],
                             numbers: service.RequestNumbers | None = None,
                             areas: AreaIndex | None = None) -> list[service.CreatedRequest]:
    """The group commit's write: every waiting POST's request in one unit of work (the caller commits)."""
    now = deps.now()
    if areas is not None:  # issue 21: positions from the address list, then the areas, in this batch
        await areas.locate(uow, [i.draft for i in items], now)
    created = await service.create_requests(uow, deps, drafts=[i.draft for i in items], numbers=numbers, now=now)
    for item, req in zip(items, created, strict=True):
        if item.idempotency:
            key, scope, fingerprint = item.idempotency
            await remember(uow, key=key, scope=scope, fingerprint=fingerprint, status_code=201,
                           body=orjson.dumps([post_response_item(req, with_feedback_token=False)]),
                           media_type="application/json")
    return created
