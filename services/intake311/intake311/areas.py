"""Boundary layers as rules (issue 21), without I/O: reading a GeoJSON FeatureCollection into areas
with a report that names every bad feature, and finding the area of a point.

A layer (``ward``, ``council_district``...) is a set of areas that cover the city; each load of its
boundaries is a version, in force from its ``effective_from`` until a later version starts. The
point-in-polygon is shapely 2's (GEOS): an STRtree over a version's areas, queried with a batch of
points at once.

The border rule: a point belongs to an area when the area *covers* it, boundary included, so a
point on a ward's edge is in that ward. A point on the border of two areas of a layer (or where
areas overlap) is in the one whose code sorts first (as text: "10" before "9"), so the answer is
the same every time. A point in a hole is not in the holed area.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

LAYER_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # also an XML element name (the Open311 answer)
MAX_FEATURES = 10_000
MAX_CODE, MAX_NAME = 100, 200
LAYER_RULE = "a layer code is 1-40 lower-case letters, digits and _, starting with a letter"


@dataclass(frozen=True)
class Extent:
    """Where the city can be: min_long, min_lat, max_long, max_lat (WGS84). A boundary or an address
    outside it is refused; its main use is to catch [lat, long] written where GeoJSON wants [long, lat]."""

    min_long: float
    min_lat: float
    max_long: float
    max_lat: float

    @classmethod
    def parse(cls, text: str | None) -> Extent | None:
        if not text:
            return None
        parts = [float(p) for p in text.split(",")]
        if len(parts) != 4 or not (-180 <= parts[0] < parts[2] <= 180 and -90 <= parts[1] < parts[3] <= 90):
            raise ValueError("the city's extent is min_long,min_lat,max_long,max_lat in WGS84 degrees")
        return cls(*parts)

    def contains(self, long: float, lat: float) -> bool:
        return self.min_long <= long <= self.max_long and self.min_lat <= lat <= self.max_lat


def position_problem(long: float, lat: float, extent: Extent | None) -> str | None:
    """Why a [long, lat] position cannot be in the city, or None."""
    if not (-180 <= long <= 180 and -90 <= lat <= 90):
        swapped = " (latitude and longitude swapped?)" if -180 <= lat <= 180 and -90 <= long <= 90 else ""
        return f"[{long}, {lat}] is outside WGS84 (longitude -180..180, latitude -90..90){swapped}"
    if extent is not None and not extent.contains(long, lat):
        if extent.contains(lat, long):
            return (f"[{long}, {lat}] is outside the city but [{lat}, {long}] is inside: latitude and longitude "
                    "are swapped (GeoJSON positions are [longitude, latitude])")
        return (f"[{long}, {lat}] is outside the city's extent ({extent.min_long},{extent.min_lat},"
                f"{extent.max_long},{extent.max_lat})")
    return None


# --- reading a layer file --------------------------------------------------------------------


@dataclass
class ParsedArea:
    code: str
    name: str
    geometry: Polygon | MultiPolygon
    geojson: str  # what is stored: the geometry as loaded, rings oriented as RFC 7946 says


@dataclass
class LayerReport:
    """A layer file's areas, and every problem found: ``errors`` refuse the file, ``warnings`` do not."""

    areas: list[ParsedArea] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, kind: str, feature: int | None, code: str | None, text: str) -> None:
        (self.errors if kind == "error" else self.warnings).append({"feature": feature, "code": code, "problem": text})


def _ring(raw: Any, where: str, extent: Extent | None, report: LayerReport, feature: int, code: str | None) -> list[tuple[float, float]] | None:
    if not isinstance(raw, list) or not raw:
        report.problem("error", feature, code, f"{where} is not a list of positions")
        return None
    points: list[tuple[float, float]] = []
    for pos in raw:
        if (not isinstance(pos, list) or len(pos) not in (2, 3)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pos)):
            report.problem("error", feature, code, f"{where} has a position that is not [longitude, latitude]: {str(pos)[:60]}")
            return None
        points.append((float(pos[0]), float(pos[1])))
    for long, lat in points:
        problem = position_problem(long, lat, extent)
        if problem:
            report.problem("error", feature, code, f"{where}: {problem}")
            return None
    if len(points) < 4:
        report.problem("error", feature, code, f"{where} has {len(points)} positions: a ring needs at least 4")
        return None
    if points[0] != points[-1]:
        report.problem("error", feature, code, f"{where} is not closed: it ends at {list(points[-1])}, "
                                               f"not at its first position {list(points[0])}")
        return None
    return points


