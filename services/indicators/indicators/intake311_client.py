"""intake311's imported requests, read for the history backfill (issue 20): ``GET
/admin/imports/{batch_id}/requests?after=&limit=`` (scope staff), keyset pages in id order.

The worker builds one client (``Intake311Imports.connect``); the backfill gets this port on its
``IndicatorsDeps`` (or a fake in tests) and never does HTTP itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from citystat_common.events import ServiceRequestData
from citystat_common.http import correlated_client
from citystat_common.logging import get_logger

log = get_logger(__name__)


class Intake311Unreachable(Exception):
    """intake311 could not answer (down, timed out, refused the key, or answered with an error)."""


class BatchGone(Exception):
    """intake311 has no such import batch (404): nothing to backfill."""


@dataclass(frozen=True)
class ImportedPage:
    requests: list[ServiceRequestData]
    next_after: int | None  # None: this was the last page
    last_id: int  # the id of the page's last request (0 for an empty page): where a resumed read starts


class ImportedRequests(Protocol):
    async def page(self, batch_id: str, *, after: int, limit: int) -> ImportedPage:
        """The batch's requests after ``after`` in id order; raises ``Intake311Unreachable`` or
        ``BatchGone``."""
        ...


def as_request(item: dict[str, Any]) -> ServiceRequestData:
    """An imported request as the event a live request would have carried (its final state)."""
    fields = {k: v for k, v in item.items() if k in ServiceRequestData.model_fields}
    return ServiceRequestData(**fields, change="imported")


class Intake311Imports:
    def __init__(self, client: httpx.AsyncClient, *, owned: bool = True):
        self._client = client
        self._owned = owned

    @classmethod
    def connect(cls, base_url: str, api_key: str, timeout: float) -> Intake311Imports:
        return cls(correlated_client(base_url=base_url, timeout=timeout, headers={"X-API-Key": api_key}))

    async def page(self, batch_id: str, *, after: int, limit: int) -> ImportedPage:
        url = f"/admin/imports/{quote(batch_id, safe='')}/requests"
        try:
            r = await self._client.get(url, params={"after": after, "limit": limit})
        except httpx.HTTPError as exc:
            raise Intake311Unreachable(repr(exc)) from exc
        if r.status_code == 404:
            raise BatchGone(batch_id)
        if r.status_code != 200:
            raise Intake311Unreachable(f"intake311 answered {r.status_code}: {r.text[:200]}")
        try:
            doc = r.json()
            requests = [as_request(item) for item in doc["items"]]
            next_after = doc["next_after"]
            last_id = int(doc["items"][-1]["service_request_id"]) if doc["items"] else after
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise Intake311Unreachable(f"intake311's page is not one of imported requests: {exc!r}"[:500]) from exc
        return ImportedPage(requests=requests, next_after=next_after if isinstance(next_after, int) else None,
                            last_id=last_id)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
