"""The areas as the intake path reads them: every layer version's STRtree, built once per process.

Each api process keeps the versions of every layer in memory and builds a version's index the first
time a request needs it, and one STRtree over the versions in force together (one query per batch). It asks the database at most every ``ttl`` seconds whether anything was
loaded (``areas_store.generation``: one indexed MAX), and at once after a load made through this
process; a layer loaded through another replica or the CLI takes effect within ``ttl``, without a
restart. The version a request is tagged with is the one in force at its time, so a version that
starts tomorrow needs no reload to take over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from citystat_common.uow import UnitOfWork
from intake311 import addresses, areas_store
from intake311.areas import LayersIndex, VersionIndex, VersionInfo, in_force
from intake311.duplicates import address_key

if TYPE_CHECKING:
    from intake311.service import RequestDraft

Tags = dict[str, tuple[int, str | None]]  # layer -> (version id, area code or None: outside)


class AreaIndex:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, ttl: float = 2.0):
        self._uow_factory = uow_factory
        self.ttl = ttl
        self._generation = -1
        self._versions: dict[str, list[VersionInfo]] = {}
        self._built: dict[int, VersionIndex] = {}
        self._combined: dict[tuple[tuple[str, int], ...], LayersIndex] = {}
        self._has_addresses = False
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._checked_at = float("-inf")

    async def _fresh(self, uow: UnitOfWork | None) -> None:
        """``uow``: the caller's, read in (SQLite: a second transaction of this process would wait
        for the write lock the caller's batch holds); None: one of our own."""
        if time.monotonic() - self._checked_at < self.ttl:
            return
        async with self._lock:  # one check, however many batches are waiting for it
            if time.monotonic() - self._checked_at < self.ttl:
                return
            started = time.monotonic()
            if uow is None:
                async with self._uow_factory() as own:
                    await self._reload(own)
            else:
                await self._reload(uow)
            self._checked_at = started

    async def _reload(self, uow: UnitOfWork) -> None:
        generation = await areas_store.generation(uow)
        if generation != self._generation:
            versions: dict[str, list[VersionInfo]] = {}
            for v in await areas_store.version_infos(uow):
                versions.setdefault(v.layer, []).append(v)
            self._versions, self._generation = versions, generation
        self._has_addresses = await areas_store.has_addresses(uow)

    async def layers(self, uow: UnitOfWork | None = None) -> set[str]:
        await self._fresh(uow)
        return set(self._versions)

    async def _index(self, uow: UnitOfWork, version_id: int) -> VersionIndex:
        index = self._built.get(version_id)
        if index is None:  # built once per version and process (a version never changes)
            rows = await areas_store.version_areas(uow, version_id)
            index = self._built.setdefault(version_id, VersionIndex(version_id, rows))
        return index

    async def tag(self, uow: UnitOfWork, points: Sequence[tuple[float, float] | None], at: datetime) -> list[Tags]:
        """The areas of each (lat, long) in every layer, by the versions in force at ``at``; {} for None."""
        await self._fresh(uow)
        out: list[Tags] = [{} for _ in points]
        located = [i for i, p in enumerate(points) if p is not None]
        if not located:
            return out
        current = tuple(sorted((layer, v.id) for layer, versions in self._versions.items()
                               if (v := in_force(versions, at)) is not None))  # a layer may start later
        if not current:
            return out
        index = self._combined.get(current)
        if index is None:  # one tree over the layers in force: one query per batch
            index = LayersIndex([(layer, await self._index(uow, vid)) for layer, vid in current])
            self._combined = {current: index}  # the set in force changes rarely: keep the latest only
        tags = index.codes_at([points[i][1] for i in located], [points[i][0] for i in located])  # type: ignore[index]
        for i, t in zip(located, tags, strict=True):
            out[i] = t
        return out

    async def locate(self, uow: UnitOfWork, drafts: Sequence[RequestDraft], at: datetime) -> None:
        """Intake: give each draft its areas (``draft.areas``), after placing the reports that gave an
        address and no position (``addresses.place``; ``draft.location_note`` says how, or why not).
        One read of the address list for the whole batch, in ``uow``."""
        await self._fresh(uow)
        unplaced = [d for d in drafts if d.data.lat is None and (d.data.address_id or d.data.address_string)]
        if unplaced and self._has_addresses:
            by_id, by_key = await areas_store.find_addresses(
                uow, ids=[d.data.address_id for d in unplaced if d.data.address_id],
                keys=[k for d in unplaced if (k := address_key(d.data.address_string))])
            for d in unplaced:
                placed = addresses.place(d.data.address_id, d.data.address_string, by_id, by_key)
                d.data.lat, d.data.long, d.location_note = placed.lat, placed.long, placed.note
        if not self._versions:
            return
        points = [(d.data.lat, d.data.long) if d.data.lat is not None and d.data.long is not None else None for d in drafts]
        for d, tags in zip(drafts, await self.tag(uow, points, at), strict=True):
            d.areas = tags
