"""Routing by area and tagging as of a date (issue 21, items 4 and 2), as rules without I/O: which
department a rule by area gives a request, how the rules are checked against the layers, which
version of a layer tags a point of a given date, and the periods a re-tag walks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from geo_helpers import EXTENT, POINTS, wards
from pydantic import ValidationError

from citystat_common.errors import Invalid
from intake311.areas import Extent, VersionIndex, VersionInfo, in_force, read_layer
from intake311.areas_asof import needed_versions, ordered, tag_as_of
from intake311.areas_retag import periods
from intake311.ownership import check_rules, owner
from intake311.ownership_schemas import DepartmentRule

OWNER = ("STREETS", "Streets Department")
LOCATION = [{"code": "LOCATION", "datatype": "singlevaluelist",
             "values": [{"key": "park", "name": "In a park"}, {"key": "street", "name": "On a street"}]}]
BY_AREA = {"layer": "ward", "area": "W1", "department_code": "PARKS", "department_name": "Parks & Recreation"}
BY_VALUE = {"attribute": "LOCATION", "value": "street", "department_code": "WATER", "department_name": "Water"}


def test_a_rule_by_area_gives_a_request_in_that_area_to_its_department():
    assert owner(OWNER, [BY_AREA], {}, {"ward": "W1"}) == ("PARKS", "Parks & Recreation")
    assert owner(OWNER, [BY_AREA], {}, {"ward": "W2"}) == OWNER
    assert owner(OWNER, [BY_AREA], {}, {"ward": None}) == OWNER  # outside every ward
    assert owner(OWNER, [BY_AREA], {}, {"district": "W1"}) == OWNER  # the code in another layer
    assert owner(OWNER, [BY_AREA], {}, {}) == OWNER  # no position
    assert owner(OWNER, [BY_AREA], {}, None) == OWNER  # no layer loaded


def test_attribute_and_area_rules_apply_in_the_citys_order():
    attrs, areas = {"LOCATION": "street"}, {"ward": "W1"}
    assert owner(OWNER, [BY_AREA, BY_VALUE], attrs, areas)[0] == "PARKS"
    assert owner(OWNER, [BY_VALUE, BY_AREA], attrs, areas)[0] == "WATER"
    assert owner(OWNER, [BY_VALUE, BY_AREA], {"LOCATION": "park"}, areas)[0] == "PARKS"
    assert owner(OWNER, [BY_VALUE, BY_AREA], {"LOCATION": "park"}, {"ward": "W2"}) == OWNER


LAYERS = {"ward": {"W1": "First", "W2": "Second"}, "district": {"1": "One"}}


def _field_of(rules, areas=LAYERS) -> str:
    with pytest.raises(Invalid) as exc:
        check_rules(rules, LOCATION, areas)
    return exc.value.errors[0]["field"]


def test_a_rule_names_a_loaded_layer_and_one_of_its_areas():
    check_rules([BY_AREA, BY_VALUE, {**BY_AREA, "layer": "district", "area": "1"}], LOCATION, LAYERS)
    assert _field_of([BY_VALUE, {**BY_AREA, "layer": "precinct"}]) == "department_rules[1].layer"
    assert _field_of([{**BY_AREA, "area": "W9"}]) == "department_rules[0].area"
    assert _field_of([BY_AREA, {**BY_AREA, "department_code": "WATER"}]) == "department_rules[1]"  # never applies
    # a save that leaves the rules as they are does not check them against the layers again
    check_rules([{**BY_AREA, "area": "W9"}], LOCATION, None)
    assert _field_of([{**BY_VALUE, "value": "beach"}], None) == "department_rules[0]"


@pytest.mark.parametrize("body", [
    {"attribute": "LOCATION", "value": "park", "layer": "ward", "area": "W1"},  # both kinds
    {},  # neither
    {"layer": "ward"},  # half of one
    {"attribute": "LOCATION"},
    {"layer": "Ward 1", "area": "W1"},  # not a layer code
])
def test_a_rule_is_by_attribute_or_by_area(body):
    with pytest.raises(ValidationError):
        DepartmentRule(**{"department_code": "PARKS", **body})
    assert DepartmentRule(layer="ward", area=" W1 ", department_code="PARKS").area == "W1"


# --- tagging as of each point's date ------------------------------------------------------------------

JAN, APR, JUL = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 4, 7))


def _index(version_id: int, doc) -> VersionIndex:
    report = read_layer(doc, code_property="WARD", name_property="WARD_NAME", extent=Extent.parse(EXTENT))
    assert report.errors == []
    return VersionIndex(version_id, [(a.code, a.geojson) for a in report.areas])


def _renamed(code: str, new: str):
    doc = wards()
    for f in doc["features"]:
        if f["properties"]["WARD"] == code:
            f["properties"]["WARD"] = new
    return doc


def test_each_point_is_tagged_by_the_version_in_force_at_its_own_date():
    v1, v2 = VersionInfo(11, "ward", 1, JAN), VersionInfo(12, "ward", 2, APR)  # from April, W1 is W1-NEW
    indexes = {11: _index(11, wards()), 12: _index(12, _renamed("W1", "W1-NEW"))}
    layers = {"ward": ordered([v2, v1])}
    in_w1, in_hole = (39.92, -75.17), (39.975, -75.145)
    points = [in_w1, in_w1, in_w1, None, in_hole, in_w1]
    times = [JAN - timedelta(seconds=1), APR - timedelta(microseconds=1), APR, APR, JUL, JAN]
    assert needed_versions(layers, times) == {11, 12}
    assert tag_as_of(layers, indexes, points, times) == [
        {},  # before the layer's first version: no tag in it, as intake before a load
        {"ward": (11, "W1")}, {"ward": (12, "W1-NEW")},  # the start itself is the new version's
        {},  # no position
        {"ward": (12, None)},  # in W3's hole: outside every ward, tagged so
        {"ward": (11, "W1")},
    ]
    # the version picked is the one areas.in_force (intake's rule) picks for that time
    for tags, t in zip(tag_as_of(layers, indexes, points, times), times, strict=True):
        current = in_force([v1, v2], t)
        assert tags.get("ward", (None,))[0] == (current.id if current and tags else None)


def test_two_loads_with_the_same_start_the_later_wins_and_the_border_rule_holds():
    v1, v2 = VersionInfo(11, "ward", 1, JAN), VersionInfo(12, "ward", 2, JAN)
    indexes = {11: _index(11, wards()), 12: _index(12, _renamed("W2", "A2"))}
    layers = {"ward": ordered([v2, v1])}
    border = POINTS["on the W1/W2 and D1/D2 border"][0]
    # on the border of W1 and A2: A2 sorts first under version 2
    assert tag_as_of(layers, indexes, [border], [APR]) == [{"ward": (12, "A2")}]
    assert needed_versions(layers, [APR]) == {12} and in_force([v1, v2], APR) == v2


def test_a_retag_walks_each_versions_time_in_force_from_since():
    v1, v2, v3 = VersionInfo(1, "ward", 1, JAN), VersionInfo(2, "ward", 2, APR), VersionInfo(3, "ward", 3, APR)
    assert [(v.id, a, b) for v, a, b in periods([v3, v1, v2], None)] == [(1, JAN, APR), (3, APR, None)]
    assert [(v.id, a, b) for v, a, b in periods([v1, v3], JUL)] == [(3, JUL, None)]
    assert [(v.id, a, b) for v, a, b in periods([v1, v3], APR - timedelta(days=1))] == [
        (1, APR - timedelta(days=1), APR), (3, APR, None)]
