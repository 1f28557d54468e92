"""Demo data for ``make run``: the demo city's catalog (intake311.demo_catalog) through the catalog
import, then a handful of requests posted through the Open311 API across channels, some moved along
their lifecycle. Idempotent: the import changes nothing the second time, and nothing is posted when
requests exist."""

from __future__ import annotations

import os
from urllib.parse import urlencode

import httpx

from intake311.demo_areas import load_wards
from intake311.demo_catalog import demo_catalog_rows

BASE = f"http://127.0.0.1:{int(os.environ.get('INTAKE311_PORT', 8001))}"

# (key role, extra form fields): call_center posts as phone, web as web, mobile_app as mobile_app;
# the admin key (no channel of its own) names one explicitly.
DEMO_REQUESTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("call_center", [("service_code", "POTHOLE"), ("lat", "39.9526"), ("long", "-75.1652"),
                     ("address_string", "1400 John F Kennedy Blvd"), ("attribute[SIZE]", "large"),
                     ("attribute[LOCATION]", "lane"), ("description", "Deep pothole in the right lane."),
                     ("first_name", "Dana"), ("last_name", "Resident"), ("phone", "+1 215-555-0100")]),
    ("web", [("service_code", "STREETLIGHT"), ("lat", "39.9612"), ("long", "-75.1551"),
             ("attribute[ISSUE]", "out"), ("attribute[POLE_NUMBER]", "SL-10422"), ("email", "resident1@example.org")]),
    ("mobile_app", [("service_code", "DUMPING"), ("lat", "39.9850"), ("long", "-75.1420"),
                    ("attribute[MATERIAL][]", "tires"), ("attribute[MATERIAL][]", "furniture"),
                    ("attribute[ITEM_COUNT]", "6"), ("media_url", "https://example.org/photos/dumping.jpg"),
                    ("device_id", "demo-device-1")]),
    ("call_center", [("service_code", "MISSED_TRASH"), ("address_string", "2100 Spruce St"),
                     ("attribute[COLLECTION]", "recycling")]),
    ("admin", [("service_code", "GRAFFITI"), ("channel", "sms"), ("lat", "39.9500"), ("long", "-75.1700"),
               ("attribute[SURFACE]", "wall"), ("attribute[OFFENSIVE]", "no")]),
    ("admin", [("service_code", "RODENTS"), ("channel", "walk_in"), ("address_string", "500 S Broad St"),
               ("attribute[WHERE]", "street"), ("attribute[SIGHTINGS]", "Rats near the bins every night.")]),
    ("admin", [("service_code", "WATER_MAIN"), ("channel", "frontline"), ("lat", "39.9400"), ("long", "-75.1800"),
               ("attribute[FLOW]", "gushing")]),
    ("call_center", [("service_code", "INFORMATION"), ("address_string", "City Hall"),
                     ("description", "Asked for recycling pickup days."), ("first_contact_resolution", "true"),
                     ("closure_reason", "no_further_action"), ("status_notes", "Pickup days given on the phone.")]),
    ("mobile_app", [("service_code", "POTHOLE"), ("lat", "39.95262"), ("long", "-75.16522"),
                    ("attribute[SIZE]", "large")]),  # a duplicate of the first one
]


async def load_catalog(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    """The demo catalog through POST /admin/catalog/import (its departments come from the directory,
    which the loader fills first)."""
    r = await client.post(f"{BASE}/admin/catalog/import", json={"rows": demo_catalog_rows()},
                          headers={"X-API-Key": keys["admin"]})
    if r.status_code != 200:
        raise RuntimeError(f"the demo catalog was refused: {r.text}")
    report = r.json()
    return f"catalog: {report['created']} services created, {report['unchanged'] + report['updated']} there already"


async def load_demo(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    catalog = await load_catalog(client, keys)
    catalog += "; " + await load_wards(client, BASE, keys["admin"])  # before the requests, which get their ward
    staff = {"X-API-Key": keys["staff"]}
    existing = await client.get(f"{BASE}/staff/requests", params={"page_size": 1}, headers=staff)
    existing.raise_for_status()
    if existing.json()["total"]:
        return f"{catalog}; intake311 already has {existing.json()['total']} requests"
    ids: list[str] = []
    tokens: list[str] = []  # each reporter's feedback token, returned once by the POST
    for role, fields in DEMO_REQUESTS:
        r = await client.post(  # form-encoded, as a stock Open311 client sends it (repeated attribute[X][] keys)
            f"{BASE}/open311/v2/requests.json", params={"api_key": keys[role]}, content=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        r.raise_for_status()
        ids.append(r.json()[0].get("service_request_id", ""))
        tokens.append(r.json()[0].get("feedback_token", ""))
    writer = {"X-API-Key": keys["call_center"]}
    await client.post(f"{BASE}/staff/requests/{ids[0]}/acknowledge", headers=writer, json={})
    await client.post(f"{BASE}/staff/requests/{ids[0]}/start", headers=writer, json={"text": "Crew scheduled."})
    await client.post(f"{BASE}/staff/requests/{ids[1]}/close", headers=writer,
                      json={"reason": "fixed", "text": "Lamp replaced."})
    # the resident rates it through the app they reported with (its key, their token)
    await client.post(f"{BASE}/requests/{ids[1]}/feedback", headers={"X-API-Key": keys["web"]},
                      json={"score": 5, "comment": "Quick fix.", "feedback_token": tokens[1]})
    await client.post(f"{BASE}/staff/requests/{ids[5]}/transfer", headers=writer,
                      json={"department_code": "LI", "text": "Property owner's responsibility."})
    return f"{catalog}; posted {len(ids)} requests across phone, web, mobile_app, sms, walk_in and frontline"
