"""Every Open311 endpoint in XML and JSON against the spec's shapes, on SQLite and PostgreSQL."""

from datetime import datetime

import pytest
from intake311_helpers import (
    ATTRIBUTE_FIELDS,
    POTHOLE,
    REQUEST_FIELDS,
    SERVICE_FIELDS,
    assert_error_doc,
    create,
    post,
    tags,
    xml,
)

from citystat_common.testing import TEST_KEYS
from intake311 import service

PREFIXES = ["", "/open311/v2"]
REQUIRED_SERVICES = {
    "POTHOLE", "STREETLIGHT", "DUMPING", "MISSED_TRASH", "ABANDONED_VEHICLE", "GRAFFITI", "WATER_MAIN",
    "TREE_DOWN", "NOISE", "RODENTS",
}


def _iso_with_tz(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    assert dt.tzinfo is not None, text
    return dt


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_discovery(client, prefix):
    root = xml(await client.get(f"{prefix}/discovery.xml"))
    assert root.tag == "discovery" and tags(root) == ["changeset", "contact", "key_service", "endpoints"]
    endpoint = root.find("endpoints/endpoint")
    assert tags(endpoint) == ["specification", "url", "changeset", "type", "formats"]
    assert [f.text for f in endpoint.find("formats")] == ["text/xml", "application/json"]
    assert endpoint.findtext("url").endswith("/open311/v2")
    r = await client.get(f"{prefix}/discovery.json")
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    doc = r.json()
    assert doc["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    assert doc["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_service_list_xml_and_json(client, prefix):
    root = xml(await client.get(f"{prefix}/services.xml"))
    assert root.tag == "services"
    assert {s.tag for s in root} == {"service"}
    for s in root:
        assert tags(s) == SERVICE_FIELDS
        assert s.findtext("metadata") in ("true", "false") and s.findtext("type") in ("realtime", "batch", "blackbox")
    codes = {s.findtext("service_code") for s in root}
    assert REQUIRED_SERVICES <= codes and len(codes) >= 15
    doc = (await client.get(f"{prefix}/services.json")).json()
    assert isinstance(doc, list) and {d["service_code"] for d in doc} == codes
    assert all(list(d) == SERVICE_FIELDS and isinstance(d["metadata"], bool) for d in doc)
    pothole = next(d for d in doc if d["service_code"] == "POTHOLE")
    assert pothole["metadata"] is True and pothole["group"] == "Streets" and "pothole" in pothole["keywords"]
    ext = (await client.get(f"{prefix}/services.json", params={"extensions": "true"})).json()
    pothole = next(d for d in ext if d["service_code"] == "POTHOLE")
    assert pothole["extended_attributes"] == {
        "department_code": "STREETS", "agency_responsible": "Streets Department", "service_level": "3 business days"}


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_service_definition_xml_and_json(client, prefix):
    root = xml(await client.get(f"{prefix}/services/DUMPING.xml"))
    assert root.tag == "service_definition" and tags(root) == ["service_code", "attributes"]
    attrs = root.find("attributes")
    assert {a.tag for a in attrs} == {"attribute"}
    material = next(a for a in attrs if a.findtext("code") == "MATERIAL")
    assert tags(material) == ATTRIBUTE_FIELDS + ["values"]
    assert material.findtext("datatype") == "multivaluelist" and material.findtext("required") == "true"
    assert [tags(v) for v in material.find("values")] == [["key", "name"]] * 5
    count = next(a for a in attrs if a.findtext("code") == "ITEM_COUNT")
    assert tags(count) == ATTRIBUTE_FIELDS and count.findtext("datatype") == "number"
    doc = (await client.get(f"{prefix}/services/DUMPING.json")).json()
    assert doc["service_code"] == "DUMPING" and [a["code"] for a in doc["attributes"]] == ["MATERIAL", "ITEM_COUNT", "WITNESSED"]
    assert doc["attributes"][0]["values"][0] == {"key": "household", "name": "Household trash"}
    assert doc["attributes"][0]["variable"] is True and doc["attributes"][0]["order"] == 1


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_error_documents_404(client, fmt):
    assert_error_doc(await client.get(f"/services/NOPE.{fmt}"), 404, fmt, contains="NOPE")
    assert_error_doc(await client.get(f"/requests/999999.{fmt}"), 404, fmt, contains="999999")
    assert_error_doc(await client.get(f"/requests/not-a-number.{fmt}"), 404, fmt)
    assert_error_doc(await client.get(f"/tokens/nope.{fmt}"), 404, fmt, contains="nope")
    assert_error_doc(await client.get(f"/services.{fmt}", params={"jurisdiction_id": "elsewhere.gov"}), 404, fmt,
                     contains="jurisdiction_id")
    assert_error_doc(await post(client, {**POTHOLE, "service_code": "NOPE"}, fmt=fmt), 404, fmt, contains="NOPE")
    assert_error_doc(await post(client, {**POTHOLE, "jurisdiction_id": "elsewhere.gov"}, fmt=fmt), 404, fmt)
    # an unknown format is a 404 in the spec's XML shape
    assert_error_doc(await client.get("/services.html"), 404, "xml", contains="format")


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_error_documents_403(client, fmt):
    r = await client.post(f"/requests.{fmt}", data=POTHOLE)
    assert_error_doc(r, 403, fmt, contains="api_key")
    r = await client.post(f"/requests.{fmt}", params={"api_key": "wrong"}, data=POTHOLE)
    assert_error_doc(r, 403, fmt, contains="api_key", count=1)
    r = await client.post(f"/requests.{fmt}", data={**POTHOLE, "api_key": TEST_KEYS["public"]})
    assert_error_doc(r, 403, fmt)
    # a wrong key is reported alone, before any validation of the body
    r = await client.post(f"/requests.{fmt}", params={"api_key": "wrong"}, data={"lat": "999"})
    assert_error_doc(r, 403, fmt, count=1)


async def test_post_form_encoded_with_attribute_arrays_and_read_back(client):
    # api_key in the query string, the form body in the spec's encoding, empty optional parameters
    fields = [
        ("service_code", "DUMPING"), ("lat", "39.9850"), ("long", "-75.1420"),
        ("attribute[MATERIAL][]", "tires"), ("attribute[MATERIAL][]", "furniture"), ("attribute[ITEM_COUNT]", "6"),
        ("attribute[WITNESSED]", ""), ("description", "Tires and a sofa"), ("address_string", ""), ("address_id", ""),
        ("email", ""), ("device_id", ""), ("account_id", ""), ("first_name", ""), ("last_name", ""), ("phone", ""),
        ("media_url", ""), ("jurisdiction_id", ""),
    ]
    r = await client.post("/open311/v2/requests.xml", params={"api_key": TEST_KEYS["mobile_app"]},
                          content="&".join(f"{k}={v}".replace("[", "%5B").replace("]", "%5D").replace(" ", "+") for k, v in fields),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    root = xml(r)
    assert root.tag == "service_requests" and tags(root) == ["request"]
    assert tags(root[0]) == ["service_request_id", "service_notice", "account_id", "feedback_token"]
    rid = root[0].findtext("service_request_id")
    assert "Sanitation Department" in root[0].findtext("service_notice")

    got = xml(await client.get(f"/requests/{rid}.xml"))
    assert got.tag == "service_requests" and tags(got) == ["request"]
    req = got[0]
    assert tags(req) == REQUEST_FIELDS
    assert req.findtext("status") == "open" and req.findtext("service_code") == "DUMPING"
    assert req.findtext("agency_responsible") == "Sanitation Department"
    assert req.findtext("description") == "Tires and a sofa" and float(req.findtext("lat")) == 39.985
    assert req.findtext("address") == "" and req.find("address").text is None  # empty optional = missing
    requested = _iso_with_tz(req.findtext("requested_datetime"))
    assert _iso_with_tz(req.findtext("expected_datetime")) > requested

    doc = (await client.get(f"/open311/v2/requests/{rid}.json")).json()
    assert isinstance(doc, list) and len(doc) == 1 and list(doc[0]) == REQUEST_FIELDS
    assert doc[0]["service_request_id"] == rid and doc[0]["lat"] == 39.985 and doc[0]["address"] is None
    staff = (await client.get(f"/staff/requests/{rid}", headers={"X-API-Key": TEST_KEYS["staff"]})).json()
    assert staff["attributes"] == {"MATERIAL": ["tires", "furniture"], "ITEM_COUNT": 6}
    assert staff["channel"] == "mobile_app" and staff["email"] is None


async def test_post_json_body_and_key_in_body_or_header(client):
    body = {"service_code": "STREETLIGHT", "address_string": "1 Main St", "attribute": {"ISSUE": "out"},
            "api_key": TEST_KEYS["admin"], "channel": "email", "description": None}
    r = await client.post("/requests.json", json=body)
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    r = await client.post("/requests.json", json={"service_code": "STREETLIGHT", "address_id": "A-7",
                                                  "attribute[ISSUE]": "flickering"},
                          headers={"X-API-Key": TEST_KEYS["web"]})
    assert r.status_code == 201, r.text
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["extended_attributes"]["channel"] == "email"  # a key without a channel of its own may name one
    assert doc["address"] == "1 Main St"


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_request_list_with_extensions(client, fmt):
    first = await create(client)
    await create(client, {"service_code": "GRAFFITI", "address_string": "2 Elm St", "attribute[SURFACE]": "wall",
                          "attribute[OFFENSIVE]": "no"}, role="web")
    r = await client.get(f"/requests.{fmt}", params={"extensions": "true", "service_code": "POTHOLE,GRAFFITI"})
    if fmt == "xml":
        root = xml(r)
        assert root.tag == "service_requests" and len(root) == 2
        for req in root:
            assert tags(req) == REQUEST_FIELDS + ["extended_attributes", "notes"]
            assert tags(req.find("extended_attributes")) == [
                "channel", "detailed_status", "duplicate_of", "closure_reason", "first_contact_resolution",
                "department_code", "closed_datetime", "legacy_id", "areas", "outside_areas"]  # areas: issue 21
            assert [tags(n) for n in req.find("notes")] == [["datetime", "type", "status", "author", "description"]]
        codes = [req.findtext("service_code") for req in root]
    else:
        doc = r.json()
        assert len(doc) == 2 and all(list(d) == REQUEST_FIELDS + ["extended_attributes", "notes"] for d in doc)
        assert doc[-1]["notes"][0]["type"] == "created"
        codes = [d["service_code"] for d in doc]
    assert codes == ["GRAFFITI", "POTHOLE"]  # newest first
    plain = (await client.get(f"/requests.json?service_request_id={first},999")).json()
    assert [d["service_request_id"] for d in plain] == [first] and list(plain[0]) == REQUEST_FIELDS


async def test_request_filters(client):
    a = await create(client)
    b = await create(client, {"service_code": "NOISE", "address_string": "9 Oak St", "attribute[SOURCE]": "music"})
    await client.post(f"/staff/requests/{b}/close", json={"reason": "referred"}, headers={"X-API-Key": TEST_KEYS["call_center"]})

    async def ids(**params):
        r = await client.get("/requests.json", params=params)
        assert r.status_code == 200, r.text
        return [d["service_request_id"] for d in r.json()]

    assert await ids(status="open") == [a]
    assert await ids(status="closed") == [b]
    assert await ids(status="open,closed") == [b, a]
    assert await ids(agency_responsible="STREETS") == [a]
    assert await ids(agency_responsible="Licenses & Inspections") == [b]
    assert await ids(bbox="-75.17,39.95,-75.16,39.96") == [a]
    assert await ids(lat="39.9527", long="-75.1653", radius="100") == [a]
    assert await ids(lat="39.99", long="-75.1653", radius="100") == []
    assert await ids(start_date="2020-01-01T00:00:00Z", end_date="2020-02-01T00:00:00Z") == []
    assert await ids(page_size="1") == [b] and await ids(page_size="1", page="2") == [a]
    synced = await ids(updated_after="2020-01-01T00:00:00Z")
    assert synced == [a, b]  # incremental sync: oldest change first
    assert await ids(updated_after="2099-12-31T00:00:00Z") == []


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_batch_service_token(client, uow_factory, fmt):
    r = await post(client, {"service_code": "TREE_PLANTING", "address_string": "12 Pine St"}, fmt=fmt)
    assert r.status_code == 201, r.text
    if fmt == "xml":
        item = xml(r)[0]
        assert tags(item) == ["token", "service_notice", "account_id", "feedback_token"]
        token = item.findtext("token")
    else:
        token = r.json()[0]["token"]
    pending = await client.get(f"/tokens/{token}.{fmt}")
    if fmt == "xml":
        assert tags(xml(pending)[0]) == ["token"]
    else:
        assert pending.json() == [{"token": token}]
    async with uow_factory() as uow:
        assert await service.accept_batch(uow) == 1
        await uow.commit()
    done = await client.get(f"/tokens/{token}.{fmt}")
    if fmt == "xml":
        item = xml(done)[0]
        assert tags(item) == ["service_request_id", "token"] and item.findtext("token") == token
        rid = item.findtext("service_request_id")
    else:
        (item,) = done.json()
        rid = item["service_request_id"]
        assert item["token"] == token
    assert (await client.get(f"/requests/{rid}.json")).json()[0]["service_code"] == "TREE_PLANTING"


async def test_post_requests_takes_the_hot_route_and_stays_documented(settings):
    """POST /requests.{fmt} is served by web.HotRoute, ahead of FastAPI's routing, at both prefixes;
    the FastAPI route of the same path still documents it, and its metrics carry the route template."""
    from citystat_common.testing import app_client
    from citystat_common.web import HotRoute
    from intake311.main import create_app

    app = create_app(settings)
    hot = [r for r in app.router.routes if isinstance(r, HotRoute)]
    assert sorted(r.path for r in hot) == ["/open311/v2/requests.{fmt}", "/requests.{fmt}"]
    assert app.router.routes[: len(hot)] == hot  # first: nothing in front of them
    async with app_client(app) as client:
        for prefix in PREFIXES:
            r = await client.post(f"{prefix}/requests.json", params={"api_key": TEST_KEYS["call_center"]}, data=POTHOLE)
            assert r.status_code == 201, r.text
        spec = (await client.get("/openapi.json")).json()
        assert "post" in spec["paths"]["/requests.{fmt}"] and "post" in spec["paths"]["/open311/v2/requests.{fmt}"]
        text = (await client.get("/metrics")).text
    for path in ("/requests.{fmt}", "/open311/v2/requests.{fmt}"):
        assert f'method="POST",route="{path}",service="intake311",status="201"' in text, path