def _polygon(raw: Any, where: str, extent: Extent | None, report: LayerReport, feature: int, code: str | None) -> Polygon | None:
    if not isinstance(raw, list) or not raw:
        report.problem("error", feature, code, f"{where} has no rings")
        return None
    rings = [_ring(r, f"{where} ring {i + 1}" + (" (outer)" if i == 0 else " (hole)"), extent, report, feature, code)
             for i, r in enumerate(raw)]
    if any(r is None for r in rings):
        return None
    shell, *holes = rings
    poly = Polygon(shell, holes)
    wrong = [i for i, ring in enumerate([poly.exterior, *poly.interiors]) if ring.is_ccw != (i == 0)]
    if wrong:
        which = ", ".join("ring 1 (outer) is clockwise" if i == 0 else f"ring {i + 1} (hole) is counterclockwise"
                          for i in wrong)
        report.problem("warning", feature, code, f"{where}: {which}; RFC 7946 wants outer rings counterclockwise "
                                                 "and holes clockwise (oriented on load)")
    return poly


def _geometry(geom: Any, extent: Extent | None, report: LayerReport, feature: int, code: str | None) -> Polygon | MultiPolygon | None:
    if not isinstance(geom, Mapping) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geom.get("type") if isinstance(geom, Mapping) else type(geom).__name__
        report.problem("error", feature, code, f"geometry is {kind!r}: an area is a Polygon or a MultiPolygon")
        return None
    coords = geom.get("coordinates")
    if geom["type"] == "Polygon":
        return _polygon(coords, "polygon", extent, report, feature, code)
    if not isinstance(coords, list) or not coords:
        report.problem("error", feature, code, "the MultiPolygon has no polygons")
        return None
    parts = [_polygon(p, f"polygon {i + 1}", extent, report, feature, code) for i, p in enumerate(coords)]
    if any(p is None for p in parts):
        return None
    return MultiPolygon(parts)  # type: ignore[arg-type]


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))  # a numeric code (ward 12) is the text "12"
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def read_layer(doc: Any, *, code_property: str, name_property: str, extent: Extent | None = None) -> LayerReport:
    """The areas of a GeoJSON FeatureCollection (WGS84), with every problem named by feature (its
    position in the file, from 1) and code. Rings must be closed and simple (no self-intersection),
    within WGS84 and the city's ``extent``; a clockwise outer ring is a warning and is oriented."""
    report = LayerReport()
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        report.problem("error", None, None, "the file is not a GeoJSON FeatureCollection (type and features)")
        return report
    features = doc["features"]
    if not features:
        report.problem("error", None, None, "the FeatureCollection has no features")
    if len(features) > MAX_FEATURES:
        report.problem("error", None, None, f"{len(features)} features: a layer holds at most {MAX_FEATURES}")
        return report
    crs = doc.get("crs")
    if isinstance(crs, Mapping) and "CRS84" not in str(crs) and "4326" not in str(crs):
        report.problem("error", None, None, f"the file declares the coordinate system {str(crs)[:100]}: "
                                            "boundaries are WGS84 longitude/latitude (RFC 7946)")
        return report
    seen: dict[str, int] = {}
    for n, feature in enumerate(features, start=1):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            report.problem("error", n, None, "not a GeoJSON Feature")
            continue
        raw_props = feature.get("properties")
        props: Mapping[str, Any] = raw_props if isinstance(raw_props, Mapping) else {}
        code, name = _text(props.get(code_property)), _text(props.get(name_property))
        if code is None:
            report.problem("error", n, None, f"no code: property {code_property!r} is missing or empty")
        elif len(code) > MAX_CODE:
            report.problem("error", n, code[:20], f"the code is longer than {MAX_CODE} characters")
            code = None
        elif code in seen:
            report.problem("error", n, code, f"code {code!r} is also feature {seen[code]}'s: one feature per area "
                                             "(a MultiPolygon for an area in several parts)")
            code = None
        else:
            seen[code] = n
        if name is None:
            report.problem("error", n, code, f"no name: property {name_property!r} is missing or empty")
        geom = _geometry(feature.get("geometry"), extent, report, n, code)
        if geom is None:
            continue
        if not shapely.is_valid(geom):
            report.problem("error", n, code, f"invalid geometry: {shapely.is_valid_reason(geom)} "
                                             "(a ring crosses itself or another ring)")
            continue
        if code is not None and name is not None:
            oriented = shapely.orient_polygons(geom, exterior_cw=False)
            report.areas.append(ParsedArea(code=code, name=name[:MAX_NAME], geometry=oriented,
                                           geojson=shapely.to_geojson(oriented)))
    if not report.errors:
        _overlaps(report)
    return report


def _overlaps(report: LayerReport) -> None:
    """A warning for each pair of areas whose insides overlap (shared borders are expected)."""
    geoms = np.array([a.geometry for a in report.areas], dtype=object)
    if len(geoms) < 2:
        return
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    shared = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    smaller = np.minimum(shapely.area(geoms[left]), shapely.area(geoms[right]))
    for i, j in zip(left[shared > smaller * 1e-6], right[shared > smaller * 1e-6], strict=True):
        a, b = sorted((report.areas[i].code, report.areas[j].code))
        report.problem("warning", None, a, f"areas {a!r} and {b!r} overlap: a point in both is in {a!r} "
                                           "(the code that sorts first)")


# --- finding areas ----------------------------------------------------------------------------


