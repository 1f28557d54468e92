"""A map of a city's areas drawn as inline SVG from the layer's own GeoJSON (issue 21, Stat by area):
no tiles, no outside network, no JavaScript. Pure: GeoJSON in, SVG text out.

Projection: equirectangular about the layer's middle latitude (x = longitude x cos(latitude0),
y = -latitude), scaled to fit the drawing with its proportions kept. Over a city (tens of km) that
is within a fraction of a percent of a conformal projection, and it needs no library. Each area is
one ``<path>`` holding every ring of every polygon (outer rings and holes), filled with the
even-odd rule, so a hole shows through and a MultiPolygon's parts share one colour and one title.
Colour is never the only sign: each area carries its label (the status symbol and the area's code)
and a ``<title>``, and the page puts a table beside the map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

Position = Sequence[float]
Ring = Sequence[Position]


@dataclass(frozen=True)
class Shade:
    """How one area is painted: fill, the label's ink, its label and title, whether it is the chosen one."""

    fill: str
    label: str
    title: str
    ink: str = "#000"
    chosen: bool = False


@dataclass(frozen=True)
class Projection:
    """Longitude/latitude to drawing coordinates (y down), fitting the bounding box in the drawing."""

    lon0: float
    lat1: float  # the northernmost latitude: y = 0 there (plus the padding)
    kx: float  # cos(middle latitude): a degree of longitude is shorter than one of latitude
    scale: float
    dx: float
    dy: float

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        return (self.dx + (lon - self.lon0) * self.kx * self.scale, self.dy + (self.lat1 - lat) * self.scale)


def polygons(geometry: dict[str, Any] | None) -> list[list[Ring]]:
    """A Polygon or MultiPolygon as a list of polygons, each a list of rings (outer first); any
    other geometry, none."""
    if not geometry:
        return []
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return [list(coords)]
    if kind == "MultiPolygon":
        return [list(p) for p in coords]
    return []


def _positions(features: Iterable[dict[str, Any]]) -> Iterable[Position]:
    for f in features:
        for poly in polygons(f.get("geometry")):
            for ring in poly:
                yield from ring


def fit(features: Sequence[dict[str, Any]], width: float, height: float, pad: float = 10.0) -> Projection | None:
    """The projection drawing the features' bounding box as large as fits in width x height less the
    padding, centred; None when there is nothing to draw."""
    points = list(_positions(features))
    if not points:
        return None
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    w, h = (lon1 - lon0) * kx, lat1 - lat0
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    candidates = [s for s in (inner_w / w if w > 0 else None, inner_h / h if h > 0 else None) if s is not None]
    scale = min(candidates) if candidates else 1.0
    return Projection(lon0=lon0, lat1=lat1, kx=kx, scale=scale,
                      dx=pad + (inner_w - w * scale) / 2, dy=pad + (inner_h - h * scale) / 2)


def ring_path(ring: Ring, project: Projection) -> str:
    """One closed subpath ("M x y L ... Z"); the closing position repeated in GeoJSON is dropped."""
    pts = [project(p[0], p[1]) for p in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3:
        return ""
    return "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in pts) + " Z"


def geometry_path(geometry: dict[str, Any] | None, project: Projection) -> str:
    return " ".join(d for poly in polygons(geometry) for ring in poly if (d := ring_path(ring, project)))


def ring_area(ring: Ring) -> float:
    """Signed area (shoelace) in degree units: only compared with other rings of the same layer."""
    pts = list(ring)
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(pts, pts[1:] + pts[:1], strict=True)) / 2


def inside(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    """Even-odd rule over every ring (a point in a hole is outside): for placing a label only."""
    hit = False
    for ring in rings:
        for a, b in zip(ring, list(ring[1:]) + [ring[0]], strict=True):
            if (a[1] > lat) != (b[1] > lat) and lon < a[0] + (lat - a[1]) * (b[0] - a[0]) / (b[1] - a[1]):
                hit = not hit
    return hit


def _edge_distance(lon: float, lat: float, rings: Sequence[Ring]) -> float:
    best = math.inf
    for ring in rings:
        for a, b in zip(ring, list(ring[1:]) + [ring[0]], strict=True):
            dx, dy = b[0] - a[0], b[1] - a[1]
            t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((lon - a[0]) * dx + (lat - a[1]) * dy) / (dx * dx + dy * dy)))
            best = min(best, math.hypot(lon - a[0] - t * dx, lat - a[1] - t * dy))
    return best


