"""Boundary layers and address points as rules (issue 21): the geometry report, the point-in-polygon
with holes, MultiPolygons and borders, versions in force, the area filter, address placement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from geo_helpers import EXTENT, POINTS, collection, districts, feature, polygon, square, wards

from intake311 import addresses
from intake311.areas import Extent, VersionIndex, VersionInfo, in_force, parse_area_filter, read_layer

CITY = Extent.parse(EXTENT)


def _index(doc, code="WARD", name="WARD_NAME") -> VersionIndex:
    report = read_layer(doc, code_property=code, name_property=name, extent=CITY)
    assert report.errors == []
    return VersionIndex(1, [(a.code, a.geojson) for a in report.areas])


def test_points_in_squares_holes_multipolygons_and_on_borders():
    ward, district = _index(wards()), _index(districts(), "id", "label")
    lats = [p[0][0] for p in POINTS.values()]
    longs = [p[0][1] for p in POINTS.values()]
    got = list(zip(ward.codes_at(longs, lats), district.codes_at(longs, lats), strict=True))
    assert got == [expected for _, expected in POINTS.values()], list(POINTS)


def test_the_border_rule_does_not_depend_on_file_order():
    doc = wards()
    doc["features"].reverse()
    assert _index(doc).codes_at([-75.15], [39.92]) == ["W1"]


def test_a_valid_layer_has_no_problems_and_numeric_codes_are_text():
    report = read_layer(districts(), code_property="id", name_property="label", extent=CITY)
    assert (report.errors, report.warnings) == ([], [])
    assert sorted(a.code for a in report.areas) == ["1", "2"]


def _problems(doc, **kw):
    report = read_layer(doc, code_property="WARD", name_property="WARD_NAME", extent=kw.pop("extent", CITY))
    return report


@pytest.mark.parametrize(("ring", "words"), [
    ([[-75.20, 39.90], [-75.15, 39.90], [-75.15, 39.95], [-75.20, 39.95]], "not closed"),
    ([[-75.20, 39.90], [-75.15, 39.95], [-75.15, 39.90], [-75.20, 39.95], [-75.20, 39.90]], "Self-intersection"),
    ([[39.90, -75.20], [39.90, -75.15], [39.95, -75.15], [39.95, -75.20], [39.90, -75.20]], "swapped"),
    ([[-75.20, 39.90], [-75.15, 39.90], [-75.20, 39.90]], "at least 4"),
    ([[-75.20, 39.90], [-75.15, "39.9"], [-75.15, 39.95], [-75.20, 39.90]], "not [longitude, latitude]"),
    ([[-200, 39.90], [-75.15, 39.90], [-75.15, 39.95], [-200, 39.90]], "outside WGS84"),
])
def test_bad_geometry_is_an_error_naming_the_feature(ring, words):
    doc = collection(feature({"WARD": "W1", "WARD_NAME": "First"}, polygon(square(-75.3, 39.7, -75.25, 39.75))),
                     feature({"WARD": "W9", "WARD_NAME": "Bad"}, polygon(ring)))
    report = _problems(doc)
    assert len(report.errors) == 1, report.errors
    assert report.errors[0]["feature"] == 2 and report.errors[0]["code"] == "W9"
    assert words in report.errors[0]["problem"], report.errors[0]


def test_swapped_coordinates_are_caught_by_the_city_extent_even_within_wgs84():
    # [lat, long] of the demo city is a valid WGS84 [long, lat] (in Antarctica): only the extent catches it
    ring = [[39.90, -75.20], [39.95, -75.20], [39.95, -75.15], [39.90, -75.15], [39.90, -75.20]]
    doc = collection(feature({"WARD": "W1", "WARD_NAME": "First"}, polygon(ring)))
    assert _problems(doc, extent=None).errors == []
    (error,) = _problems(doc).errors
    assert "swapped" in error["problem"] and error["code"] == "W1"


def test_clockwise_rings_are_a_warning_and_are_oriented():
    doc = collection(feature({"WARD": "W1", "WARD_NAME": "First"}, polygon(square(-75.20, 39.90, -75.15, 39.95)[::-1])))
    report = _problems(doc)
    assert report.errors == []
    assert "clockwise" in report.warnings[0]["problem"] and report.warnings[0]["feature"] == 1
    assert '"coordinates":[[[-75.2,39.9],[-75.15,39.9]' in report.areas[0].geojson  # counterclockwise now


def test_codes_names_duplicates_and_geometry_types_are_checked():
    doc = collection(
        feature({"WARD": "W1", "WARD_NAME": "First"}, polygon(square(-75.20, 39.90, -75.15, 39.95))),
        feature({"WARD": "W1", "WARD_NAME": "Again"}, polygon(square(-75.15, 39.90, -75.10, 39.95))),
        feature({"WARD_NAME": "No code"}, polygon(square(-75.15, 39.90, -75.10, 39.95))),
        feature({"WARD": "W4"}, polygon(square(-75.15, 39.90, -75.10, 39.95))),
        feature({"WARD": "W5", "WARD_NAME": "A point"}, {"type": "Point", "coordinates": [-75.1, 39.9]}),
    )
    errors = _problems(doc).errors
    assert [e["feature"] for e in errors] == [2, 3, 4, 5]
    assert "also feature 1" in errors[0]["problem"]
    assert "'WARD' is missing" in errors[1]["problem"]
    assert "'WARD_NAME' is missing" in errors[2]["problem"]
    assert "Polygon or a MultiPolygon" in errors[3]["problem"]
    assert _problems({"type": "Feature"}).errors[0]["feature"] is None
    assert "no features" in _problems(collection()).errors[0]["problem"]


def test_overlapping_areas_are_a_warning_naming_both():
    doc = collection(
        feature({"WARD": "B", "WARD_NAME": "b"}, polygon(square(-75.20, 39.90, -75.14, 39.95))),
        feature({"WARD": "A", "WARD_NAME": "a"}, polygon(square(-75.15, 39.90, -75.10, 39.95))),
    )
    report = _problems(doc)
    assert report.errors == [] and len(report.warnings) == 1
    assert "'A' and 'B' overlap" in report.warnings[0]["problem"]
    assert VersionIndex(1, [(a.code, a.geojson) for a in report.areas]).codes_at([-75.145], [39.92]) == ["A"]
    assert _problems(wards()).warnings == []  # shared borders are not overlaps


def test_the_version_in_force_is_the_latest_started():
    v = [VersionInfo(1, "ward", 1, datetime(2024, 1, 1, tzinfo=UTC)), VersionInfo(2, "ward", 2, datetime(2026, 1, 1, tzinfo=UTC)),
         VersionInfo(3, "ward", 3, datetime(2026, 1, 1, tzinfo=UTC))]
    assert in_force(v, datetime(2023, 6, 1, tzinfo=UTC)) is None
    assert in_force(v, datetime(2025, 6, 1, tzinfo=UTC)).id == 1
    assert in_force(v, datetime(2026, 1, 1, tzinfo=UTC)).id == 3  # same start: the later load


def test_the_area_filter():
    wanted, errors = parse_area_filter(["ward:12", "ward:13,district:3", "ward:12"], {"ward", "district"})
    assert (wanted, errors) == ({"ward": ["12", "13"], "district": ["3"]}, [])
    _, errors = parse_area_filter(["ward", "precinct:4", "ward:"], {"ward"})
    assert len(errors) == 3 and "no layer 'precinct' (layers: ward)" in errors[1]


def test_address_list_rows_and_their_problems():
    text = ("address_id,address,lat,long,extra\n"
            "A1,1400 John F. Kennedy Boulevard,39.9526,-75.1652,x\n"
            "A2,,39.95,-75.16,\n"
            "A1,again,39.95,-75.16,\n"
            "A3,1 Market Street,-75.16,39.95,\n"
            "A4,2 Market Street,north,-75.16,\n")
    report = addresses.read_addresses(text, extent=CITY, now=None)
    assert [r["address_id"] for r in report.rows] == ["A1"]
    assert report.rows[0]["address_key"] == "1400 john f kennedy blvd"
    assert [(e["row"], e["address_id"]) for e in report.errors] == [(3, "A2"), (4, "A1"), (5, "A3"), (6, "A4")]
    assert "swapped" in report.errors[2]["problem"]
    assert "header lacks lat" in addresses.read_addresses("address_id,address,long\n", extent=None, now=None).errors[0]["problem"]


def test_placing_an_address_never_guesses():
    by_id = {"A1": (39.95, -75.16)}
    by_key = {"1 market st": [("A7", 39.951, -75.15)], "2 market st": [("A8", 39.9, -75.1), ("A9", 39.91, -75.11)]}
    def at(p):
        return (p.lat, p.long)

    assert at(addresses.place("A1", "anything", by_id, by_key)) == (39.95, -75.16)
    assert at(addresses.place(None, "1 Market Street", by_id, by_key)) == (39.951, -75.15)
    ambiguous = addresses.place(None, "2 market st.", by_id, by_key)
    assert ambiguous.lat is None and "matches 2 addresses" in ambiguous.note and "A8, A9" in ambiguous.note
    unknown = addresses.place("Z9", "3 Market Street", by_id, by_key)
    assert unknown.lat is None and "not in the city's address list" in unknown.note


def test_layers_in_one_tree_answer_as_each_layer_alone():
    from intake311.areas import LayersIndex

    ward, district = _index(wards()), _index(districts(), "id", "label")
    both = LayersIndex([("ward", ward), ("district", district)])
    lats = [p[0][0] for p in POINTS.values()]
    longs = [p[0][1] for p in POINTS.values()]
    got = both.codes_at(longs, lats)
    assert [(t["ward"][1], t["district"][1]) for t in got] == [expected for _, expected in POINTS.values()]
    assert all(t["ward"][0] == ward.version_id and t["district"][0] == district.version_id for t in got)
    assert LayersIndex([]).codes_at([1.0], [2.0]) == [{}]
