"""The service catalog as the intake path reads it: a snapshot in memory for a few seconds.

Every POST /requests needs its service type, department, service level and business calendar;
reading them from the database each time was a three-table join per request. The catalog
changes rarely (staff edits, directory renames), so each process keeps a snapshot that it
reloads after ``ttl`` seconds, and at once after a catalog write made through this process.
A change made through another replica (or the worker) is seen within ``ttl`` (5 s by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from citystat_common.uow import UnitOfWork
from intake311 import service as domain
from intake311.service import ServiceEntry


class CatalogCache:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, timezone: str, ttl: float = 5.0):
        self._uow_factory = uow_factory
        self.timezone = timezone
        self.ttl = ttl
        self._entries: dict[str, ServiceEntry] = {}
        self._loaded_at = float("-inf")
        self._generation = 0  # bumped by invalidate(): a reload that began before it is stale at once
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._generation += 1
        self._loaded_at = float("-inf")

    def _fresh(self) -> bool:
        return time.monotonic() - self._loaded_at < self.ttl

    async def get(self, code: str) -> ServiceEntry | None:
        """The active service type ``code``, or None."""
        if not self._fresh():
            async with self._lock:  # one reload, however many requests are waiting for it
                if not self._fresh():
                    await self._reload()
        return self._entries.get(code)

    async def _reload(self) -> None:
        started, generation = time.monotonic(), self._generation
        async with self._uow_factory() as uow:
            services = await domain.list_services(uow, active_only=True)
            self._entries = {s.service_code: ServiceEntry.of(s, self.timezone) for s in services}
        if generation == self._generation:  # else a catalog write came in meanwhile: read again next time
            self._loaded_at = started
