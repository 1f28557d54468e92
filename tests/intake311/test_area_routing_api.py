"""Routing by area (issue 21, item 4) through the running service, on SQLite and PostgreSQL: a rule
by area in the service definition, requests routed by the area they are tagged with, a transfer
overriding the rule, a layer version that drops a rule's area, and re-tagging stored requests when
a layer comes after them (``retag-areas``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from geo_helpers import districts, wards
from intake311_helpers import post

from citystat_common.db import create_engine
from citystat_common.events import parse_event
from citystat_common.testing import auth
from intake311.config import Settings

NOWHERE = "127.0.0.1:9"
ADMIN = auth("admin")
IN_W1, IN_W2, IN_W3, IN_HOLE = (39.92, -75.17), (39.92, -75.12), (39.96, -75.17), (39.975, -75.145)
TREE = {"service_code": "Street tree", "service_name": "Street tree", "department_code": "STREETS",
        "service_level": {"amount": 5, "unit": "business_days"},
        "department_rules": [{"layer": "ward", "area": "W3", "department_code": "PARKS"},
                             {"layer": "district", "area": "1", "department_code": "WATER"}]}


async def load(client, layer: str, doc: dict, code_property: str, name_property: str, **extra):
    r = await client.post(f"/admin/areas/{layer}", headers=ADMIN, json={
        "code_property": code_property, "name_property": name_property, "features": doc, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def load_both(client) -> None:
    await load(client, "ward", wards(), "WARD", "WARD_NAME")
    await load(client, "district", districts(), "id", "label")


async def new_request(client, where: tuple[float, float] | None, service_code: str = "Street tree", **fields) -> str:
    body = {"service_code": service_code, "description": "A tree.", **fields}
    if where is not None:
        body |= {"lat": str(where[0]), "long": str(where[1])}
    else:
        body |= {"address_string": "somewhere unlisted"}
    r = await post(client, body)
    assert r.status_code == 201, r.text
    return r.json()[0]["service_request_id"]


async def shown(client, rid: str) -> dict:
    r = await client.get(f"/requests/{rid}.json", params={"extensions": "true"})
    assert r.status_code == 200, r.text
    return r.json()[0]


async def owner_of(client, rid: str) -> str:
    return (await shown(client, rid))["extended_attributes"]["department_code"]


async def events_of(settings: Settings, rid: str) -> list:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT payload FROM outbox WHERE key = :k ORDER BY id"), {"k": rid})).scalars()
            return [parse_event(bytes(p))[1] for p in rows]
    finally:
        await engine.dispose()


async def test_a_rule_by_area_is_in_the_service_definition_and_routes_new_requests(geo, geo_settings):
    await load_both(geo)
    r = await geo.post("/admin/services", json=TREE, headers=ADMIN)
    assert r.status_code == 201, r.text
    defined = (await geo.get("/admin/services/Street tree", headers=ADMIN)).json()
    assert defined["department_code"] == "STREETS"
    assert defined["department_rules"] == [
        {"layer": "ward", "area": "W3", "area_name": "Third", "area_in_force": True, "department_code": "PARKS",
         "agency_responsible": "Parks & Recreation"},
        {"layer": "district", "area": "1", "area_name": "District One", "area_in_force": True,
         "department_code": "WATER", "agency_responsible": "Water Department"}]
    listed = {s["service_code"]: s for s in (await geo.get("/admin/services", headers=ADMIN)).json()}
    assert listed["Street tree"]["department_rules"] == defined["department_rules"]
    expected = {IN_W3: ("PARKS", "Parks & Recreation"),  # W3 is also in district 1: the first rule wins
                IN_W1: ("WATER", "Water Department"),  # district 1
                IN_W2: ("STREETS", "Streets Department"),  # district 2, no rule: the owner
                IN_HOLE: ("STREETS", "Streets Department"),  # no ward (W3's hole), district 2
                None: ("STREETS", "Streets Department")}  # no position, no areas
    for where, (dept, agency) in expected.items():
        rid = await new_request(geo, where)
        doc = await shown(geo, rid)
        assert (doc["extended_attributes"]["department_code"], doc["agency_responsible"]) == (dept, agency), where
        assert agency in doc["service_notice"], where
        (created,) = await events_of(geo_settings, rid)  # the owner event, as for attribute rules
        assert created.department_code == dept, where


async def test_a_rule_must_name_a_loaded_layer_and_an_area_of_it(geo):
    await load_both(geo)

    async def refused(rules) -> dict:
        r = await geo.post("/admin/services", json={**TREE, "department_rules": rules}, headers=ADMIN)
        assert r.status_code == 422, r.text
        return r.json()

    assert (await refused([{"layer": "precinct", "area": "7", "department_code": "PARKS"}])
            )["errors"][0]["field"] == "department_rules[0].layer"
    body = await refused([{"layer": "ward", "area": "W9", "department_code": "PARKS"}])
    assert body["errors"][0]["field"] == "department_rules[0].area" and "'W9'" in body["detail"]
    await refused([{"layer": "ward", "area": "W1", "attribute": "SIZE", "value": "large", "department_code": "PARKS"}])
    await refused([{"layer": "ward", "area": "W1", "department_code": "PARKS"},
                   {"layer": "ward", "area": "W1", "department_code": "WATER"}])
    body = await refused([{"layer": "ward", "area": "W1", "department_code": "NOWHERE"}])
    assert body["errors"][0]["field"] == "department_rules[0].department_code"
    # an area of a version that starts later may be named before it takes effect
    later = wards()
    later["features"][0]["properties"]["WARD"] = "W1-NEW"
    await load(geo, "ward", later, "WARD", "WARD_NAME",
               effective_from=(datetime.now(UTC) + timedelta(days=30)).date().isoformat())
    r = await geo.post("/admin/services", json={**TREE, "department_rules": [
        {"layer": "ward", "area": "W1-NEW", "department_code": "PARKS"}]}, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["department_rules"][0] == {  # not in force yet: shown so
        "layer": "ward", "area": "W1-NEW", "area_name": None, "area_in_force": False, "department_code": "PARKS",
        "agency_responsible": "Parks & Recreation"}
    assert await owner_of(geo, await new_request(geo, IN_W1)) == "STREETS"


async def test_a_transfer_overrides_the_rule_by_area(geo, geo_settings):
    await load_both(geo)
    assert (await geo.post("/admin/services", json=TREE, headers=ADMIN)).status_code == 201
    rid = await new_request(geo, IN_W3)
    assert await owner_of(geo, rid) == "PARKS"
    r = await geo.post(f"/staff/requests/{rid}/transfer", json={"department_code": "SANITATION", "text": "Storm debris."},
                       headers=auth("call_center"))
    assert r.status_code == 200, r.text
    doc = await shown(geo, rid)
    assert doc["extended_attributes"]["department_code"] == "SANITATION"
    assert doc["agency_responsible"] == "Sanitation Department"
    *_, transferred = await events_of(geo_settings, rid)
    assert (transferred.previous_department_code, transferred.department_code) == ("PARKS", "SANITATION")
    # the area is still W3: the rule does not take the request back
    assert doc["extended_attributes"]["areas"]["ward"] == "W3"
    assert await owner_of(geo, rid) == "SANITATION"


async def test_a_new_version_without_the_rules_area_keeps_the_rule_and_says_so(geo):
    await load_both(geo)
    assert (await geo.post("/admin/services", json=TREE, headers=ADMIN)).status_code == 201
    redrawn = wards()
    redrawn["features"][2]["properties"]["WARD"] = "W3-NEW"  # W3 renumbered
    loaded = await load(geo, "ward", redrawn, "WARD", "WARD_NAME")
    (warning,) = [w for w in loaded["warnings"] if w["code"] == "W3"]
    assert "'Street tree'" in warning["problem"] and "routes nothing" in warning["problem"]
    rules = (await geo.get("/admin/services/Street tree", headers=ADMIN)).json()["department_rules"]
    assert (rules[0]["area"], rules[0]["area_in_force"], rules[0]["area_name"]) == ("W3", False, None)
    rid = await new_request(geo, IN_W3)  # W3-NEW now, also district 1: the next rule applies
    assert (await shown(geo, rid))["extended_attributes"]["areas"]["ward"] == "W3-NEW"
    assert await owner_of(geo, rid) == "WATER"
    # saving other things keeps the stale rule; saving the rules again asks for an area that exists
    r = await geo.patch("/admin/services/Street tree", json={"description": "Trees on the public way."}, headers=ADMIN)
    assert r.status_code == 200, r.text
    r = await geo.patch("/admin/services/Street tree", json={"department_rules": TREE["department_rules"]}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_rules[0].area"
    fixed = [{"layer": "ward", "area": "W3-NEW", "department_code": "PARKS"}, TREE["department_rules"][1]]
    r = await geo.patch("/admin/services/Street tree", json={"department_rules": fixed}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["department_rules"][0]["area_name"] == "Third"
    assert await owner_of(geo, await new_request(geo, IN_W3)) == "PARKS"
    assert await owner_of(geo, rid) == "WATER"  # a stored request keeps its owner


# --- re-tagging stored requests -----------------------------------------------------------------------


async def retag_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTAKE311_DATABASE_URL": settings.database_url}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "intake311.worker", "retag-areas", *args],
                                   env=env, capture_output=True, text=True, timeout=120)


async def test_requests_stored_before_a_layer_are_tagged_by_retag_areas(geo, geo_settings):
    await load(geo, "district", districts(), "id", "label")
    assert (await geo.post("/admin/services", json={**TREE, "department_rules": TREE["department_rules"][1:]},
                           headers=ADMIN)).status_code == 201
    before = {where: await new_request(geo, where) for where in (IN_W1, IN_HOLE, None)}
    assert (await shown(geo, before[IN_W1]))["extended_attributes"]["areas"] == {"district": "1"}
    # the wards as they held since 2020: the requests already stored are concerned, and are told about
    loaded = await load(geo, "ward", wards(), "WARD", "WARD_NAME", effective_from="2020-01-01")
    assert loaded["requests_to_retag"] == 2  # the two with a position
    assert any("retag-areas ward" in w["problem"] for w in loaded["warnings"])
    assert (await shown(geo, before[IN_W1]))["extended_attributes"]["areas"] == {"district": "1"}  # not by itself
    done = await retag_cli(geo_settings, "ward", "--batch", "1")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["retagged"], summary["outside"], summary["versions"][0]["requests"]) == (2, 1, 2)
    assert (await shown(geo, before[IN_W1]))["extended_attributes"]["areas"] == {"district": "1", "ward": "W1"}
    hole = (await shown(geo, before[IN_HOLE]))["extended_attributes"]
    assert (hole["areas"], hole["outside_areas"]) == ({"district": "2", "ward": None}, ["ward"])
    assert (await shown(geo, before[None]))["extended_attributes"]["areas"] == {}
    r = await geo.get("/requests.json", params={"area": "ward:W1"})
    assert [x["service_request_id"] for x in r.json()] == [before[IN_W1]]
    assert await owner_of(geo, before[IN_W1]) == "WATER"  # routing is not redone
    again = await retag_cli(geo_settings, "ward")
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["retagged"] == 0
    # a layer that does not exist, a bad date
    assert (await retag_cli(geo_settings, "precinct")).returncode == 1
    assert (await retag_cli(geo_settings, "ward", "--since", "yesterday")).returncode == 2


async def test_a_retag_resumes_after_an_interruption_and_respects_since(geo, geo_uow):
    from intake311.areas_retag import retag, stale_count

    for _ in range(5):
        await new_request(geo, IN_W1, service_code="POTHOLE", **{"attribute[SIZE]": "large"})
    await load(geo, "ward", wards(), "WARD", "WARD_NAME", effective_from="2020-01-01")
    uow_factory = geo_uow

    class Stop(Exception):
        pass

    def stop_after_two(done: int) -> None:
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        await retag(uow_factory, layer="ward", batch=1, progress=stop_after_two)
    async with uow_factory() as uow:
        assert await stale_count(uow, layer="ward") == 3  # the two committed batches stay
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        assert await stale_count(uow, layer="ward", since=tomorrow) == 0
    assert (await retag(uow_factory, layer="ward", since=tomorrow))["retagged"] == 0
    assert (await retag(uow_factory, layer="ward", batch=2))["retagged"] == 3
    async with uow_factory() as uow:
        assert await stale_count(uow, layer="ward") == 0
