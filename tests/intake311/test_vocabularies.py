"""A city's own vocabularies (issue 20): channels and closure reasons are configurable lists with
unknown/other, and a service may have more than one owning department, chosen by an attribute
value and shown in the service definition."""

import pytest
from intake311_helpers import POTHOLE, create, post

from citystat_common.testing import app_client, auth
from intake311.main import create_app
from intake311.models import Department

ADMIN, W = auth("admin"), auth("call_center")


@pytest.fixture
async def city_client(settings):
    """A city with its own lists: three channels, and "weather" among its closure reasons."""
    own = settings.model_copy(update={"channels": ["phone", "web", "unknown"],
                                      "closure_reasons": ["fixed", "weather", "other"]})
    async with app_client(create_app(own)) as c:
        yield c


async def test_the_default_lists_have_unknown_and_other(client):
    r = await post(client, {**POTHOLE, "channel": "unknown"}, role="admin")
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["extended_attributes"]["channel"] == "unknown"
    r = await client.post(f"/staff/requests/{rid}/close", json={"reason": "other", "text": "Gone."}, headers=W)
    assert r.status_code == 200 and r.json()["closure_reason"] == "other"


async def test_a_city_names_its_own_channels_and_closure_reasons(city_client):
    r = await post(city_client, {**POTHOLE, "channel": "sms"}, role="admin")
    assert r.status_code == 400 and "phone, web, unknown" in r.text
    rid = await create(city_client)
    r = await city_client.post(f"/staff/requests/{rid}/close", json={"reason": "referred"}, headers=W)
    assert r.status_code == 422 and "fixed, weather, other" in r.text
    r = await city_client.post(f"/staff/requests/{rid}/close", json={"reason": "weather"}, headers=W)
    assert r.status_code == 200 and r.json()["closure_reason"] == "weather"


ENCAMPMENT = {
    "service_code": "Encampment", "service_name": "Encampment", "description": "People living outdoors.",
    "group": "Homeless services", "department_code": "DHS", "service_level": {"amount": 2, "unit": "calendar_days"},
    "attributes": [{"code": "LOCATION", "datatype": "singlevaluelist", "required": True, "description": "Where?",
                    "values": [{"key": "park", "name": "In a park"}, {"key": "street", "name": "On a street"}]}],
    "department_rules": [{"attribute": "LOCATION", "value": "park", "department_code": "DPR"}],
}


async def test_a_service_with_two_owning_departments(client, uow_factory):
    async with uow_factory() as uow:
        uow.session.add_all([Department(code="DHS", name="Homeless Services"), Department(code="DPR", name="Parks")])
        await uow.commit()
    r = await client.post("/admin/services", json=ENCAMPMENT, headers=ADMIN)
    assert r.status_code == 201, r.text
    shown = (await client.get("/admin/services/Encampment", headers=ADMIN)).json()
    assert shown["department_code"] == "DHS"
    assert shown["department_rules"] == [{"attribute": "LOCATION", "value": "park", "department_code": "DPR",
                                          "agency_responsible": "Parks"}]
    owners = {}
    for where in ("park", "street"):
        r = await post(client, {"service_code": "Encampment", "lat": "40.7", "long": "-74.0", "attribute[LOCATION]": where})
        assert r.status_code == 201, r.text
        assert ("Parks" if where == "park" else "Homeless Services") in r.json()[0]["service_notice"]
        rid = r.json()[0]["service_request_id"]
        doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
        owners[where] = (doc["extended_attributes"]["department_code"], doc["agency_responsible"])
    assert owners == {"park": ("DPR", "Parks"), "street": ("DHS", "Homeless Services")}
    # a rule on a value the attribute does not have, or a department the city lacks: refused
    bad = {**ENCAMPMENT, "service_code": "Encampment 2",
           "department_rules": [{"attribute": "LOCATION", "value": "beach", "department_code": "DPR"}]}
    r = await client.post("/admin/services", json=bad, headers=ADMIN)
    assert r.status_code == 422 and "'beach'" in r.text
    bad["department_rules"] = [{"attribute": "LOCATION", "value": "park", "department_code": "NOWHERE"}]
    r = await client.post("/admin/services", json=bad, headers=ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_rules[0].department_code"
    # the rules can be dropped: every request is the owner's again
    r = await client.patch("/admin/services/Encampment", json={"department_rules": []}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["department_rules"] == []
    r = await post(client, {"service_code": "Encampment", "lat": "40.7", "long": "-74.0", "attribute[LOCATION]": "park"})
    rid = r.json()[0]["service_request_id"]
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["extended_attributes"]["department_code"] == "DHS"
