"""Polygons the geography tests make themselves (issue 21), around the demo city (39.95 N, 75.15 W).

ward (two squares side by side, a square with a hole above them):
    W1 = long -75.20..-75.15, lat 39.90..39.95      W2 = long -75.15..-75.10, lat 39.90..39.95
    W3 = long -75.20..-75.10, lat 39.95..40.00, with a hole long -75.16..-75.14, lat 39.97..39.98
district (a MultiPolygon and a square):
    D1 = long -75.20..-75.15, lat 39.90..40.00 plus long -75.05..-75.00, lat 39.90..39.95
    D2 = long -75.15..-75.10, lat 39.90..40.00
"""

from __future__ import annotations

from typing import Any

EXTENT = "-75.5,39.6,-74.8,40.3"


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A counterclockwise closed ring (RFC 7946's outer ring)."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def feature(props: dict[str, Any], geometry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def wards() -> dict[str, Any]:
    hole = square(-75.16, 39.97, -75.14, 39.98)[::-1]  # clockwise, as a hole should be
    return collection(
        feature({"WARD": "W1", "WARD_NAME": "First"}, polygon(square(-75.20, 39.90, -75.15, 39.95))),
        feature({"WARD": "W2", "WARD_NAME": "Second"}, polygon(square(-75.15, 39.90, -75.10, 39.95))),
        feature({"WARD": "W3", "WARD_NAME": "Third"}, polygon(square(-75.20, 39.95, -75.10, 40.00), hole)),
    )


def districts() -> dict[str, Any]:
    multi = {"type": "MultiPolygon", "coordinates": [[square(-75.20, 39.90, -75.15, 40.00)],
                                                      [square(-75.05, 39.90, -75.00, 39.95)]]}
    return collection(
        feature({"id": 1, "label": "District One"}, multi),
        feature({"id": 2, "label": "District Two"}, polygon(square(-75.15, 39.90, -75.10, 40.00))),
    )


# (lat, long) -> expected (ward, district); None: outside every area of that layer
POINTS = {
    "inside W1 and D1": ((39.92, -75.17), ("W1", "1")),
    "on the W1/W2 and D1/D2 border": ((39.92, -75.15), ("W1", "1")),
    "in W3's hole, in D2": ((39.975, -75.145), (None, "2")),
    "in D1's second part, no ward": ((39.92, -75.02), (None, "1")),
    "outside everything": ((39.70, -75.40), (None, None)),
}
