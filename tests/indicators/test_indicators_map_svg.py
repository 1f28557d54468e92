"""The area map's drawing (issue 21, Stat by area), pure: the projection keeps the city's proportions
and fits the drawing, every ring of every polygon is drawn (holes by the even-odd rule), a
MultiPolygon is one area, labels sit inside their area, and what is not an area is left out."""

import math
import re

from indicators.map_svg import Shade, fit, geometry_path, inside, label_point, map_svg, polygons, ring_path


def square(x, y, size=1.0):
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def feature(code, geometry, name=None):
    return {"type": "Feature", "properties": {"code": code, "name": name or f"Ward {code}"}, "geometry": geometry}


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def points(d):
    """The drawing's subpaths, each a list of (x, y)."""
    return [[tuple(map(float, p.split())) for p in sub.strip(" Z").split(" L")]
            for sub in d.split("M")[1:]]


def test_two_squares_fill_the_drawing_side_by_side_at_the_equator():
    fc = collection(feature("1", {"type": "Polygon", "coordinates": [square(0, 0)]}),
                    feature("2", {"type": "Polygon", "coordinates": [square(1, 0)]}))
    project = fit(fc["features"], 220, 120, pad=10)
    assert project is not None
    (a,) = points(geometry_path(fc["features"][0]["geometry"], project))
    (b,) = points(geometry_path(fc["features"][1]["geometry"], project))
    # 2 degrees wide, 1 high: the height (100 px inside the padding) decides the scale
    xs = [x for x, _ in a + b]
    ys = [y for _, y in a + b]
    assert min(ys) == 10.0 and max(ys) == 110.0
    assert abs((max(xs) - min(xs)) - 200 * math.cos(math.radians(0.5))) < 0.2
    assert abs((min(xs) - 10) - (210 - max(xs))) < 0.2  # centred
    # north is up: the square's first corner (south-west) is at the bottom left
    assert a[0] == (min(xs), 110.0)
    # the shared edge is drawn at the same place for both
    assert {x for x, _ in a} & {x for x, _ in b}
    assert len(a) == 4  # the closing position of the ring is not repeated


def test_a_square_far_north_is_drawn_taller_than_wide_as_on_the_ground():
    """At 60 degrees north a degree of longitude is half a degree of latitude on the ground."""
    fc = collection(feature("N", {"type": "Polygon", "coordinates": [square(10, 59.5)]}))
    project = fit(fc["features"], 400, 400, pad=0)
    (ring,) = points(geometry_path(fc["features"][0]["geometry"], project))
    width = max(x for x, _ in ring) - min(x for x, _ in ring)
    height = max(y for _, y in ring) - min(y for _, y in ring)
    assert height == 400
    assert abs(width / height - math.cos(math.radians(60))) < 0.01


def test_a_polygon_with_a_hole_draws_both_rings_and_the_hole_shows_through():
    outer = square(0, 0, 4)
    hole = [[1, 1], [1, 3], [3, 3], [3, 1], [1, 1]]
    fc = collection(feature("H", {"type": "Polygon", "coordinates": [outer, hole]}))
    svg = map_svg(fc, {"H": Shade(fill="#1e7b34", label="\u25cf", title="GREEN, 80.0%", ink="#fff")},
                  title="Wards", desc="one ward with a park in it")
    d = re.search(r'<path d="([^"]+)"[^>]*fill="#1e7b34"[^>]*fill-rule="evenodd"', svg)
    assert d is not None
    rings = points(d.group(1))
    assert len(rings) == 2
    outer_box = (min(x for x, _ in rings[0]), max(x for x, _ in rings[0]))
    assert all(outer_box[0] < x < outer_box[1] for x, _ in rings[1])  # the hole lies inside
    assert "<title>Ward H: GREEN, 80.0%</title>" in svg


def test_a_multipolygon_is_one_area_with_every_part_drawn_and_the_label_in_the_largest():
    island = square(5, 0, 0.5)
    mainland = square(0, 0, 2)
    fc = collection(feature("M", {"type": "MultiPolygon", "coordinates": [[island], [mainland]]}))
    assert len(polygons(fc["features"][0]["geometry"])) == 2
    svg = map_svg(fc, {"M": Shade(fill="#b3261e", label="\u25b2", title="RED", ink="#fff")}, title="t", desc="d",
                  width=600, height=300)
    assert svg.count("<path ") == 1 and svg.count("<title>Ward M") == 1
    (d,) = re.findall(r'<path d="([^"]+)"', svg)
    parts = points(d)
    assert len(parts) == 2
    assert max(x for p in parts for x, _ in p) <= 600 - 10 and min(x for p in parts for x, _ in p) >= 10
    lon, lat = label_point(fc["features"][0]["geometry"])
    assert (round(lon, 9), round(lat, 9)) == (1.0, 1.0)  # the centre of the mainland, not between the parts
    assert re.search(r'<text [^>]*fill="#fff"[^>]*>\u25b2 M</text>', svg)


def test_areas_without_a_figure_are_white_and_the_chosen_area_is_drawn_last_with_a_heavy_outline():
    fc = collection(*(feature(c, {"type": "Polygon", "coordinates": [square(i, 0)]}) for i, c in enumerate("ABC")))
    svg = map_svg(fc, {"A": Shade(fill="#b3261e", label="\u25b2", title="RED", chosen=True),
                       "C": Shade(fill="#1e7b34", label="\u25cf", title="GREEN")}, title="t", desc="d")
    order = re.findall(r'data-code="(\w)"', svg)
    assert order == ["B", "C", "A"]
    assert re.search(r'<path [^>]*fill="#ffffff"[^>]*data-code="B"><title>Ward B: no figure</title>', svg)
    assert re.search(r'stroke="#000" stroke-width="5" data-code="A"', svg)


def test_names_are_escaped_and_the_image_is_named_for_screen_readers():
    fc = collection(feature("1", {"type": "Polygon", "coordinates": [square(0, 0)]}, name="North <& East>"))
    svg = map_svg(fc, {}, title="Wards by backlog", desc="3 areas", id_prefix="m1")
    assert "North &lt;&amp; East&gt;" in svg and "<& East>" not in svg
    assert 'role="img" aria-labelledby="m1-title m1-desc"' in svg
    assert '<title id="m1-title">Wards by backlog</title>' in svg


def test_what_is_not_an_area_is_left_out_and_nothing_to_draw_says_so():
    fc = collection(feature("P", {"type": "Point", "coordinates": [0, 0]}), feature("N", None))
    svg = map_svg(fc, {}, title="t", desc="d")
    assert "<path" not in svg and "No boundaries to draw" in svg
    assert ring_path([[0, 0], [1, 1], [0, 0]], fit([feature("x", {"type": "Polygon",
                                                                   "coordinates": [square(0, 0)]})], 10, 10)) == ""


def test_a_label_never_sits_in_a_hole_or_outside_a_crescent():
    holed = {"type": "Polygon", "coordinates": [square(0, 0, 4), [[1, 1], [1, 3], [3, 3], [3, 1], [1, 1]]]}
    lon, lat = label_point(holed)
    assert inside(lon, lat, holed["coordinates"])
    assert not (1 <= lon <= 3 and 1 <= lat <= 3)
    # a U shape: its centroid falls in the gap between the arms
    u = {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3], [0, 0]]]}
    lon, lat = label_point(u)
    assert inside(lon, lat, u["coordinates"]) and not (1 < lon < 2 and lat > 1)
    assert label_point({"type": "Polygon", "coordinates": [square(0, 0, 2)]}) == (1.0, 1.0)