class VersionIndex:
    """One layer version's areas in an STRtree, built once; ``codes_at`` answers a batch of points."""

    def __init__(self, version_id: int, areas: Sequence[tuple[str, str]]):
        """``areas``: (code, GeoJSON geometry text) pairs."""
        ordered = sorted(areas)  # tree index order = code order: the first hit is the border rule's
        self.version_id = version_id
        self.codes = [c for c, _ in ordered]
        self.geometries = shapely.from_geojson([g for _, g in ordered]) if ordered else np.array([], dtype=object)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)

    def codes_at(self, longs: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        """The area code of each point (None: outside every area of the layer)."""
        if not len(longs) or not self.codes:
            return [None] * len(longs)
        return self.codes_of(shapely.points(np.asarray(longs, dtype=float), np.asarray(lats, dtype=float)))

    def codes_of(self, points: np.ndarray) -> list[str | None]:
        """``codes_at`` for an array of shapely points (made once for several layers)."""
        out: list[str | None] = [None] * len(points)
        if not len(points) or not self.codes:
            return out
        point_i, area_i = self.tree.query(points)  # bounding boxes only: then the prepared areas decide
        hit = shapely.intersects(self.geometries[area_i], points[point_i])  # boundary included
        best: dict[int, int] = {}
        for p, a in zip(point_i[hit].tolist(), area_i[hit].tolist(), strict=True):
            if p not in best or a < best[p]:
                best[p] = a
        for p, a in best.items():
            out[p] = self.codes[a]
        return out


class LayersIndex:
    """Several layers' versions (one per layer: those in force) in one STRtree, so that a batch of
    points costs one query whatever the number of layers (a query's fixed cost, not the polygons,
    is most of the time for the small batches of an intake under moderate load)."""

    def __init__(self, versions: Sequence[tuple[str, VersionIndex]]):
        """``versions``: (layer, its version's index) pairs."""
        self.layers = [layer for layer, _ in versions]
        self.version_ids = [v.version_id for _, v in versions]
        # a version's areas in code order, layers one after another: the first hit of a layer is the border rule's
        self.layer_of = np.concatenate([np.full(len(v.codes), i) for i, (_, v) in enumerate(versions)]
                                       or [np.array([], dtype=int)]).astype(int)
        self.codes = [c for _, v in versions for c in v.codes]
        geoms = [v.geometries for _, v in versions]
        self.geometries = np.concatenate(geoms) if geoms else np.array([], dtype=object)
        self.tree = shapely.STRtree(self.geometries)

    def codes_at(self, longs: Sequence[float], lats: Sequence[float]) -> list[dict[str, tuple[int, str | None]]]:
        """For each point, every layer's (version id, area code or None: outside)."""
        outside: dict[str, tuple[int, str | None]] = {
            layer: (vid, None) for layer, vid in zip(self.layers, self.version_ids, strict=True)}
        out = [dict(outside) for _ in range(len(longs))]
        if not len(longs) or not self.codes:
            return out
        points = shapely.points(np.asarray(longs, dtype=float), np.asarray(lats, dtype=float))
        point_i, area_i = self.tree.query(points)  # bounding boxes only: then the prepared areas decide
        hit = shapely.intersects(self.geometries[area_i], points[point_i])  # boundary included
        best: dict[tuple[int, int], int] = {}
        for p, a, layer in zip(point_i[hit].tolist(), area_i[hit].tolist(), self.layer_of[area_i[hit]].tolist(),
                               strict=True):
            if best.get((p, layer), a) >= a:
                best[(p, layer)] = a
        for (p, layer), a in best.items():
            out[p][self.layers[layer]] = (self.version_ids[layer], self.codes[a])
        return out


@dataclass(frozen=True)
class VersionInfo:
    id: int
    layer: str
    version: int
    effective_from: datetime


def in_force(versions: Sequence[VersionInfo], at: datetime) -> VersionInfo | None:
    """The version of one layer in force at ``at``: the latest to start on or before it (of two
    with the same start, the later load)."""
    best: VersionInfo | None = None
    for v in versions:
        if v.effective_from <= at and (best is None or (v.effective_from, v.version) > (best.effective_from, best.version)):
            best = v
    return best


# --- the area filter of GET /requests ---------------------------------------------------------


def parse_area_filter(values: Sequence[str], known: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``area=LAYER:CODE`` values (repeated, or comma lists): codes by layer, and the problems. Codes
    of one layer are alternatives; layers are all required (ward 12 within council district 3)."""
    wanted: dict[str, list[str]] = {}
    errors: list[str] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            layer, sep, code = item.partition(":")
            layer, code = layer.strip(), code.strip()
            if not sep or not layer or not code:
                errors.append(f"area must be LAYER:CODE (e.g. ward:12), got {item[:60]!r}")
            elif layer not in known:
                have = ", ".join(sorted(known)) or "none loaded"
                errors.append(f"area: no layer {layer[:40]!r} (layers: {have})")
            elif len(code) > MAX_CODE:
                errors.append(f"area: a code is at most {MAX_CODE} characters")
            elif code not in wanted.setdefault(layer, []):
                wanted[layer].append(code)
    return wanted, errors
