"""Service-to-service HTTP: an httpx client that carries the current correlation id, so a chain
(HTTP request → events → a call to another service) stays traceable in every service's logs."""

from __future__ import annotations

from typing import Any

import httpx

from citystat_common.logging import current_correlation_id


async def _add_correlation(request: httpx.Request) -> None:
    cid = current_correlation_id()
    if cid and "x-correlation-id" not in request.headers:
        request.headers["X-Correlation-ID"] = cid


def correlated_client(**kwargs: Any) -> httpx.AsyncClient:
    hooks = kwargs.pop("event_hooks", {}) or {}
    hooks = {**hooks, "request": [*hooks.get("request", []), _add_correlation]}
    return httpx.AsyncClient(event_hooks=hooks, **kwargs)
