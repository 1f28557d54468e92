"""Tagging many requests each with the areas in force at its own time (issue 21): the history import
(each row as of its ``requested_datetime``) and the versions a re-tag walks. Intake tags a batch as
of one moment (``areas_index``); here every layer's versions are picked per point with one
``searchsorted`` over their start times, and each version's points go through its STRtree in one
vectorised query (``VersionIndex.codes_at``), so a chunk of 5,000 rows costs a few queries, not
5,000 calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import shapely

from citystat_common.uow import UnitOfWork
from intake311 import areas_store
from intake311.areas import VersionIndex, VersionInfo

Tags = dict[str, tuple[int, str | None]]  # layer -> (version id, area code or None: outside)


def ordered(versions: Sequence[VersionInfo]) -> list[VersionInfo]:
    """One layer's versions in the order ``in_force`` ranks them: by start, then by load."""
    return sorted(versions, key=lambda v: (v.effective_from, v.version))


def version_positions(versions: Sequence[VersionInfo], times: np.ndarray) -> np.ndarray:
    """For each time (POSIX seconds), the position in ``versions`` (as ``ordered`` gives them) of the
    version in force then, -1 before the first starts: the latest start on or before the time, of two
    with the same start the later load (the same answer as ``areas.in_force``)."""
    starts = np.array([v.effective_from.timestamp() for v in versions], dtype=float)
    return np.searchsorted(starts, times, side="right") - 1


def tag_as_of(layers: Mapping[str, Sequence[VersionInfo]], indexes: Mapping[int, VersionIndex],
              points: Sequence[tuple[float, float] | None], times: Sequence[datetime]) -> list[Tags]:
    """Each (lat, long)'s area in every layer by the version in force at its own time; {} for a point
    that is None; a layer with no version in force at a point's time is left out of its tags (as
    intake leaves out a layer that starts later). ``layers``: each layer's versions, ``ordered``;
    ``indexes``: the index of every version ``needed_versions`` names."""
    out: list[Tags] = [{} for _ in points]
    located = np.array([i for i, p in enumerate(points) if p is not None], dtype=int)
    if not located.size:
        return out
    lats = np.array([points[i][0] for i in located], dtype=float)  # type: ignore[index]
    longs = np.array([points[i][1] for i in located], dtype=float)  # type: ignore[index]
    geoms = shapely.points(longs, lats)  # once for every layer and version
    when = np.array([times[i].timestamp() for i in located], dtype=float)
    for layer, versions in layers.items():
        pos = version_positions(versions, when)
        for k in np.unique(pos[pos >= 0]).tolist():
            mine = pos == k
            version = versions[k]
            codes = indexes[version.id].codes_of(geoms[mine])
            for i, code in zip(located[mine].tolist(), codes, strict=True):
                out[i][layer] = (version.id, code)
    return out


def needed_versions(layers: Mapping[str, Sequence[VersionInfo]], times: Sequence[datetime]) -> set[int]:
    """The ids of the versions in force at any of ``times``."""
    when = np.array([t.timestamp() for t in times], dtype=float)
    out: set[int] = set()
    for versions in layers.values():
        pos = version_positions(versions, when)
        out |= {versions[k].id for k in np.unique(pos[pos >= 0]).tolist()}
    return out


class AsOfTagger:
    """Every layer's versions as loaded when it was made (a history import reads them once), each
    version's index built the first time a point of its period needs it."""

    def __init__(self, versions: Sequence[VersionInfo]):
        by_layer: dict[str, list[VersionInfo]] = {}
        for v in versions:
            by_layer.setdefault(v.layer, []).append(v)
        self.layers = {layer: ordered(vs) for layer, vs in by_layer.items()}
        self._indexes: dict[int, VersionIndex] = {}

    @classmethod
    async def load(cls, uow: UnitOfWork) -> AsOfTagger:
        return cls(await areas_store.version_infos(uow))

    def __bool__(self) -> bool:
        return bool(self.layers)

    async def tag(self, uow: UnitOfWork, *, points: Sequence[tuple[float, float] | None],
                  times: Sequence[datetime]) -> list[Tags]:
        if not self.layers:
            return [{} for _ in points]
        for vid in needed_versions(self.layers, [t for p, t in zip(points, times, strict=True) if p is not None]):
            if vid not in self._indexes:
                self._indexes[vid] = VersionIndex(vid, await areas_store.version_areas(uow, vid))
        return tag_as_of(self.layers, self._indexes, points, times)
