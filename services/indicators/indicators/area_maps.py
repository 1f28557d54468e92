"""Where the map pages get a layer's boundaries (issue 21, Stat by area): intake311 keeps the
layers, so the indicators service reads its public ``GET /areas/{layer}.geojson`` (the version in
force) through this port on ``IndicatorsDeps``, and keeps each answer for
``INDICATORS_AREA_MAP_CACHE_SECONDS``: a map page costs intake311 one read per layer per cache period,
and a layer loaded there shows on the maps within that time. Tests pass ``StaticAreaMaps``."""

from __future__ import annotations

import time
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from citystat_common.http import correlated_client


class AreaMapUnavailable(Exception):
    """intake311 did not answer (the page is drawn without its map, saying so)."""


class AreaMaps(Protocol):
    async def layer(self, layer: str) -> dict[str, Any] | None:
        """The layer's FeatureCollection in force now (features' properties: code, name); None: no
        such layer. Raises AreaMapUnavailable when the answer cannot be had."""
        ...


class StaticAreaMaps:
    """Layers given as FeatureCollections (tests, a demo without intake311)."""

    def __init__(self, layers: dict[str, dict[str, Any]]) -> None:
        self.layers = layers

    async def layer(self, layer: str) -> dict[str, Any] | None:
        return self.layers.get(layer)


class HttpAreaMaps:
    def __init__(self, client: httpx.AsyncClient, *, cache_seconds: float) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    @classmethod
    def connect(cls, base_url: str, timeout: float, *, cache_seconds: float) -> HttpAreaMaps:
        # correlated: intake311's log line for the GeoJSON read carries the page's correlation id
        return cls(correlated_client(base_url=base_url, timeout=timeout), cache_seconds=cache_seconds)

    async def layer(self, layer: str) -> dict[str, Any] | None:
        now = time.monotonic()
        hit = self._cache.get(layer)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        try:
            r = await self.client.get(f"/areas/{quote(layer, safe='')}.geojson")
        except httpx.HTTPError as exc:
            raise AreaMapUnavailable(f"intake311 did not answer: {type(exc).__name__}") from exc
        if r.status_code == 404:
            doc = None
        elif r.status_code != 200:
            raise AreaMapUnavailable(f"intake311 answered {r.status_code}")
        else:
            doc = r.json()
            if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
                raise AreaMapUnavailable("intake311's answer is not a FeatureCollection")
        self._cache[layer] = (now, doc)
        return doc

    async def aclose(self) -> None:
        await self.client.aclose()
