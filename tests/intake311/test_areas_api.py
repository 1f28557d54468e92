"""Geography through the running service (issue 21), on SQLite and PostgreSQL: boundary layers
loaded by the admin API and by the worker's CLI while the app serves requests, the areas of every
new request in Open311 (JSON and XML), the area filter, the CSV export, the request event, and
address-only reports placed from the city's address list."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from geo_helpers import EXTENT, POINTS, districts, wards
from intake311_helpers import post, xml

from citystat_common.testing import auth, eventually

NOWHERE = "127.0.0.1:9"


async def load(client, layer: str, doc: dict, code_property: str, name_property: str, **extra):
    return await client.post(f"/admin/areas/{layer}", headers=auth("admin"),
                             json={"code_property": code_property, "name_property": name_property, "features": doc,
                                   **extra})


async def load_both(client):
    r = await load(client, "ward", wards(), "WARD", "WARD_NAME", name="Wards")
    assert r.status_code == 201, r.text
    r = await load(client, "district", districts(), "id", "label")
    assert r.status_code == 201, r.text


async def new_request(client, lat: float | None, long: float | None, **fields) -> str:
    body = {"service_code": "POTHOLE", "attribute[SIZE]": "large", **fields}
    if lat is not None:
        body |= {"lat": str(lat), "long": str(long)}
    r = await post(client, body)
    assert r.status_code == 201, r.text
    return r.json()[0]["service_request_id"]


async def extended(client, rid: str) -> dict:
    r = await client.get(f"/requests/{rid}.json", params={"extensions": "true"})
    assert r.status_code == 200, r.text
    return r.json()[0]["extended_attributes"]


async def test_every_new_request_carries_its_area_in_each_layer(geo):
    await load_both(geo)
    for label, ((lat, long), (ward, district)) in POINTS.items():
        ext = await extended(geo, await new_request(geo, lat, long))
        assert ext["areas"] == {"district": district, "ward": ward}, label
        assert ext["outside_areas"] == [layer for layer, code in (("district", district), ("ward", ward)) if code is None], label


async def test_the_areas_in_xml(geo):
    await load_both(geo)
    rid = await new_request(geo, 39.975, -75.145)  # in W3's hole: no ward
    root = xml(await geo.get(f"/requests/{rid}.xml", params={"extensions": "true"}))
    ext = root.find("request/extended_attributes")
    assert ext.findtext("areas/district") == "2"
    assert ext.find("areas/ward") is not None and ext.find("areas/ward").text is None  # empty: outside
    assert [e.text for e in ext.find("outside_areas")] == ["ward"]
    assert [e.tag for e in ext.find("outside_areas")] == ["layer"]


async def test_filter_by_area(geo):
    await load_both(geo)
    ids = {label: await new_request(geo, *point) for label, (point, _) in POINTS.items()}

    async def found(*areas: str) -> set[str]:
        r = await geo.get("/requests.json", params=[("area", a) for a in areas])
        assert r.status_code == 200, r.text
        return {d["service_request_id"] for d in r.json()}

    assert await found("ward:W1") == {ids["inside W1 and D1"], ids["on the W1/W2 and D1/D2 border"]}
    assert await found("district:1") == {ids["inside W1 and D1"], ids["on the W1/W2 and D1/D2 border"],
                                         ids["in D1's second part, no ward"]}
    assert await found("district:1", "district:2") == await found("district:1,district:2") == (
        await found("district:1") | {ids["in W3's hole, in D2"]})
    assert await found("ward:W1", "district:2") == set()  # layers all apply
    assert await found("ward:W2") == set()
    r = await geo.get("/requests.json", params={"area": "precinct:4"})
    assert r.status_code == 400 and "no layer 'precinct'" in r.json()[0]["description"]


async def test_export_has_a_column_per_layer(geo):
    await load_both(geo)
    rid = await new_request(geo, 39.92, -75.02)
    r = await geo.get("/export/requests.csv")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    (row,) = [x for x in rows if x["service_request_id"] == rid]
    assert (row["area_district"], row["area_ward"]) == ("1", "")
    assert list(rows[0])[-2:] == ["area_district", "area_ward"]


async def test_requests_before_any_layer_and_without_position(geo):
    before = await new_request(geo, 39.92, -75.17)
    await load_both(geo)
    assert await extended(geo, before) == await extended(geo, before) and (await extended(geo, before))["areas"] == {}
    no_position = await new_request(geo, None, None, address_string="somewhere unknown")
    ext = await extended(geo, no_position)
    assert ext["areas"] == {} and ext["outside_areas"] == []


async def test_a_bad_layer_file_is_refused_whole_with_a_report(geo):
    doc = wards()
    doc["features"][1]["geometry"]["coordinates"][0].pop()  # W2 not closed
    doc["features"][2]["geometry"]["coordinates"][0] = [[c[1], c[0]] for c in doc["features"][2]["geometry"]["coordinates"][0]]
    r = await load(geo, "ward", doc, "WARD", "WARD_NAME")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    problems = r.json()["errors"]
    assert [(p["feature"], p["code"]) for p in problems] == [(2, "W2"), (3, "W3")]
    assert "not closed" in problems[0]["problem"] and "swapped" in problems[1]["problem"]
    assert (await geo.get("/admin/areas", headers=auth("admin"))).json() == []  # nothing was loaded
    assert (await load(geo, "Ward!", wards(), "WARD", "WARD_NAME")).status_code == 422
    assert (await load(geo, "ward", wards(), "WARD", "WARD_NAME", effective_from="soon")).status_code == 422
    assert (await load(geo, "ward", {"type": "FeatureCollection"}, "WARD", "WARD_NAME")).status_code == 422
    assert (await load(geo, "ward", wards(), "", "WARD_NAME")).status_code == 422
    r = await geo.post("/admin/areas/ward", headers=auth("staff"),
                       json={"code_property": "WARD", "name_property": "WARD_NAME", "features": wards()})
    assert r.status_code == 403


async def test_a_new_version_takes_effect_from_its_date_and_the_old_is_kept(geo):
    await load_both(geo)
    moved = wards()
    moved["features"][0]["properties"]["WARD"] = "W1-NEW"
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    r = await load(geo, "ward", moved, "WARD", "WARD_NAME", effective_from=tomorrow)
    assert r.status_code == 201 and r.json()["version"] == 2 and "W1-NEW" in r.json()["codes"]
    layer = (await geo.get("/admin/areas/ward", headers=auth("admin"))).json()
    assert [(v["version"], v["in_force"]) for v in layer["versions"]] == [(1, True), (2, False)]
    assert layer["versions"][0]["loaded_by"]["name"] == "admin" and layer["name"] == "Wards"
    assert [a["code"] for a in layer["areas"]] == ["W1", "W2", "W3"]
    assert (await extended(geo, await new_request(geo, 39.92, -75.17)))["areas"]["ward"] == "W1"  # not yet
    r = await geo.get("/areas/ward.geojson")  # public: the version in force, for maps
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    assert [(f["properties"]["code"], f["properties"]["version"]) for f in r.json()["features"]] == [
        ("W1", 1), ("W2", 1), ("W3", 1)]
    assert r.json()["features"][2]["geometry"]["coordinates"][1][0] == [-75.16, 39.97]  # the hole
    r = await geo.get("/areas/ward.geojson", params={"at": tomorrow + "T12:00:00"})
    assert r.json()["features"][0]["properties"] == {"code": "W1-NEW", "name": "First", "layer": "ward", "version": 2}
    assert (await geo.get("/areas/ward.geojson", params={"at": "2000-01-01"})).status_code == 404
    assert (await geo.get("/areas/precinct.geojson")).status_code == 404
    r = await load(geo, "ward", moved, "WARD", "WARD_NAME")  # version 3, from now
    assert r.status_code == 201 and r.json()["version"] == 3
    assert (await extended(geo, await new_request(geo, 39.92, -75.17)))["areas"]["ward"] == "W1-NEW"


async def test_a_layer_loaded_by_the_cli_takes_effect_in_the_running_app(geo, geo_settings, tmp_path):
    first = await new_request(geo, 39.92, -75.17)
    assert (await extended(geo, first))["areas"] == {}
    path = tmp_path / "wards.geojson"
    path.write_text(json.dumps(wards()))
    env = {**os.environ, "INTAKE311_DATABASE_URL": geo_settings.database_url, "INTAKE311_CITY_EXTENT": EXTENT}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "intake311.worker", "import-areas", "ward", str(path),
                         "--code-property", "WARD", "--name-property", "WARD_NAME"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["codes"] == ["W1", "W2", "W3"]

    async def tagged():
        return (await extended(geo, await new_request(geo, 39.92, -75.17)))["areas"] == {"ward": "W1"}

    assert await eventually(tagged, timeout=10)
    bad = wards()
    bad["features"][0]["geometry"]["coordinates"][0].pop()
    path.write_text(json.dumps(bad))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "intake311.worker", "import-areas", "ward", str(path),
                         "--code-property", "WARD", "--name-property", "WARD_NAME"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "feature 1, code W1: polygon ring 1 (outer) is not closed" in done.stderr, done.stderr


async def test_the_request_event_carries_the_areas(geo, geo_settings):
    import sqlalchemy as sa

    from citystat_common.db import create_engine
    from citystat_common.events import parse_event

    await load_both(geo)
    rid = await new_request(geo, 39.975, -75.145)
    engine = create_engine(geo_settings.database_url)
    try:
        async with engine.connect() as conn:
            payloads = (await conn.execute(sa.text("SELECT payload FROM outbox WHERE key = :k"), {"k": rid})).scalars().all()
    finally:
        await engine.dispose()
    ((_, payload),) = [parse_event(bytes(p)) for p in payloads]
    assert payload.areas == {"district": "2", "ward": None}


ADDRESSES = ("address_id,address,lat,long\n"
             "A1,1400 John F. Kennedy Boulevard,39.92,-75.17\n"
             "A2,1 Market Street,39.975,-75.145\n"
             "A3,2 Market Street,39.92,-75.12\n"
             "A4,2 Market St.,39.93,-75.12\n")


async def post_addresses(client, text: str, role: str = "admin"):
    return await client.post("/admin/addresses", headers={**auth(role), "Content-Type": "text/csv"}, content=text.encode())


async def test_address_only_reports_get_a_position_and_areas_from_the_address_list(geo):
    await load_both(geo)
    r = await post_addresses(geo, ADDRESSES)
    assert r.status_code == 200 and r.json() == {"imported": 4, "total": 4}, r.text
    by_text = await new_request(geo, None, None, address_string="1400 john f. kennedy blvd")
    by_id = await new_request(geo, None, None, address_id="A2", address_string="whatever the resident typed")
    ambiguous = await new_request(geo, None, None, address_string="2 Market Street")
    unknown = await new_request(geo, None, None, address_id="Z9")
    given = await new_request(geo, 39.92, -75.02, address_id="A1")  # a position given is kept

    async def doc(rid):
        r = await geo.get(f"/requests/{rid}.json", params={"extensions": "true"})
        return r.json()[0]

    d = await doc(by_text)
    assert (d["lat"], d["long"], d["extended_attributes"]["areas"]) == (39.92, -75.17, {"district": "1", "ward": "W1"})
    assert d["notes"][-1]["description"] == "Located at address A1 of the city's address list."
    d = await doc(by_id)
    assert (d["lat"], d["extended_attributes"]["areas"]) == (39.975, {"district": "2", "ward": None})
    for rid, words in ((ambiguous, "matches 2 addresses"), (unknown, "not in the city's address list")):
        d = await doc(rid)
        assert d["lat"] is None and d["extended_attributes"]["areas"] == {}
        assert words in d["notes"][-1]["description"] and d["notes"][-1]["type"] == "not_located"
    d = await doc(given)
    assert (d["lat"], d["long"]) == (39.92, -75.02)
    # found by area search and linked as a duplicate like any report with a position
    r = await geo.get("/requests.json", params={"area": "ward:W1"})
    assert by_text in {x["service_request_id"] for x in r.json()}
    again = await new_request(geo, None, None, address_string="1400 John F Kennedy Boulevard")
    assert (await extended(geo, again))["duplicate_of"] == by_text


async def test_a_bad_address_file_is_refused_whole(geo):
    r = await post_addresses(geo, ADDRESSES + "A5,5 Elm St,-75.16,39.95\nA1,dup,39.9,-75.1\n")
    assert r.status_code == 422, r.text
    assert [(e["row"], e["address_id"]) for e in r.json()["errors"]] == [(6, "A5"), (7, "A1")]
    assert (await post_addresses(geo, ADDRESSES, role="staff")).status_code == 403
    r = await geo.post("/admin/addresses", headers=auth("admin"), json={"a": 1})
    assert r.status_code == 422
    unknown = await new_request(geo, None, None, address_id="A1")
    assert (await geo.get(f"/requests/{unknown}.json")).json()[0]["lat"] is None  # nothing was loaded
