"""Reading a catalog file (intake311.catalog_file, pure): rows of one service merged, lists in one
cell, and every problem of a file reported at once with its row and column."""

import csv
import io
from pathlib import Path

import orjson

from intake311 import catalog_file
from intake311.demo_catalog import DEPARTMENTS, SERVICES, demo_catalog_rows

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "catalog.csv"


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=catalog_file.COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


BEES = {"service_code": "Bee swarm", "service_name": "Bee swarm", "department_code": "dohmh",
        "service_level_amount": "4", "service_level_unit": "business_hours"}


def test_the_example_file_reads_without_a_problem():
    rows, entries, errors = catalog_file.parse(EXAMPLE.read_bytes(), "text/csv")
    assert errors == []
    assert rows == 6 and len(entries) == 5
    noise = entries[0].data
    assert noise.service_code == "Noise - Street/Sidewalk" and entries[0].rows == [1, 2]
    assert [a.code for a in noise.attributes] == ["DESCRIPTOR", "TIMES_HEARD"]
    assert [v.key for v in noise.attributes[0].values] == ["Loud Music/Party", "Loud Talking", "Other"]
    assert (noise.attributes[1].minimum, noise.attributes[1].maximum) == (0, 7)
    encampment = next(e.data for e in entries if e.data.service_code == "Encampment")
    assert [(r.attribute, r.value, r.department_code) for r in encampment.department_rules] == [("LOCATION_TYPE", "Subway", "POLICE")]
    assert encampment.duplicates is not None and encampment.duplicates.enabled is False
    graffiti = next(e.data for e in entries if e.data.service_code == "Graffiti")
    assert [(r.attribute, r.value, r.amount, r.unit) for r in graffiti.service_level.rules] == [("OFFENSIVE", "yes", 1, "business_days")]


def test_rows_of_one_service_are_one_service_with_its_attributes_in_order():
    rows = [
        {**BEES, "attribute_code": "SIZE", "attribute_description": "How big?", "attribute_datatype": "singlevaluelist",
         "attribute_values": "ball=Football| huge = Larger than a car ", "attribute_required": "yes"},
        {"service_code": "Bee swarm", "attribute_code": "HEIGHT", "attribute_description": "Height (m)",
         "attribute_datatype": "number"},
    ]
    _, entries, errors = catalog_file.parse(_csv(rows), "text/csv")
    assert errors == []
    (entry,) = entries
    assert entry.data.department_code == "dohmh"  # the city's code, case kept
    size, height = entry.data.attributes
    assert (size.required, size.order, [(v.key, v.name) for v in size.values]) == (True, 1, [("ball", "Football"), ("huge", "Larger than a car")])
    assert (height.required, height.order, height.values) == (False, 2, [])
    assert entry.active is True and entry.data.service_level.calendar == "CITY"


def test_every_problem_of_the_file_is_reported_at_once_with_row_and_column():
    rows = [
        {**BEES, "service_level_unit": "fortnights"},  # row 1
        {"service_code": "Bee swarm", "department_code": "VECTOR"},  # row 2: contradicts row 1
        {"service_name": "no code"},  # row 3
        {"service_code": "Pothole", "service_name": "Pothole"},  # row 4: no owner, no level
        {"service_code": "Rats", "service_name": "Rats", "department_code": "HEALTH", "service_level_amount": "ten",
         "service_level_unit": "business_days", "attribute_code": "WHERE", "attribute_description": "Where?",
         "attribute_datatype": "singlevaluelist"},  # row 5: a list with no values, an amount that is no number
        {"service_code": "Rats", "attribute_description": "orphan"},  # row 6: attribute columns without a code
        {"service_code": "Rats", "attribute_code": "WHERE", "attribute_description": "Again"},  # row 7: twice
    ]
    rows_read, entries, errors = catalog_file.parse(_csv(rows), "text/csv")
    assert rows_read == 7 and entries == []
    found = {(e["row"], e["field"]) for e in errors}
    assert {(2, "department_code"), (3, "service_code"), (4, "department_code"), (4, "service_level_amount"),
            (4, "service_level_unit"), (6, "attribute_code"), (7, "attribute_code")} <= found, errors
    assert "row 1" in next(e["message"] for e in errors if (e["row"], e["field"]) == (2, "department_code"))
    # the pydantic refusals land on the row and column that gave the value
    level = catalog_file.parse(_csv([{**BEES, "service_level_unit": "fortnights"}]), "text/csv")[2]
    assert [(e["row"], e["field"]) for e in level] == [(1, "service_level_unit")]
    amount = catalog_file.parse(_csv([rows[4]]), "text/csv")[2]
    assert {(e["row"], e["field"]) for e in amount} == {(1, "service_level_amount"), (1, "attribute_code")}


def test_lists_in_one_cell_are_checked():
    bad = catalog_file.parse(_csv([{**BEES, "service_level_rules": "SIZE -> 1 business_days",
                                    "department_rules": "SIZE=huge POLICE"}]), "text/csv")[2]
    assert {(e["row"], e["field"]) for e in bad} == {(1, "service_level_rules"), (1, "department_rules")}


def test_json_rows_take_numbers_and_booleans_and_unknown_columns_are_refused():
    body = orjson.dumps({"rows": [{**BEES, "service_level_amount": 4, "active": False, "attribute_code": "N",
                                   "attribute_description": "How many?", "attribute_datatype": "number",
                                   "attribute_required": True, "attribute_minimum": 0}]})
    _, entries, errors = catalog_file.parse(body, "application/json")
    assert errors == [] and entries[0].active is False and entries[0].data.attributes[0].required is True
    _, _, errors = catalog_file.parse(orjson.dumps([{**BEES, "owner": "POLICE"}]), "application/json")
    assert errors == [{"row": 1, "field": "owner", "message": "not a column of the catalog file"}]


def test_a_body_that_is_no_catalog_is_one_problem():
    assert catalog_file.parse(b"name,owner\nx,y\n", "text/csv")[2][0]["row"] == 0
    assert catalog_file.parse(b"[]", "application/json")[2] == [{"row": 0, "field": "body", "message": "no rows"}]
    assert catalog_file.parse(b"x", "text/plain")[2][0]["field"] == "content-type"


def test_the_demo_catalog_reads_as_the_seeded_services():
    rows = demo_catalog_rows()
    entries, errors = catalog_file.read_catalog(rows)
    assert errors == []
    assert [e.data.service_code for e in entries] == [s[0] for s in SERVICES]
    assert {e.data.department_code for e in entries} == set(DEPARTMENTS)


def test_a_department_rule_by_area_reads_as_a_layer_and_an_area_code():
    rows = [{**BEES, "department_rules": "area:ward=W 3 -> PARKS; area:council=12 -> dohmh"}]
    _, entries, errors = catalog_file.parse(_csv(rows), "text/csv")
    assert errors == []
    assert [(r.layer, r.area, r.attribute, r.department_code) for r in entries[0].data.department_rules] == [
        ("ward", "W 3", None, "PARKS"), ("council", "12", None, "dohmh")]