def label_point(geometry: dict[str, Any] | None, grid: int = 24) -> tuple[float, float] | None:
    """Where an area's label goes (lon, lat), in its largest polygon: the centroid of the outer ring
    when it is inside the area, else (a hole there, a crescent) the point of a grid over the polygon
    farthest inside from its edges."""
    polys = [poly for poly in polygons(geometry) if poly and len(poly[0]) >= 3]
    if not polys:
        return None
    poly = max(polys, key=lambda p: abs(ring_area(list(p[0]))))
    ring = list(poly[0])
    a = ring_area(ring)
    if abs(a) < 1e-18:  # degenerate: the mean of its corners
        return (sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring))
    pairs = list(zip(ring, ring[1:] + ring[:1], strict=True))
    cx = sum((p[0] + q[0]) * (p[0] * q[1] - q[0] * p[1]) for p, q in pairs) / (6 * a)
    cy = sum((p[1] + q[1]) * (p[0] * q[1] - q[0] * p[1]) for p, q in pairs) / (6 * a)
    if inside(cx, cy, poly):
        return (cx, cy)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    candidates = [(min(lons) + (max(lons) - min(lons)) * (i + 0.5) / grid, min(lats) + (max(lats) - min(lats)) * (j + 0.5) / grid)
                  for i in range(grid) for j in range(grid)]
    inner = [c for c in candidates if inside(c[0], c[1], poly)]
    return max(inner, key=lambda c: _edge_distance(c[0], c[1], poly)) if inner else (cx, cy)


NO_FIGURE = Shade(fill="#ffffff", label="", title="no figure")


def map_svg(collection: dict[str, Any], shades: dict[str, Shade], *, title: str, desc: str,
            width: int = 640, height: int = 480, id_prefix: str = "map") -> str:
    """The layer's areas (features with ``properties.code``), each painted with its shade (an area
    without one: white, "no figure"). ``title`` and ``desc`` name the image for screen readers."""
    features = [f for f in collection.get("features") or [] if polygons(f.get("geometry"))]
    project = fit(features, width, height)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px" role="img" aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
             f'class="area-map">',
             f'<title id="{id_prefix}-title">{escape(title)}</title><desc id="{id_prefix}-desc">{escape(desc)}</desc>']
    if project is None:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="16">'
                     "No boundaries to draw</text></svg>")
        return "".join(parts)
    labels: list[str] = []
    chosen: list[str] = []
    for f in sorted(features, key=lambda f: str((f.get("properties") or {}).get("code", ""))):
        props = f.get("properties") or {}
        code = str(props.get("code", ""))
        shade = shades.get(code, NO_FIGURE)
        name = str(props.get("name") or code)
        d = geometry_path(f.get("geometry"), project)
        path = (f'<path d="{d}" fill="{escape(shade.fill)}" fill-rule="evenodd" stroke="#0b2545" stroke-width="1.5" '
                f'data-code="{escape(code)}"><title>{escape(name)}: {escape(shade.title)}</title></path>')
        (chosen if shade.chosen else parts).append(path)
        at = label_point(f.get("geometry"))
        if at is not None:
            x, y = project(*at)
            text = f"{shade.label} {code}".strip()
            labels.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="middle" '
                          f'font-size="14" font-weight="700" fill="{escape(shade.ink)}" stroke="{escape(shade.fill)}" '
                          f'stroke-width="3" paint-order="stroke">{escape(text)}</text>')
    for path in chosen:  # drawn last, with a heavy outline, so no neighbour covers its border
        parts.append(path.replace('stroke="#0b2545" stroke-width="1.5"', 'stroke="#000" stroke-width="5"', 1))
    parts.extend(labels)
    parts.append("</svg>")
    return "".join(parts)
