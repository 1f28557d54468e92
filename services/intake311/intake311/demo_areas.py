"""The demo city's wards (issue 21): six rectangles around City Hall, loaded by ``make run``'s demo
loader through POST /admin/areas/ward, so the Open311 answers carry a ward, GET /requests filters by
one, and the indicators draw the ward map (INDICATORS_STAT_AREA_LAYERS=ward in deploy/local.env).
A city loads its own layers from GeoJSON the same way (README, "Boundary layers")."""

from __future__ import annotations

from typing import Any

import httpx

# (code, name, south, west, north, east) in WGS84: two rows of three wards over the demo's requests
WARDS = (
    ("1", "Northwest", 39.9550, -75.2500, 40.0200, -75.1700),
    ("2", "North Central", 39.9550, -75.1700, 40.0200, -75.1500),
    ("3", "Northeast", 39.9550, -75.1500, 40.0200, -75.0800),
    ("4", "Southwest", 39.8900, -75.2500, 39.9550, -75.1700),
    ("5", "Center City", 39.8900, -75.1700, 39.9550, -75.1500),
    ("6", "Southeast", 39.8900, -75.1500, 39.9550, -75.0800),
)


def ward_features() -> dict[str, Any]:
    """The wards as a GeoJSON FeatureCollection (outer rings counter-clockwise, closed)."""
    features = []
    for code, name, south, west, north, east in WARDS:
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append({"type": "Feature", "properties": {"WARD": code, "WARD_NAME": name},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


async def load_wards(client: httpx.AsyncClient, base: str, admin_key: str) -> str:
    """The ward layer, unless the city already has one (a second run of the loader changes nothing)."""
    headers = {"X-API-Key": admin_key}
    if (await client.get(f"{base}/admin/areas/ward", headers=headers)).status_code == 200:
        return "wards: loaded already"
    r = await client.post(f"{base}/admin/areas/ward", headers=headers, json={
        "code_property": "WARD", "name_property": "WARD_NAME", "name": "Wards", "source": "the demo city",
        "effective_from": "2000-01-01", "features": ward_features()})
    if r.status_code != 201:
        raise RuntimeError(f"the demo wards were refused: {r.text}")
    return f"wards: {r.json()['area_count']} loaded"
